"""MultiWorkerMirroredStrategy in real processes on 127.0.0.1, started by launch/local.py."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import tensorflow as tf

from conftest import checkpoint_values, run_cli

LAUNCH_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "launch")
sys.path.insert(0, LAUNCH_DIR)
import local  # noqa: E402  (launch/local.py)




def test_two_workers_train_like_one_process(fashion_builder, tfds_dir, tmp_path):
    # fp32: bf16's round-off, summed in another order by two workers, exceeds the
    # tolerance below within a few Adam steps.
    # The fast recipe: its averaged generator must end equal on both workers too.
    flags = ["--dataset=fashion_mnist", "--split=train[:640]", "--batch_size=64",
             "--epochs=1", "--max_steps=4", "--precision=fp32", "--recipe=fast",
             f"--tfds_data_dir={tfds_dir}"]
    workers = str(tmp_path / "workers")
    status = local.launch(2, ["--strategy=multi_worker", f"--workdir={workers}", *flags],
                          log_dir=str(tmp_path / "logs"))
    logs = [(tmp_path / "logs" / f"worker_{i}.log").read_text() for i in (0, 1)]
    assert status == 0, logs[0][-3000:] + logs[1][-3000:]
    assert all("replicas: 2" in log for log in logs)
    # Only the chief (worker 0) keeps files: the other's checkpoint folder is removed.
    assert sorted(os.listdir(os.path.join(workers, "checkpoints"))) == [
        "checkpoint", "ckpt-4.data-00000-of-00001", "ckpt-4.index"]
    assert not os.path.exists(os.path.join(workers, "tmp_checkpoints"))
    # Nor summaries or images: one events file (the chief's), and the chief's grid.
    assert len(os.listdir(os.path.join(workers, "train"))) == 1
    assert len([n for n in os.listdir(workers) if n.startswith("image_at_")]) <= 1
    # Both workers report the same global-batch losses, and end with bitwise the same
    # weights (each prints a hash of them).
    lines = [[line for line in log.splitlines() if "| epoch:" in line] for log in logs]
    assert lines[0] and [l.split("| g_loss")[1] for l in lines[0]] == \
        [l.split("| g_loss")[1] for l in lines[1]]
    hashes = [[line.split("weights: ")[1] for line in log.splitlines()
               if line.startswith("train | done")] for log in logs]
    assert len(hashes[0]) == 1 and hashes[0] == hashes[1]

    single = str(tmp_path / "single")
    result = run_cli("dcgan_dist.train", "--strategy=mirrored", f"--workdir={single}",
                     *flags)
    assert result.returncode == 0, result.stderr[-3000:]
    expected, got = checkpoint_values(single), checkpoint_values(workers)
    assert expected.keys() == got.keys()
    assert any(name.startswith("generator_ema/") for name in expected)
    # As in test_replica_equivalence: the workers sum gradients in another order, and
    # Adam turns that round-off into visible differences where batch norm makes a
    # gradient ~0 (measured here after 4 steps: at most 4% of a variable's largest entry,
    # and 0.4% of its norm). A scaled loss or other data would be off by far more.
    for name in expected:
        diff, scale = got[name] - expected[name], np.abs(expected[name])
        assert np.abs(diff).max() <= 0.1 * scale.max() + 1e-6, name
        assert np.linalg.norm(diff) <= 1e-2 * np.linalg.norm(scale) + 1e-6, name


def _wait_for(predicate, seconds):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


def test_killed_worker_stops_the_job_and_a_restart_resumes(fashion_builder, tfds_dir,
                                                           tmp_path):
    workdir, logs = tmp_path / "workdir", tmp_path / "logs"
    flags = ["--strategy=multi_worker", "--dataset=fashion_mnist", "--split=train[:640]",
             "--batch_size=64", "--checkpoint_every_epochs=1",
             f"--tfds_data_dir={tfds_dir}", f"--workdir={workdir}"]
    launcher = subprocess.Popen(
        [sys.executable, os.path.join(LAUNCH_DIR, "local.py"), "--num_workers=2",
         f"--log_dir={logs}", "--", *flags, "--epochs=100"],
        stderr=subprocess.PIPE, text=True)
    try:
        assert _wait_for(lambda: tf.train.latest_checkpoint(str(workdir / "checkpoints")),
                         180), "no checkpoint was written"
        os.kill(int((logs / "worker_1.pid").read_text()), signal.SIGKILL)
        _, stderr = launcher.communicate(timeout=60)  # stopped, not hanging
    finally:
        if launcher.poll() is None:
            launcher.kill()
    assert launcher.returncode != 0
    # The survivor may fail in the same instant (its collective lost the peer).
    assert "worker 1 exited with status -9" in stderr and "stopping the others" in stderr
    saved = int(tf.train.latest_checkpoint(str(workdir / "checkpoints")).split("-")[-1])
    assert saved >= 10

    # The whole job restarted with the same flags resumes from that checkpoint.
    status = local.launch(2, [*flags, "--epochs=4"], log_dir=str(tmp_path / "logs2"))
    chief_log = (tmp_path / "logs2" / "worker_0.log").read_text()
    assert status == 0, chief_log[-3000:]
    assert f"at step {saved}" in chief_log
    assert tf.train.latest_checkpoint(str(workdir / "checkpoints")).endswith("ckpt-40")


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


def _stop_worker_1_after(text, flags, logs):
    """Runs a 2-worker job until the chief logs `text`, sends SIGTERM to worker 1, and
    returns (the launcher's status, the step every worker says it saved, the logs)."""
    launcher = subprocess.Popen(
        [sys.executable, os.path.join(LAUNCH_DIR, "local.py"), "--num_workers=2",
         f"--log_dir={logs}", "--", *flags, "--epochs=100"],
        stderr=subprocess.PIPE, text=True)
    try:
        chief_log = logs / "worker_0.log"
        assert _wait_for(lambda: launcher.poll() is not None or (
            chief_log.exists() and text in chief_log.read_text()), 180)
        assert launcher.poll() is None, chief_log.read_text()[-3000:]
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


def test_sigterm_to_one_worker_saves_every_worker_at_one_step(fashion_builder, tfds_dir,
                                                              tmp_path):
    """PreemptionCheckpointHandler: a SIGTERM to worker 1 makes both workers save the
    same step and exit 75 (resumable), twice in a row; then the job runs to its end."""
    workdir = tmp_path / "workdir"
    flags = ["--strategy=multi_worker", "--dataset=fashion_mnist", "--split=train[:640]",
             "--batch_size=64", f"--tfds_data_dir={tfds_dir}", f"--workdir={workdir}"]
    status, first, _ = _stop_worker_1_after("epoch: 1/100", flags, tmp_path / "logs1")
    assert status == 75 and first >= 10  # at least one epoch (10 steps) was trained
    assert tf.train.latest_checkpoint(str(workdir / "checkpoints")).endswith(f"ckpt-{first}")

    # Resumed, and stopped again: the workers must agree on a step again.
    status, second, texts = _stop_worker_1_after(
        f"epoch: {first // 10 + 2}/100", flags, tmp_path / "logs2")
    assert status == 75 and f"at step {first}" in texts[0] and second > first
    assert tf.train.latest_checkpoint(str(workdir / "checkpoints")).endswith(
        f"ckpt-{second}")

    status = local.launch(2, [*flags, f"--max_steps={second + 2}"],
                          log_dir=str(tmp_path / "logs3"))
    chief_log = (tmp_path / "logs3" / "worker_0.log").read_text()
    assert status == 0, chief_log[-3000:]
    assert f"at step {second}" in chief_log
    assert tf.train.latest_checkpoint(str(workdir / "checkpoints")).endswith(
        f"ckpt-{second + 2}")
