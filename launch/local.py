"""Run a multi-worker job on this host: N training processes on loopback ports.

    python launch/local.py --num_workers=2 --log_dir=runs/mw/logs -- \
        --strategy=multi_worker --dataset=fashion_mnist --workdir=runs/mw

Everything after `--` goes to every worker's `python -m dcgan_dist.train`. Each worker
gets its own TF_CONFIG (cluster of 127.0.0.1 ports, its task index), its own log file
and a pid file (LOG_DIR/worker_<i>.log, worker_<i>.pid); worker 0 is the chief. If one
worker fails, the others are stopped and the launcher exits with that worker's status,
so a dead peer never leaves the rest hanging in a collective. A SIGTERM to one worker is
different: every worker saves a checkpoint at the same step and exits with 75, and the
launcher waits for them and exits with 75. Rerunning the same command resumes from the
last checkpoint in the workdir.
"""

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time

GRACE_SECONDS = 10
PREEMPTED = 75  # a worker's exit status after a SIGTERM and the job's checkpoint
PREEMPTED_GRACE_SECONDS = 120  # for the others to finish that save (as launch/k8s allows)


def free_ports(count):
    """Ports the OS reports free on 127.0.0.1 (held open together so they differ)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def tf_config(ports, index):
    return json.dumps({"cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]},
                       "task": {"type": "worker", "index": index}})


def _wait(processes, seconds):
    """Waits up to `seconds` in all for every process to end."""
    deadline = time.monotonic() + seconds
    for p in processes:
        try:
            p.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            return


def _stop(processes):
    """SIGTERM, a grace period, then SIGKILL for whatever still runs."""
    for p in processes:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    _wait(processes, GRACE_SECONDS)
    for p in processes:
        if p.poll() is None:
            p.kill()
            p.wait()


def launch(num_workers, train_args, log_dir, module="dcgan_dist.train"):
    """Starts the workers and waits; returns 0, or the first failing worker's status."""
    os.makedirs(log_dir, exist_ok=True)
    ports = free_ports(num_workers)
    processes, logs = [], []
    for index in range(num_workers):
        log = open(os.path.join(log_dir, f"worker_{index}.log"), "w")
        env = dict(os.environ, TF_CONFIG=tf_config(ports, index), PYTHONUNBUFFERED="1")
        processes.append(subprocess.Popen([sys.executable, "-m", module, *train_args],
                                          stdout=log, stderr=subprocess.STDOUT, env=env))
        logs.append(log)
        # For an operator (or a fault-injection test) who needs to signal one worker.
        with open(os.path.join(log_dir, f"worker_{index}.pid"), "w") as f:
            f.write(f"{processes[-1].pid}\n")
    status = 0
    try:
        while True:
            codes = [p.poll() for p in processes]
            failed = [(i, code) for i, code in enumerate(codes) if code not in (None, 0)]
            if failed:
                preempted = all(code == PREEMPTED for _, code in failed)
                # Several can have ended between two polls: name them all.
                print("launch | " + ", ".join(f"worker {i} exited with status {code}"
                                              for i, code in failed)
                      + ("; the job was stopped and saved, waiting for the others"
                         if preempted else "; stopping the others")
                      + f" (logs in {log_dir})", file=sys.stderr)
                code = failed[0][1]
                status = 128 - code if code < 0 else code  # killed by signal N: 128+N
                if preempted:
                    # Every worker saved at the same step and is exiting with 75 too: a
                    # SIGTERM now would only interrupt that.
                    _wait(processes, PREEMPTED_GRACE_SECONDS)
                break
            if all(code == 0 for code in codes):
                break
            time.sleep(0.5)
    except KeyboardInterrupt:
        status = 130
    finally:
        _stop(processes)
        for log in logs:
            log.close()
    return status


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--num_workers", type=int, default=2)
    parser.add_argument("--log_dir", default="runs/launch_logs")
    parser.add_argument("train_args", nargs=argparse.REMAINDER,
                        help="-- then the flags of python -m dcgan_dist.train")
    args = parser.parse_args()
    if args.num_workers < 1:
        parser.error(f"--num_workers={args.num_workers} must be at least 1")
    train_args = args.train_args[1:] if args.train_args[:1] == ["--"] else args.train_args
    sys.exit(launch(args.num_workers, train_args, args.log_dir))


if __name__ == "__main__":
    main()
