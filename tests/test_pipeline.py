"""The input pipeline on real Fashion-MNIST through tfds."""

import hashlib

import numpy as np
import pytest
import tensorflow as tf

from conftest import mirrored
from dcgan_dist.data import pipeline
from dcgan_dist.training import strategies

SPLIT = "train[:640]"
BATCH = 64


@pytest.fixture(scope="module")
def source(fashion_builder):
    return pipeline.tfds_images(fashion_builder, SPLIT)


def _stream(source, num_batches, seed=0, start_step=0, pipelines=1, pipeline_id=0,
            replicas=1):
    images_fn, count = source
    dataset_fn = pipeline.make_dataset_fn(images_fn, count, BATCH, seed, start_step)
    context = tf.distribute.InputContext(pipelines, pipeline_id, replicas)
    per_step = replicas // pipelines
    return [b.numpy() for b in dataset_fn(context).take(num_batches * per_step)]


def _ids(batch):
    return [hashlib.sha1(image.tobytes()).hexdigest() for image in batch]


def test_batches_are_scaled_real_images(source, fashion_builder):
    images_fn, count = source
    assert count == 640
    raw = {hashlib.sha1(((im.astype(np.float32) - 127.5) / 127.5).tobytes()).hexdigest()
           for im in images_fn().as_numpy_iterator()}
    batches = _stream(source, 10)
    for batch in batches:
        assert batch.shape == (BATCH, 28, 28, 1) and batch.dtype == np.float32
        assert batch.min() >= -1.0 and batch.max() <= 1.0
        assert set(_ids(batch)) <= raw


def test_each_epoch_is_a_fresh_permutation(source):
    batches = _stream(source, 30)  # 10 steps per epoch: 3 epochs
    epochs = [sum((_ids(b) for b in batches[i:i + 10]), []) for i in (0, 10, 20)]
    for ids in epochs:
        assert len(set(ids)) == 640  # every image once per epoch
    assert set(epochs[0]) == set(epochs[1]) == set(epochs[2])
    assert epochs[0] != epochs[1] and epochs[1] != epochs[2]


def test_order_is_fixed_by_the_seed(source):
    a, b, c = _stream(source, 3, seed=1), _stream(source, 3, seed=1), _stream(source, 3, 2)
    np.testing.assert_array_equal(np.stack(a), np.stack(b))
    assert not np.array_equal(np.stack(a), np.stack(c))


@pytest.mark.parametrize("start_step", [1, 10, 17])  # mid-epoch, epoch boundary, later
def test_resumed_stream_equals_the_rest_of_the_uninterrupted_one(source, start_step):
    whole = _stream(source, 25)
    resumed = _stream(source, 25 - start_step, start_step=start_step)
    np.testing.assert_array_equal(np.stack(resumed), np.stack(whole[start_step:]))


def test_replicas_and_workers_split_each_global_batch(source):
    whole = _stream(source, 4)
    # One pipeline feeding 4 replicas: per-replica batches in replica order.
    four = _stream(source, 4, replicas=4)
    assert four[0].shape == (BATCH // 4, 28, 28, 1)
    np.testing.assert_array_equal(np.concatenate(four), np.concatenate(whole))
    # Two workers with 2 replicas each: each takes its half of every global batch.
    halves = [_stream(source, 4, pipelines=2, pipeline_id=i, replicas=4) for i in (0, 1)]
    for step in range(4):
        rebuilt = np.concatenate(halves[0][2 * step:2 * step + 2]
                                 + halves[1][2 * step:2 * step + 2])
        np.testing.assert_array_equal(rebuilt, whole[step])


def test_per_replica_pipelines_on_cpu_devices_feed_the_same_batches(source):
    """A MirroredStrategy over CPU devices gets a pipeline per replica
    (strategies.input_options): each replica sees what TensorFlow's default, one
    pipeline whose batches a multi-device iterator splits, gives it."""
    strategy = mirrored(4)
    options = strategies.input_options(strategy)
    assert options.experimental_replication_mode == \
        tf.distribute.InputReplicationMode.PER_REPLICA
    assert strategies.input_options(tf.distribute.OneDeviceStrategy("/cpu:0")) is None
    assert strategies.input_options(tf.distribute.get_strategy()) is None
    images_fn, count = source
    dataset_fn = pipeline.make_dataset_fn(images_fn, count, BATCH, 0)

    def steps(options):
        iterator = iter(strategy.distribute_datasets_from_function(dataset_fn, options))
        return [[t.numpy() for t in strategy.experimental_local_results(next(iterator))]
                for _ in range(3)]

    per_replica, default = steps(options), steps(None)
    whole = _stream(source, 3)
    for step in range(3):
        for replica in range(4):
            np.testing.assert_array_equal(per_replica[step][replica],
                                          default[step][replica])
        np.testing.assert_array_equal(np.concatenate(per_replica[step]), whole[step])
    # Without tf.data's autotuning thread (pipeline.without_autotuning).
    assert dataset_fn(tf.distribute.InputContext()).options().autotune.enabled is False


def test_bf16_batches(source):
    images_fn, count = source
    dataset_fn = pipeline.make_dataset_fn(images_fn, count, BATCH, 0, dtype=tf.bfloat16)
    batch = next(iter(dataset_fn(tf.distribute.InputContext())))
    assert batch.dtype == tf.bfloat16


def test_too_few_images_for_a_batch_is_an_error(source):
    images_fn, _ = source
    with pytest.raises(ValueError, match="make no batch"):
        pipeline.make_dataset_fn(images_fn, 10, BATCH, 0)
