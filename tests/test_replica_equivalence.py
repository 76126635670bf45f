"""One replica at global batch B and four logical-CPU replicas at B/4 each train alike.

Same data (the pipeline splits each global batch), same noise and dropout masks (drawn
per global row, see rng.py), synchronized batch norm, losses averaged over the global
batch and gradients summed over replicas.

Two optimizers, for two reasons:
- SGD: its update is linear in the gradient, so the weights must agree to float32
  round-off, and a wrongly scaled loss (a per-replica mean: 4x the gradient) shows.
- Adam (the article's): it divides by the gradient's magnitude, so a gradient that is
  ~0 by cancellation (batch norm follows the dense layer) turns summation-order round-off
  into up to a whole step of lr for that entry. Its losses are compared tightly, its
  weights entry by entry: nearly all must agree to round-off.
"""

import dataclasses

import keras
import numpy as np
import tensorflow as tf

from conftest import mirrored, settled
from dcgan_dist.training import train_step
from dcgan_dist.training.config import TrainConfig
from dcgan_dist.data import pipeline

GLOBAL_BATCH = 32
STEPS = 4
SGD_LEARNING_RATE = 0.01


def _with_sgd(state, strategy):
    """`state` with plain SGD for both networks (its step must be made anew)."""
    with strategy.scope():
        optimizers = []
        for model in (state.generator, state.discriminator):
            optimizer = keras.optimizers.SGD(SGD_LEARNING_RATE)
            optimizer.build(model.trainable_variables)
            optimizers.append(optimizer)
    return dataclasses.replace(state, generator_optimizer=optimizers[0],
                               discriminator_optimizer=optimizers[1])


def _train(fashion_builder, num_replicas, tmp_path, optimizer, sync_batch_norm=True):
    strategy = mirrored(num_replicas)
    config = TrainConfig(workdir=str(tmp_path), batch_size=GLOBAL_BATCH, seed=3,
                         precision="fp32", sync_batch_norm=sync_batch_norm)
    built = train_step.build(settled(config, strategy), strategy,
                             pipeline.tfds_images(fashion_builder, "train[:320]"))
    state, train_steps, iterator = built.state, built.train_steps, built.iterator()
    if optimizer == "sgd":
        state = _with_sgd(state, strategy)
        train_steps = train_step.make_train_steps(state, strategy, GLOBAL_BATCH)
    initial = [v.numpy() for v in state.generator.weights + state.discriminator.weights]
    metrics = [{k: float(v) for k, v in train_steps(iterator, tf.constant(1)).items()}
               for _ in range(STEPS)]
    final = [v.numpy() for v in state.generator.weights + state.discriminator.weights]
    return initial, final, metrics, int(state.step.numpy())


def _max_change(before, after):
    return max(float(np.abs(a - b).max()) for a, b in zip(before, after))


def test_one_and_four_replicas_give_the_same_weights_sgd(fashion_builder, tmp_path):
    init1, final1, metrics1, steps1 = _train(fashion_builder, 1, tmp_path / "1", "sgd")
    init4, final4, metrics4, steps4 = _train(fashion_builder, 4, tmp_path / "4", "sgd")
    assert steps1 == steps4 == STEPS
    for a, b in zip(init1, init4):
        np.testing.assert_array_equal(a, b)  # same seed, same start
    assert _max_change(init1, final1) > 1e-3  # training moved: the check below means something
    for a, b in zip(final1, final4):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-6)
    for m1, m4 in zip(metrics1, metrics4):
        for name in train_step.METRICS:
            np.testing.assert_allclose(m4[name], m1[name], rtol=1e-5)


def test_one_and_four_replicas_agree_with_adam(fashion_builder, tmp_path):
    _, final1, metrics1, _ = _train(fashion_builder, 1, tmp_path / "1", "adam")
    _, final4, metrics4, _ = _train(fashion_builder, 4, tmp_path / "4", "adam")
    learning_rate = TrainConfig(workdir="unused").g_learning_rate  # both: the article's
    # No parameter is more than the round-off-amplified steps apart (each step moves a
    # parameter by at most ~lr) ...
    assert _max_change(final1, final4) < STEPS * learning_rate
    # ... and nearly all agree to round-off (measured: 0.6-1.8% of the dense kernel's
    # entries differ by more, about 1% of all parameters).
    close = np.concatenate([np.isclose(b, a, rtol=1e-4, atol=1e-6).ravel()
                            for a, b in zip(final1, final4)])
    assert close.mean() > 0.97
    for m1, m4 in zip(metrics1, metrics4):
        for name in train_step.METRICS:
            np.testing.assert_allclose(m4[name], m1[name], rtol=1e-5)


def test_unsynchronized_batch_norm_breaks_equivalence(fashion_builder, tmp_path):
    """The SGD check can fail: per-replica batch statistics give other weights."""
    _, final1, _, _ = _train(fashion_builder, 1, tmp_path / "1", "sgd")
    _, final4, _, _ = _train(fashion_builder, 4, tmp_path / "4", "sgd",
                             sync_batch_norm=False)
    assert _max_change(final1, final4) > 1e-3
