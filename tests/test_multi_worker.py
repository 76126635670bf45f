"""MultiWorkerMirroredStrategy in real processes on 127.0.0.1, started by launch/local.py."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import assert_resumed_bitwise, checkpoint_values, latest_step, run_cli

LAUNCH_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "launch")
sys.path.insert(0, LAUNCH_DIR)
import local  # noqa: E402  (launch/local.py)

pytestmark = pytest.mark.slow  # trains (the quick tier: -m "not slow")


# The jobs below, interrupted or not: 32 steps of the fast recipe (its averaged generator
# must end equal too) in fp32 with op determinism (an interrupted job then ends bitwise
# where an uninterrupted one ends), a checkpoint every 4 steps, all kept. (Every 2 cost
# a third of a job's time on one core: a save of both workers' ~40 MB is ~0.6 s.)
STEPS = 32  # room for two stops mid-run, however fast the steps are
SAVE_EVERY = 4
JOB = [f"--max_steps={STEPS}", f"--save_every_steps={SAVE_EVERY}",
       f"--keep_checkpoints={STEPS // SAVE_EVERY}"]


def _flags(tfds_dir):
    return ["--dataset=fashion_mnist", "--split=train[:640]", "--batch_size=64",
            "--epochs=100", "--precision=fp32", "--recipe=fast", "--deterministic",
            f"--tfds_data_dir={tfds_dir}"]


def _job_flags(tfds_dir, workdir):
    return ["--strategy=multi_worker", *_flags(tfds_dir), *JOB, f"--workdir={workdir}"]


@pytest.fixture(scope="module")
def two_workers(fashion_builder, tfds_dir, tmp_path_factory):
    """The uninterrupted 2-worker job: (its workdir, the workers' logs)."""
    root = tmp_path_factory.mktemp("two_workers")
    status = local.launch(2, _job_flags(tfds_dir, root / "workdir"),
                          log_dir=str(root / "logs"))
    logs = [(root / "logs" / f"worker_{i}.log").read_text() for i in (0, 1)]
    assert status == 0, logs[0][-3000:] + logs[1][-3000:]
    return str(root / "workdir"), logs


def test_two_workers_train_like_one_process(two_workers, tfds_dir, tmp_path):
    workers, logs = two_workers
    assert all("replicas: 2" in log for log in logs)
    # Only the chief (worker 0) keeps files: the other's checkpoint folder is removed.
    assert sorted(os.listdir(os.path.join(workers, "checkpoints"))) == sorted(
        ["checkpoint"] + [f"ckpt-{step}.{part}"
                          for step in range(SAVE_EVERY, STEPS + 1, SAVE_EVERY)
                          for part in ("index", "data-00000-of-00001")])
    assert not os.path.exists(os.path.join(workers, "tmp_checkpoints"))
    # Nor summaries or images: one events file (the chief's), and the chief's grid.
    assert len(os.listdir(os.path.join(workers, "train"))) == 1
    # 32 steps of 10 per epoch: the grids of epochs 1-3, and the one where the job stopped.
    assert sorted(n for n in os.listdir(workers) if n.startswith("image_at_")) == [
        "image_at_epoch_0001.png", "image_at_epoch_0002.png", "image_at_epoch_0003.png",
        f"image_at_step_{STEPS:08d}.png"]
    # Both workers report the same global-batch losses, and end with bitwise the same
    # weights (each prints a hash of them).
    lines = [[line for line in log.splitlines() if "| epoch:" in line] for log in logs]
    assert lines[0] and [l.split("| g_loss")[1] for l in lines[0]] == \
        [l.split("| g_loss")[1] for l in lines[1]]
    hashes = [[line.split("weights: ")[1] for line in log.splitlines()
               if line.startswith("train | done")] for log in logs]
    assert len(hashes[0]) == 1 and hashes[0] == hashes[1]

    # One process, 4 steps, a checkpoint after each: against the job's step 4.
    single = str(tmp_path / "single")
    result = run_cli("dcgan_dist.train", "--strategy=mirrored", f"--workdir={single}",
                     *_flags(tfds_dir), "--max_steps=4", "--save_every_steps=1")
    assert result.returncode == 0, result.stderr[-3000:]
    expected, before, got = (checkpoint_values(single, 4), checkpoint_values(single, 3),
                             checkpoint_values(workers, 4))
    assert expected.keys() == got.keys()
    assert any(name.startswith("generator_ema/") for name in expected)
    # The workers sum gradients in another order, and Adam turns that round-off into
    # visible differences where batch norm makes a gradient ~0 (test_replica_equivalence).
    # Still, every variable must be far nearer one process's value than one step moves
    # it: measured, at most 0.9% of the last step's move (the dense kernel). Stopping a
    # step early, or a worker training on other data, is off by a whole step or more.
    ratios, far = {}, []
    for name in expected:
        if expected[name].dtype.kind != "f":  # counters and random-generator states
            if not np.array_equal(got[name], expected[name]):
                far.append(f"{name}: {got[name]} != {expected[name]}")
            continue
        step_move = np.linalg.norm(expected[name] - before[name])
        diff = np.linalg.norm(got[name] - expected[name])
        ratios[name] = diff / step_move if step_move else 0.0
        if diff > 0.1 * step_move:
            far.append(f"{name}: {diff:.3g} apart, the last step moved it {step_move:.3g}")
    assert not far, f"{len(far)} of {len(expected)} variables: " + "; ".join(far[:5])
    print("largest difference / last step's move:", max(ratios.items(), key=lambda x: x[1]))


def _wait_for(predicate, seconds):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


def test_killed_worker_stops_the_job_and_a_restart_resumes_bitwise(two_workers, tfds_dir,
                                                                   tmp_path):
    workdir, logs = tmp_path / "workdir", tmp_path / "logs"
    flags = _job_flags(tfds_dir, workdir)
    launcher = subprocess.Popen(
        [sys.executable, os.path.join(LAUNCH_DIR, "local.py"), "--num_workers=2",
         f"--log_dir={logs}", "--", *flags], stderr=subprocess.PIPE, text=True)
    try:
        assert _wait_for(lambda: latest_step(workdir) >= SAVE_EVERY, 180), "nothing saved"
        os.kill(int((logs / "worker_1.pid").read_text()), signal.SIGKILL)
        _, stderr = launcher.communicate(timeout=60)  # stopped, not hanging
    finally:
        if launcher.poll() is None:
            launcher.kill()
    assert launcher.returncode != 0
    # The survivor may fail in the same instant (its collective lost the peer).
    assert "worker 1 exited with status -9" in stderr and "stopping the others" in stderr
    saved = latest_step(workdir)
    assert SAVE_EVERY <= saved < STEPS  # mid-run

    # The whole job restarted with the same flags resumes from that checkpoint and ends
    # exactly where the uninterrupted job ends.
    status = local.launch(2, flags, log_dir=str(tmp_path / "logs2"))
    chief_log = (tmp_path / "logs2" / "worker_0.log").read_text()
    assert status == 0, chief_log[-3000:]
    assert f"at step {saved}" in chief_log
    assert_resumed_bitwise(checkpoint_values(two_workers[0]), workdir)


def test_without_a_launcher_the_survivor_exits_with_a_clear_error(fashion_builder,
                                                                  tfds_dir, tmp_path):
    """No launcher to stop it: the surviving worker must notice the dead peer itself."""
    ports = local.free_ports(2)
    flags = ["--strategy=multi_worker", "--dataset=fashion_mnist", "--split=train[:640]",
             "--batch_size=64", "--epochs=100", f"--tfds_data_dir={tfds_dir}",
             f"--workdir={tmp_path / 'workdir'}"]
    workers = [subprocess.Popen(
        [sys.executable, "-m", "dcgan_dist.train", *flags],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=dict(os.environ, TF_CONFIG=local.tf_config(ports, i))) for i in (0, 1)]
    try:
        assert _wait_for(lambda: (tmp_path / "workdir" / "train").exists(), 180)
        time.sleep(3)  # well inside the training loop
        workers[1].kill()
        _, stderr = workers[0].communicate(timeout=120)
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
    assert workers[0].returncode == 4, stderr[-3000:]
    assert "a worker of this job was lost" in stderr
    assert "Traceback" not in stderr


def _stop_worker_1_when(ready, flags, logs):
    """Runs a 2-worker job until `ready()`, sends SIGTERM to worker 1, and returns (the
    launcher's status, the step every worker says it saved, the logs)."""
    launcher = subprocess.Popen(
        [sys.executable, os.path.join(LAUNCH_DIR, "local.py"), "--num_workers=2",
         f"--log_dir={logs}", "--", *flags], stderr=subprocess.PIPE, text=True)
    try:
        assert _wait_for(lambda: launcher.poll() is not None or ready(), 180)
        assert launcher.poll() is None, (logs / "worker_0.log").read_text()[-3000:]
        os.kill(int((logs / "worker_1.pid").read_text()), signal.SIGTERM)
        launcher.communicate(timeout=120)
    finally:
        if launcher.poll() is None:
            launcher.kill()
    texts = [(logs / f"worker_{i}.log").read_text() for i in (0, 1)]
    stopped = [[line for line in text.splitlines() if line.startswith("stopped:")]
               for text in texts]
    assert all(len(lines) == 1 for lines in stopped), texts[0][-2000:] + texts[1][-2000:]
    assert "Traceback" not in texts[0] + texts[1]
    steps = {int(lines[0].split("checkpoint of step ")[1].split(" ")[0])
             for lines in stopped}
    assert len(steps) == 1, stopped  # the same step on both workers
    return launcher.returncode, steps.pop(), texts


def test_sigterm_to_one_worker_saves_every_worker_at_one_step(two_workers, tfds_dir,
                                                              tmp_path):
    """PreemptionCheckpointHandler: a SIGTERM to worker 1 makes both workers save the
    same step and exit 75 (resumable), twice in a row; then the job runs to its end and
    ends exactly where the uninterrupted job ends."""
    workdir = tmp_path / "workdir"
    flags = _job_flags(tfds_dir, workdir)
    status, first, _ = _stop_worker_1_when(lambda: latest_step(workdir) >= SAVE_EVERY,
                                           flags, tmp_path / "logs1")
    assert status == 75 and SAVE_EVERY <= first < STEPS
    assert latest_step(workdir) == first

    # Resumed, and stopped again: the workers must agree on a step again.
    status, second, texts = _stop_worker_1_when(lambda: latest_step(workdir) > first,
                                                flags, tmp_path / "logs2")
    assert status == 75 and f"at step {first}" in texts[0] and first < second < STEPS
    assert latest_step(workdir) == second

    status = local.launch(2, flags, log_dir=str(tmp_path / "logs3"))
    chief_log = (tmp_path / "logs3" / "worker_0.log").read_text()
    assert status == 0, chief_log[-3000:]
    assert f"at step {second}" in chief_log
    assert_resumed_bitwise(checkpoint_values(two_workers[0]), workdir)
