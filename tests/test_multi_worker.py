"""MultiWorkerMirroredStrategy in real processes on 127.0.0.1, started by launch/local.py."""

import os
import sys

import numpy as np
import tensorflow as tf

from conftest import run_cli

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "launch"))
import local  # noqa: E402  (launch/local.py)


def _checkpoint_values(workdir):
    reader = tf.train.load_checkpoint(os.path.join(workdir, "checkpoints"))
    return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()
            if not name.startswith(("save_counter", "_CHECKPOINTABLE"))}


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
    # Both workers report the same global-batch losses at every step.
    lines = [[line for line in log.splitlines() if "| epoch:" in line] for log in logs]
    assert lines[0] and [l.split("| g_loss")[1] for l in lines[0]] == \
        [l.split("| g_loss")[1] for l in lines[1]]

    single = str(tmp_path / "single")
    result = run_cli("dcgan_dist.train", "--strategy=mirrored", f"--workdir={single}",
                     *flags)
    assert result.returncode == 0, result.stderr[-3000:]
    expected, got = _checkpoint_values(single), _checkpoint_values(workers)
    assert expected.keys() == got.keys()
    for name in expected:
        np.testing.assert_allclose(got[name], expected[name], rtol=1e-4, atol=2e-6,
                                   err_msg=name)
