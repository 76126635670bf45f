"""Creating the tf.distribute strategy, and the few facts the loop needs from it.

The training loop is the same for every strategy; what differs is only how replicas are
found: GPUs on this host, N logical CPU devices (how a machine without accelerators runs
and tests multi-replica code), worker processes named by TF_CONFIG, or a Cloud TPU.
"""

import json
import os

import tensorflow as tf

from dcgan_dist.errors import ConfigError
from dcgan_dist.options import STRATEGIES


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


def input_options(strategy):
    """The `tf.distribute.InputOptions` for the training data under `strategy`: None
    (TensorFlow's default: one input pipeline per worker, whose batches a multi-device
    iterator prefetches into each replica's device memory), except for a MirroredStrategy
    whose replicas are all CPU devices, which gets one pipeline per replica on the host.

    On CPU devices there is no device memory to fetch into, and the multi-device iterator
    only adds work: a per-device GeneratorDataset, and per device a tf.data iterator whose
    autotuning thread (TensorFlow 2.21) is not woken when the iterator is deleted, so
    that deleting it waits out the thread's current optimization period (doubling to
    60 s): up to a minute idle at the end of every run. Per-replica pipelines
    (InputReplicationMode.PER_REPLICA, which only MirroredStrategy offers) are plain
    iterators of our own dataset, whose autotuning pipeline.make_dataset_fn turns off.
    The batches are the same: the dataset_fn slices each replica's rows out of the
    global batch whether it serves one replica or all of them (pipeline.py).
    """
    if type(strategy) is tf.distribute.MirroredStrategy and all(
            tf.DeviceSpec.from_string(device).device_type == "CPU"
            for device in strategy.extended.worker_devices):
        return tf.distribute.InputOptions(
            experimental_replication_mode=tf.distribute.InputReplicationMode.PER_REPLICA,
            experimental_fetch_to_device=False)
    return None


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
