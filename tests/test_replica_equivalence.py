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

Both run in float32 (precision="fp32", whatever the CPU), so the bounds are float32's.
Measured on an Intel Xeon with AMX (oneDNN's AVX-512 kernels) and with
ONEDNN_MAX_CPU_ISA=AVX2 (what a CPU without AVX-512 runs: other summation orders); each
bound below names both values and its margin. Each test also takes one step more on the
one-replica run, a run that is genuinely different, and shows it misses the bound.
"""

import dataclasses

import keras
import numpy as np
import tensorflow as tf

from conftest import mirrored, settled
from dcgan_dist.training import augment, train_step
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


def _train(fashion_builder, num_replicas, tmp_path, optimizer, sync_batch_norm=True,
           one_more=False, diffaugment="", conditional=False):
    """Weights before and after STEPS steps, the steps' metrics and the step count; with
    `one_more`, also the weights after one step more (the contrast)."""
    strategy = mirrored(num_replicas)
    config = TrainConfig(workdir=str(tmp_path), batch_size=GLOBAL_BATCH, seed=3,
                         precision="fp32", sync_batch_norm=sync_batch_norm,
                         diffaugment=diffaugment, conditional=conditional)
    classes = [str(k) for k in range(10)] if conditional else None
    built = train_step.build(settled(config, strategy, classes), strategy,
                             pipeline.tfds_images(fashion_builder, "train[:320]",
                                                  labels=conditional))
    state, train_steps, iterator = built.state, built.train_steps, built.iterator()
    if optimizer == "sgd":
        state = _with_sgd(state, strategy)
        train_steps = train_step.make_train_steps(
            state, strategy, GLOBAL_BATCH, augmentations=built.config.augmentations,
            class_loss=built.config.class_loss)
    initial = [v.numpy() for v in state.generator.weights + state.discriminator.weights]
    metrics = [{k: float(v) for k, v in train_steps(iterator, tf.constant(1)).items()}
               for _ in range(STEPS)]
    final = [v.numpy() for v in state.generator.weights + state.discriminator.weights]
    steps = int(state.step.numpy())
    if not one_more:
        return initial, final, metrics, steps
    train_steps(iterator, tf.constant(1))
    later = [v.numpy() for v in state.generator.weights + state.discriminator.weights]
    return initial, final, metrics, steps, later


def _max_change(before, after):
    return max(float(np.abs(a - b).max()) for a, b in zip(before, after))


def _differences(before, after):
    return np.concatenate([np.abs(a - b).ravel() for a, b in zip(before, after)])


def _not_close_share(before, after):
    """The share of parameters that differ by more than round-off."""
    return 1 - np.concatenate([np.isclose(b, a, rtol=1e-4, atol=1e-6).ravel()
                               for a, b in zip(before, after)]).mean()


# SGD, 1 against 4 replicas: float32 round-off. Measured at most 6.0e-8 (one unit in the
# last place of a batch-norm scale near 1) with oneDNN's AVX-512 and AVX2 kernels and
# with TensorFlow's own (TF_ENABLE_ONEDNN_OPTS=0); bound 1e-6, 17x that. One step more
# is 9.6e-3 apart (10^4 times the bound); one replica's gradients 2e-4 too large,
# 4.5e-6 (4.5x).
SGD_ROUND_OFF = 1e-6
# The losses of each step, both optimizers: measured 1.1e-7 to 7.4e-7 relative (AVX2's
# Adam the most); bound 1e-5, 13x.
LOSS_RTOL = 1e-5
# Adam, 1 against 4 replicas (see the module's docstring: where a gradient cancels to ~0,
# round-off picks the sign of a whole step of lr). Measured with AVX-512 / AVX2 kernels:
# - half the parameters within 1.6e-7 / 1.2e-7 (the median): bound 1e-6, 6x; one step
#   more moves the median parameter 4.7e-5, 47x the bound;
# - 1.3% / 1.2% of them not equal to round-off (rtol 1e-4, atol 1e-6): bound 3%, 2.3x;
#   one step more: 97%;
# - 226 / 430 of the 2.54M parameters (0.009% / 0.017%) more than a tenth of a step
#   (lr / 10) apart: bound 0.1%, 6x; one step more moves 89% that far, 900x the bound;
# - the farthest 5.7e-5 / 7.8e-5 apart (0.57 lr / 0.78 lr). That one is bounded by what
#   Adam's step is, ~lr per step and entry, not by round-off: STEPS * lr. (TensorFlow's
#   own kernels sum in one order on both counts here: 1.2e-7, no entry amplified.)
ADAM_MEDIAN = 1e-6
ADAM_NOT_CLOSE_SHARE = 0.03
ADAM_FAR_SHARE = 1e-3


def test_one_and_four_replicas_give_the_same_weights_sgd(fashion_builder, tmp_path):
    init1, final1, metrics1, steps1, later1 = _train(fashion_builder, 1, tmp_path / "1",
                                                     "sgd", one_more=True)
    init4, final4, metrics4, steps4 = _train(fashion_builder, 4, tmp_path / "4", "sgd")
    assert steps1 == steps4 == STEPS
    for a, b in zip(init1, init4):
        np.testing.assert_array_equal(a, b)  # same seed, same start
    assert _max_change(init1, final1) > 1e-3  # training moved: the check below means something
    assert _max_change(final1, final4) <= SGD_ROUND_OFF
    assert _max_change(final1, later1) > 1000 * SGD_ROUND_OFF  # another run misses it
    for m1, m4 in zip(metrics1, metrics4):
        for name in train_step.METRICS:
            np.testing.assert_allclose(m4[name], m1[name], rtol=LOSS_RTOL)


def test_one_and_four_replicas_agree_with_adam(fashion_builder, tmp_path):
    _, final1, metrics1, _, later1 = _train(fashion_builder, 1, tmp_path / "1", "adam",
                                            one_more=True)
    _, final4, metrics4, _ = _train(fashion_builder, 4, tmp_path / "4", "adam")
    learning_rate = TrainConfig(workdir="unused").g_learning_rate  # both: the article's
    apart, one_more = _differences(final1, final4), _differences(final1, later1)
    # Nearly all parameters agree to round-off ...
    assert np.median(apart) <= ADAM_MEDIAN, np.median(apart)
    not_close = _not_close_share(final1, final4)
    assert not_close <= ADAM_NOT_CLOSE_SHARE, f"{not_close:.2%} not equal to round-off"
    far = (apart > learning_rate / 10).mean()
    assert far <= ADAM_FAR_SHARE, f"{far:.3%} of the parameters over lr / 10 apart"
    # ... where one step more (a genuinely different run) misses them by far ...
    assert np.median(one_more) > 10 * ADAM_MEDIAN
    assert _not_close_share(final1, later1) > 10 * ADAM_NOT_CLOSE_SHARE
    assert (one_more > learning_rate / 10).mean() > 100 * ADAM_FAR_SHARE
    # ... and the few that round-off tipped are no further apart than the steps allow.
    assert apart.max() < STEPS * learning_rate
    for m1, m4 in zip(metrics1, metrics4):
        for name in train_step.METRICS:
            np.testing.assert_allclose(m4[name], m1[name], rtol=LOSS_RTOL)


def test_unsynchronized_batch_norm_breaks_equivalence(fashion_builder, tmp_path):
    """The SGD check can fail: per-replica batch statistics give other weights."""
    _, final1, _, _ = _train(fashion_builder, 1, tmp_path / "1", "sgd")
    _, final4, _, _ = _train(fashion_builder, 4, tmp_path / "4", "sgd",
                             sync_batch_norm=False)
    assert _max_change(final1, final4) > 1e-3


# SGD with every DiffAugment policy on, 1 against 4 replicas: measured at most 3.6e-6
# (translation alone; color alone 2.5e-6, cutout alone 6.0e-8) on the Xeon with AMX.
# The augmented images themselves are bitwise equal (the test below): the rest is the
# round-off of their backward pass (the gather's gradient, the contrast's image mean)
# summed in another order at another batch shape. Bound 3e-5, 8x; one step more is
# 9.6e-3 apart (300x the bound).
AUGMENTED_ROUND_OFF = 3e-5


def test_each_row_is_augmented_alike_on_one_and_four_replicas():
    images = tf.constant(np.random.RandomState(0).uniform(-1, 1, (GLOBAL_BATCH, 28, 28, 1)),
                         tf.float32)
    seed, policy = tf.constant([3, 5], tf.int64), ("color", "translation", "cutout")
    one = augment.augment(images, policy, seed).numpy()
    strategy = mirrored(4)
    batches = strategy.experimental_distribute_dataset(
        tf.data.Dataset.from_tensors(images))

    @tf.function
    def per_replica(batch):
        return strategy.run(lambda rows: augment.augment(rows, policy, seed), args=(batch,))

    four = np.concatenate([part.numpy() for part in strategy.experimental_local_results(
        per_replica(next(iter(batches))))])
    np.testing.assert_array_equal(four, one)
    assert not np.array_equal(one, images.numpy())


def test_augmented_runs_give_the_same_weights_on_one_and_four_replicas(fashion_builder,
                                                                      tmp_path):
    """DiffAugment draws each global row's transform from the step's seed: the replica
    that holds a row does not change it (SGD, every policy on)."""
    policy = "color,translation,cutout"
    _, final1, metrics1, _ = _train(fashion_builder, 1, tmp_path / "1", "sgd",
                                    diffaugment=policy)
    _, final4, metrics4, _ = _train(fashion_builder, 4, tmp_path / "4", "sgd",
                                    diffaugment=policy)
    _, plain, _, _ = _train(fashion_builder, 1, tmp_path / "plain", "sgd")
    assert _max_change(final1, final4) <= AUGMENTED_ROUND_OFF
    # Augmentation acts: 1.8e-3 from the same run without it (60x the bound).
    assert _max_change(final1, plain) > 20 * AUGMENTED_ROUND_OFF
    for m1, m4 in zip(metrics1, metrics4):
        for name in train_step.METRICS:
            np.testing.assert_allclose(m4[name], m1[name], rtol=LOSS_RTOL)


# SGD, a conditional run (--conditional's defaults: conditional batch norm, a projection
# discriminator and its classification loss) with every DiffAugment policy on, 1
# against 4 replicas: measured 1.2e-7 on the Xeon with AMX; the
# bound is the augmented run's, AUGMENTED_ROUND_OFF (its backward pass's round-off
# applies here too). Fake labels drawn by each replica from row 0 instead of its own
# rows: 9.2e-4 apart (30x the bound); one step more: 9.6e-3.


def test_conditional_runs_give_the_same_weights_on_one_and_four_replicas(fashion_builder,
                                                                        tmp_path):
    """Each global row keeps its real label on any replica, and gets the same fake label
    (rng.uniform_rows from the step's seed): SGD, augmented, conditional."""
    policy = "color,translation,cutout"
    _, final1, metrics1, _, later1 = _train(fashion_builder, 1, tmp_path / "1", "sgd",
                                            diffaugment=policy, conditional=True,
                                            one_more=True)
    _, final4, metrics4, _ = _train(fashion_builder, 4, tmp_path / "4", "sgd",
                                    diffaugment=policy, conditional=True)
    assert _max_change(final1, final4) <= AUGMENTED_ROUND_OFF
    assert _max_change(final1, later1) > 20 * AUGMENTED_ROUND_OFF  # another run misses
    for m1, m4 in zip(metrics1, metrics4):
        for name in train_step.METRICS:
            np.testing.assert_allclose(m4[name], m1[name], rtol=LOSS_RTOL)
