"""The averaged generator: its recurrence, its schedule, its equality on every replica and
across replica counts, and the tools that show it by default."""

import dataclasses
import json
import os

import imageio.v3 as iio
import numpy as np
import pytest
import tensorflow as tf

from conftest import common_flags, mirrored, run_cli, settled
from dcgan_dist import workdir as layout
from dcgan_dist.inference import sampling, savedmodel, runs
from dcgan_dist.training import ema, train_step
from dcgan_dist.training.config import TrainConfig
from dcgan_dist.data import pipeline

GLOBAL_BATCH = 32
STEPS = 4


def _train(fashion_builder, num_replicas, tmp_path, calls, **overrides):
    """The fast recipe (Adam 2e-4, beta1 0.5, averaging), one train_steps call per entry
    of `calls`; returns the state and the raw generator's weights after each call."""
    strategy = mirrored(num_replicas)
    config = TrainConfig(workdir=str(tmp_path), recipe="fast", batch_size=GLOBAL_BATCH,
                         seed=3, precision="fp32", **overrides)
    built = train_step.build(settled(config, strategy), strategy,
                             pipeline.tfds_images(fashion_builder, "train[:320]"))
    state, train_steps, iterator = built.state, built.train_steps, built.iterator()
    raw = [[w.numpy() for w in state.generator.weights]]
    for steps in calls:
        train_steps(iterator, tf.constant(steps))
        raw.append([w.numpy() for w in state.generator.weights])
    return strategy, state, raw


# The averaged generator against its exact expected value, the recurrence computed here
# in float32 from the raw weights after each step. float32 allows each step half an ulp
# of the largest value the entry took (the rounding of its sum), halved at every later
# step: under one such ulp in all, whatever order the sum is written in. Measured: 0
# (bitwise equal: with decay 0.5 every product is exact and each step's sum rounds once,
# as here) with oneDNN's AVX-512 and AVX2 kernels, on 1 and on 4 replicas; bound 4 ulps.
# An average of the wrong weights is far out: one that missed the last step is 9.1e-3
# off (~10^11 ulps), one that missed the first 6.2e-4 (~10^10), decay 0.6 for 0.5 3.6e-3;
# even a decay 1e-5 too large (0.500005) is up to 135 ulps off.
AVERAGE_ULPS = 4


def _largest(raw, i):
    """The largest magnitude weight `i` took in `raw`, entry by entry."""
    return np.max([np.abs(weights[i]) for weights in raw], axis=0)


def _assert_is_average(got, raw, decay):
    """`got` is the average of `raw` (the weights at the start, then after each step)
    with a fixed `decay`, to float32 rounding."""
    expected = raw[0]
    for weights in raw[1:]:
        expected = [decay * e + (1 - decay) * w for e, w in zip(expected, weights)]
    assert len(got) == len(expected)
    for i, (e, g) in enumerate(zip(expected, got)):
        _assert_within_ulps(np.abs(g - e), _largest(raw, i), f"weight {i}")


def _assert_within_ulps(gap, largest, name, allowed=0):
    """`gap` exceeds `allowed` by at most AVERAGE_ULPS units in the last place of
    `largest`, entry by entry."""
    ulps = (gap - allowed) / np.spacing(largest)
    assert ulps.max() <= AVERAGE_ULPS, (
        f"{name}: {(ulps > AVERAGE_ULPS).sum()} of {ulps.size} entries over "
        f"{AVERAGE_ULPS} ulps, up to {ulps.max():.3g}")


def test_the_average_follows_its_recurrence_weight_by_weight(fashion_builder, tmp_path):
    """With a fixed decay d, after each step: average = d * average + (1 - d) * weights,
    batch-norm statistics included; it starts as a copy of the generator."""
    _, state, raw = _train(fashion_builder, 1, tmp_path, [1] * STEPS, ema_decay=0.5)
    got = [w.numpy() for w in state.generator_ema.weights]
    assert len(got) == 16  # 4 kernels, 3 x (gamma, beta, mean, variance)
    _assert_is_average(got, raw, 0.5)
    # It trained and it averages: the average is neither the start nor the last weights.
    assert not np.allclose(got[0], raw[0][0]) and not np.allclose(got[0], raw[-1][0])


def _every_copy(strategy, variables):
    return [[c.numpy() for c in strategy.experimental_local_results(v.value)]
            for v in variables]


def test_the_average_is_equal_on_every_replica_and_across_replica_counts(fashion_builder,
                                                                        tmp_path):
    _, state1, raw1 = _train(fashion_builder, 1, tmp_path / "1", [1] * STEPS,
                             ema_decay=0.5)
    strategy4, state4, raw4 = _train(fashion_builder, 4, tmp_path / "4", [1] * STEPS,
                                     ema_decay=0.5)
    copies = _every_copy(strategy4, state4.generator_ema.weights)
    assert all(len(c) == 4 for c in copies)
    for variable_copies in copies:  # bitwise: one cross-replica assign writes them all
        for copy in variable_copies[1:]:
            np.testing.assert_array_equal(copy, variable_copies[0])
    # On 4 replicas as on 1, the average is its own run's raw weights' average (measured
    # bitwise; AVERAGE_ULPS): not, say, the weights of another step or replica.
    four = [c[0] for c in copies]
    _assert_is_average(four, raw4, 0.5)
    # Across replica counts the raw weights differ by round-off that Adam amplifies (how
    # much depends on the CPU's kernels: AVX2 sums in another order than AVX-512; the
    # last raw weights measured 5.4e-5 apart with AVX-512, 3.9e-4 (~2 lr) with AVX2), so
    # the averages are held to what averaging allows. Each is a convex combination of its
    # run's weights after each step, with the same coefficients in both runs, so entry by
    # entry the averages are no further apart than the runs' weights ever were, plus the
    # two averages' float32 rounding: each step's rounding (half an ulp of the largest
    # value the entry took) halves at every later step, under one ulp in all, two for the
    # two runs. Measured: 1 ulp over the widest gap at most (1.2e-7, a value near 1), with
    # either kernel set; bound 4 ulps (AVERAGE_ULPS).
    one = [w.numpy() for w in state1.generator_ema.weights]
    for i, (a, b) in enumerate(zip(one, four)):
        widest = np.max([np.abs(r1[i] - r4[i]) for r1, r4 in zip(raw1, raw4)], axis=0)
        largest = np.maximum(_largest(raw1, i), _largest(raw4, i))
        _assert_within_ulps(np.abs(a - b), largest, f"weight {i}", allowed=widest)
    # It averages: the average is not the last raw weights.
    assert max(float(np.abs(a - r).max()) for a, r in zip(one, raw1[-1])) > 1e-5


def test_half_life_and_ramp_up_set_the_decay():
    config = TrainConfig(workdir="unused", recipe="fast", batch_size=64,
                         ema_halflife_images=10000, ema_rampup=0.05)
    # Late: a half-life of 10,000 images is 10000/64 steps.
    np.testing.assert_allclose(float(ema.decay(config, 10**6)), 0.5 ** (64 / 10000),
                               rtol=1e-6)
    # Early: the half-life is capped at 5% of the images seen (640 -> 32 images).
    np.testing.assert_allclose(float(ema.decay(config, 640)), 0.5 ** (64 / 32), rtol=1e-6)
    no_rampup = TrainConfig(workdir="unused", recipe="fast", batch_size=64, ema_rampup=0)
    np.testing.assert_allclose(float(ema.decay(no_rampup, 640)),
                               0.5 ** (64 / no_rampup.ema_halflife_images), rtol=1e-6)
    fixed = TrainConfig(workdir="unused", recipe="fast", ema_decay=0.999)
    assert fixed.ema_halflife_images is None
    np.testing.assert_allclose(float(ema.decay(fixed, 640)), 0.999, rtol=1e-6)
    off = TrainConfig(workdir="unused", recipe="fast", ema_decay=0)
    assert not off.ema
    # Rebuilt from its own values (train() does, resolving precision), it stays off.
    assert not dataclasses.replace(off, precision="fp32").ema
    assert dataclasses.replace(fixed, precision="fp32").ema_decay == 0.999


@pytest.fixture(scope="module")
def averaged_run(tfds_dir, fashion_builder, tmp_path_factory):
    """One 10-step epoch of the fast recipe with a slow average (decay 0.9), so the
    averaged and raw generators differ clearly."""
    workdir = str(tmp_path_factory.mktemp("averaged") / "workdir")
    result = run_cli("dcgan_dist.train", *common_flags(tfds_dir, split="train[:640]"),
                     "--recipe=fast", "--ema_decay=0.9", "--epochs=1",
                     f"--workdir={workdir}")
    assert result.returncode == 0, result.stderr[-3000:]
    return workdir


def test_tools_show_the_averaged_generator_and_reach_the_raw_one(averaged_run, tmp_path):
    path = layout.resolve_checkpoint(averaged_run)
    assert runs.has_averaged_generator(path)
    averaged, raw = runs.make_networks()[0], runs.make_networks()[0]
    tf.train.Checkpoint(generator_ema=averaged).restore(path).expect_partial()
    tf.train.Checkpoint(generator=raw).restore(path).expect_partial()
    seeds = np.arange(5, 13)
    noise = sampling.noise_for_seeds(seeds)
    want_averaged = sampling.generate_images(averaged, noise)
    want_raw = sampling.generate_images(raw, noise)
    assert not np.array_equal(want_averaged, want_raw)

    default, _, _ = runs.load_networks(path)
    chosen_raw, _, _ = runs.load_networks(path, raw=True)
    np.testing.assert_array_equal(sampling.generate_images(default, noise), want_averaged)
    np.testing.assert_array_equal(sampling.generate_images(chosen_raw, noise), want_raw)

    for flag, want in (([], want_averaged), (["--raw_generator"], want_raw)):
        out = tmp_path / f"samples{len(flag)}.npz"
        result = run_cli("dcgan_dist.generate", f"--workdir={averaged_run}", "--seed=5",
                         "--num_samples=8", f"--npz={out}", *flag)
        assert result.returncode == 0, result.stderr[-3000:]
        np.testing.assert_array_equal(np.load(out)["images"], want[..., 0])

    export_dir = tmp_path / "export"
    result = run_cli("dcgan_dist.export", f"--workdir={averaged_run}",
                     f"--export_dir={export_dir}")
    assert result.returncode == 0, result.stderr[-3000:]
    served = tf.saved_model.load(str(export_dir / savedmodel.GENERATOR_FOLDER))
    by_seed = served.signatures["from_seeds"](seeds=tf.constant(seeds, tf.int64))
    np.testing.assert_array_equal(by_seed["images"].numpy(), want_averaged)


def test_the_training_grid_and_config_show_the_averaged_run(averaged_run):
    """The epoch grid is the averaged generator's (the run computes it in bf16, so it is
    compared against float32 networks with a tolerance the raw generator misses)."""
    from dcgan_dist import images, models, rng
    path = layout.resolve_checkpoint(averaged_run)
    grid_noise = rng.normal_rows([16, models.NOISE_DIM], [0, 1]).numpy()  # --seed=0
    written = iio.imread(os.path.join(averaged_run, "image_at_epoch_0001.png"))
    gaps = [np.abs(written.astype(float) - images.grid(
        runs.load_networks(path, raw=raw)[0](grid_noise, training=False))).mean()
        for raw in (False, True)]
    assert gaps[0] < 2 and gaps[1] > 3 * gaps[0], gaps
    with open(os.path.join(averaged_run, "config.json")) as f:
        recorded = json.load(f)
    assert recorded["recipe"] == "fast" and recorded["ema_decay"] == 0.9
    assert recorded["batch_size"] == 64 and recorded["beta1"] == 0.5
