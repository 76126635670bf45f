"""One replica at global batch B and four logical-CPU replicas at B/4 each train alike.

Same data (the pipeline splits each global batch), same noise and dropout masks (drawn
per global row, see rng.py), synchronized batch norm, losses averaged over the global
batch and gradients summed over replicas: the weights must agree to float32 round-off.
"""

import numpy as np
import pytest
import tensorflow as tf

from conftest import mirrored
from dcgan_dist import train_lib
from dcgan_dist.config import TrainConfig
from dcgan_dist.data import pipeline

GLOBAL_BATCH = 32
STEPS = 4


def _train(fashion_builder, num_replicas, tmp_path, sync_batch_norm=True):
    strategy = mirrored(num_replicas)
    config = TrainConfig(workdir=str(tmp_path), batch_size=GLOBAL_BATCH, seed=3)
    state = train_lib.create_state(config, strategy, sync_batch_norm=sync_batch_norm)
    initial = [v.numpy() for v in state.generator.weights + state.discriminator.weights]
    images_fn, count = pipeline.tfds_images(fashion_builder, "train[:320]")
    dataset = strategy.distribute_datasets_from_function(
        pipeline.make_dataset_fn(images_fn, count, GLOBAL_BATCH, config.seed))
    iterator = iter(dataset)
    train_steps = train_lib.make_train_steps(state, strategy, GLOBAL_BATCH)
    metrics = [{k: float(v) for k, v in train_steps(iterator, tf.constant(1)).items()}
               for _ in range(STEPS)]
    final = [v.numpy() for v in state.generator.weights + state.discriminator.weights]
    return initial, final, metrics, int(state.step.numpy())


def test_one_and_four_replicas_give_the_same_weights(fashion_builder, tmp_path):
    init1, final1, metrics1, steps1 = _train(fashion_builder, 1, tmp_path / "one")
    init4, final4, metrics4, steps4 = _train(fashion_builder, 4, tmp_path / "four")
    assert steps1 == steps4 == STEPS
    for a, b in zip(init1, init4):
        np.testing.assert_array_equal(a, b)  # same seed, same start
    moved = max(float(np.abs(f - i).max()) for f, i in zip(final1, init1))
    assert moved > 1e-4  # training changed the weights: the comparison below means something
    for a, b in zip(final1, final4):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=2e-6)
    for m1, m4 in zip(metrics1, metrics4):
        for name in train_lib.METRICS:
            np.testing.assert_allclose(m4[name], m1[name], rtol=1e-5)


def test_unsynchronized_batch_norm_breaks_equivalence(fashion_builder, tmp_path):
    """The check above can fail: per-replica batch statistics give other weights."""
    _, final1, _, _ = _train(fashion_builder, 1, tmp_path / "one")
    _, final4, _, _ = _train(fashion_builder, 4, tmp_path / "four", sync_batch_norm=False)
    worst = max(float(np.abs(a - b).max()) for a, b in zip(final1, final4))
    assert worst > 1e-4
