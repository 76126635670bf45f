"""Shared fixtures. The CPU is split into 4 logical devices before TensorFlow starts, so
multi-replica code runs under MirroredStrategy on a machine without accelerators."""

import functools
import os
import subprocess
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

NUM_CPU_DEVICES = 4
tf.config.set_logical_device_configuration(
    tf.config.list_physical_devices("CPU")[0],
    [tf.config.LogicalDeviceConfiguration()] * NUM_CPU_DEVICES)

FASHION_DIR = "/usr/share/datasets/fashion-mnist"


@functools.lru_cache(maxsize=None)
def mirrored(num_replicas):
    """One MirroredStrategy per replica count for the whole session: two strategies over
    the same devices in one process reuse collective instance keys and abort."""
    return tf.distribute.MirroredStrategy([f"/cpu:{i}" for i in range(num_replicas)])


@pytest.fixture(scope="session")
def fashion_dir():
    """Debian's Fashion-MNIST (package dataset-fashion-mnist), the real data of the tests."""
    if not os.path.isfile(os.path.join(FASHION_DIR, "train-images-idx3-ubyte.gz")):
        pytest.fail(f"{FASHION_DIR} is missing: apt-get install dataset-fashion-mnist")
    return FASHION_DIR


@pytest.fixture(scope="session")
def tfds_dir(tmp_path_factory):
    """A tfds data_dir for the whole session, so Fashion-MNIST is prepared once."""
    return str(tmp_path_factory.mktemp("tfds"))


@pytest.fixture(scope="session")
def fashion_builder(fashion_dir, tfds_dir):
    from dcgan_dist.data import idx_builder
    return idx_builder.prepared_idx_builder(fashion_dir, "fashion_mnist", tfds_dir)


def checkpoint_values(workdir):
    """{name: value} of every variable in the latest checkpoint of `workdir`."""
    reader = tf.train.load_checkpoint(os.path.join(workdir, "checkpoints"))
    return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()
            if not name.startswith(("save_counter", "_CHECKPOINTABLE"))}


def run_cli(module, *args, timeout=600):
    """Runs `python -m module args` in a real process; returns the CompletedProcess."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1")
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True,
                          text=True, timeout=timeout, env=env)
