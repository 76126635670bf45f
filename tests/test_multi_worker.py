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
    flags = ["--dataset=fashion_mnist", "--split=train[:640]", "--batch_size=64",
             "--epochs=1", "--max_steps=4", f"--tfds_data_dir={tfds_dir}"]
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
    for name in expected:
        np.testing.assert_allclose(got[name], expected[name], rtol=1e-4, atol=2e-6,
                                   err_msg=name)


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
