"""Creating the tf.distribute strategy, and the few facts the loop needs from it.

The training loop is the same for every strategy; what differs is only how replicas are
found: GPUs on this host, N logical CPU devices (how a machine without accelerators runs
and tests multi-replica code), worker processes named by TF_CONFIG, or a Cloud TPU.
"""

import json
import os

import tensorflow as tf

from dcgan_dist.errors import ConfigError
from dcgan_dist.training.config import STRATEGIES


def _split_cpu(num_devices):
    """Expose the host CPU as `num_devices` logical devices (before TF initializes)."""
    cpu = tf.config.list_physical_devices("CPU")[0]
    current = tf.config.get_logical_device_configuration(cpu)
    if current is not None and len(current) == num_devices:
        return
    try:
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * num_devices)
    except RuntimeError:
        have = len(tf.config.list_logical_devices("CPU"))
        raise ConfigError(
            f"--cpu_replicas={num_devices} must be set before TensorFlow starts, and this "
            f"process already runs with {have} CPU device(s); pass it on the command line "
            "of a fresh process.") from None


def make_strategy(name, cpu_replicas=1, tpu=""):
    """The strategy called `name` (one of STRATEGIES).

    Args:
      cpu_replicas: with no GPU, split the CPU into this many logical devices and mirror
        over them (`mirrored`, and `one_device`/`default` ignore the extra devices).
      tpu: TPU name or address for `tpu` ("" = the TPU VM this runs on / TPU_NAME).
    """
    if name not in STRATEGIES:
        raise ConfigError(f"--strategy={name} is unknown; use one of {', '.join(STRATEGIES)}.")
    if cpu_replicas < 1:
        raise ConfigError(f"--cpu_replicas={cpu_replicas} must be at least 1.")
    if name == "multi_worker" and "TF_CONFIG" not in os.environ:
        raise ConfigError("--strategy=multi_worker needs the TF_CONFIG environment variable "
                          "(cluster and task); launch/ has scripts that set it.")
    gpus = tf.config.list_physical_devices("GPU")
    if cpu_replicas > 1 and not gpus:
        _split_cpu(cpu_replicas)
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "one_device":
        return tf.distribute.OneDeviceStrategy("/gpu:0" if gpus else "/cpu:0")
    if name == "mirrored":
        if gpus:
            return tf.distribute.MirroredStrategy()
        devices = [f"/cpu:{i}" for i in range(cpu_replicas)]
        return tf.distribute.MirroredStrategy(devices)
    if name == "multi_worker":
        try:
            json.loads(os.environ["TF_CONFIG"])
        except ValueError as e:
            raise ConfigError(f"TF_CONFIG is not valid JSON ({e}).") from None
        return tf.distribute.MultiWorkerMirroredStrategy()
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu or None)
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    return tf.distribute.TPUStrategy(resolver)


def task_info(strategy):
    """(task_type, task_id) of this process, or (None, None) outside a cluster."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return None, None
    return resolver.task_type, resolver.task_id


def num_workers(strategy):
    """Processes that train together: the workers (and chief) of a multi-worker job, else
    1 (a TPU's hosts are driven by this one process)."""
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return 1
    spec = strategy.cluster_resolver.cluster_spec().as_dict()
    return max(1, len(spec.get("worker", [])) + len(spec.get("chief", [])))


def is_chief(strategy):
    """Whether this process writes summaries, images and the real checkpoints.

    TensorFlow's rule: the `chief` task, or worker 0 when the cluster has no chief.
    """
    task_type, task_id = task_info(strategy)
    if task_type is None or task_type == "chief":
        return True
    if task_type != "worker" or task_id != 0:
        return False
    return "chief" not in strategy.cluster_resolver.cluster_spec().as_dict()
