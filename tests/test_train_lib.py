"""The training loop in process: several steps per call, metrics, non-finite losses."""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from conftest import checkpoint_values, mirrored, settled
from dcgan_dist.training import loop, settings, train_step, trainer
from dcgan_dist.training.config import TrainConfig
from dcgan_dist.data import pipeline
from dcgan_dist.errors import NonFiniteError

BATCH = 32


def _run(fashion_builder, tmp_path, calls):
    """Trains with one train_steps call per entry of `calls` (its number of steps)."""
    strategy = mirrored(1)
    config = TrainConfig(workdir=str(tmp_path), batch_size=BATCH, seed=5, precision="fp32")
    built = train_step.build(settled(config, strategy), strategy,
                             pipeline.tfds_images(fashion_builder, "train[:320]"))
    state, train_steps, iterator = built.state, built.train_steps, built.iterator()
    metrics = [{k: float(v) for k, v in train_steps(iterator, tf.constant(n)).items()}
               for n in calls]
    weights = [v.numpy() for v in state.generator.weights + state.discriminator.weights]
    return state, metrics, weights


@pytest.mark.slow
def test_several_steps_per_call_equal_one_step_per_call(fashion_builder, tmp_path):
    state1, metrics1, weights1 = _run(fashion_builder, tmp_path, [1, 1, 1, 1])
    state4, metrics4, weights4 = _run(fashion_builder, tmp_path, [4])
    assert int(state1.step.numpy()) == int(state4.step.numpy()) == 4
    for a, b in zip(weights1, weights4):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-7)
    # A call returns the mean of its steps' metrics.
    for name in train_step.METRICS:
        np.testing.assert_allclose(metrics4[0][name],
                                   np.mean([m[name] for m in metrics1]), rtol=1e-5)


def test_first_step_metrics_are_the_untrained_values(fashion_builder, tmp_path):
    _, metrics, _ = _run(fashion_builder, tmp_path, [1])
    # An untrained discriminator outputs logits near 0: D(x) ~ D(G(z)) ~ 0.5, and the
    # losses are near log(2) (generator) and 2 log(2) (discriminator).
    assert abs(metrics[0]["d_real"] - 0.5) < 0.1 and abs(metrics[0]["d_fake"] - 0.5) < 0.1
    np.testing.assert_allclose(metrics[0]["g_loss"], np.log(2), rtol=0.2)
    np.testing.assert_allclose(metrics[0]["d_loss"], 2 * np.log(2), rtol=0.2)


def test_roll_back_restores_the_checkpoint_and_halves_the_learning_rates(tmp_path):
    strategy = tf.distribute.get_strategy()
    config = TrainConfig(workdir=str(tmp_path), batch_size=BATCH, on_nan="rollback",
                         precision="fp32", sync_batch_norm=False, image_size=28, channels=1)
    state = train_step.create_state(config, strategy)
    checkpoint = state.checkpoint()
    state.step.assign(7)
    tf.train.CheckpointManager(checkpoint, str(tmp_path / "checkpoints"), max_to_keep=2,
                               checkpoint_name="ckpt").save(checkpoint_number=7)
    saved = [v.numpy() for v in state.generator.weights]
    # What a diverged step leaves behind.
    state.step.assign(9)
    for variable in state.generator.trainable_variables:
        variable.assign(tf.fill(variable.shape, float("nan")))
    failure = loop.NonFinite(9, {"g_loss": float("nan"), "d_loss": 1.0,
                                       "d_real": 0.5, "d_fake": 0.5})
    for rollbacks in range(trainer.MAX_ROLLBACKS):
        assert trainer._roll_back(config, state, checkpoint, failure, rollbacks,
                                    chief=True) == 7
        for a, b in zip(saved, state.generator.weights):
            np.testing.assert_array_equal(b.numpy(), a)
        for optimizer in (state.generator_optimizer, state.discriminator_optimizer):
            np.testing.assert_allclose(float(optimizer.learning_rate.numpy()),
                                       1e-4 * 0.5 ** (rollbacks + 1), rtol=1e-6)
    with pytest.raises(NonFiniteError, match="again after 3 rollbacks"):
        trainer._roll_back(config, state, checkpoint, failure, trainer.MAX_ROLLBACKS,
                             chief=True)
    stop = TrainConfig(workdir=str(tmp_path), batch_size=BATCH, on_nan="stop",
                       precision="fp32")
    with pytest.raises(NonFiniteError, match="non-finite g_loss=nan at step 9"):
        trainer._roll_back(stop, state, checkpoint, failure, 0, chief=True)


@pytest.mark.slow
def test_divergence_before_any_checkpoint_stops_cleanly(fashion_builder, tfds_dir,
                                                       tmp_path):
    """A learning rate of 1e30 gives NaN at the first step: nothing is saved."""
    config = TrainConfig(workdir=str(tmp_path / "w"), dataset="fashion_mnist",
                         tfds_data_dir=tfds_dir, split="train[:320]", batch_size=BATCH, epochs=1,
                         learning_rate=1e30, on_nan="rollback", progress_bar=False)
    with pytest.raises(NonFiniteError, match="nothing to roll back to"):
        trainer.train(config, mirrored(1))
    assert tf.train.latest_checkpoint(str(tmp_path / "w" / "checkpoints")) is None


def _trainables(state, strategy):
    """Every replica's copy of every trainable variable."""
    return [copy.numpy() for v in state.generator.trainable_variables
            + state.discriminator.trainable_variables
            for copy in strategy.experimental_local_results(v.value)]


@pytest.mark.slow
def test_fp16_overflow_on_one_replica_skips_both_networks_on_all(tmp_path):
    """Replica 3 of 4 sees infinite images: only its discriminator gradients are
    non-finite. Both networks must skip the step on every replica and halve both loss
    scales; the next finite step applies."""
    strategy = mirrored(4)
    config = TrainConfig(workdir=str(tmp_path), batch_size=16, precision="fp16",
                         sync_batch_norm=False, image_size=28, channels=1)
    state = train_step.create_state(config, strategy)
    optimizers = (state.generator_optimizer, state.discriminator_optimizer)
    scale = float(optimizers[0].dynamic_scale.numpy())
    train_steps = train_step.make_train_steps(state, strategy, 16)

    def one_batch(values):
        images = tf.constant(values, tf.float16, shape=[16, 28, 28, 1])
        return iter(strategy.experimental_distribute_dataset(
            tf.data.Dataset.from_tensors(images).repeat()))

    before = _trainables(state, strategy)
    poisoned = np.zeros([16, 28, 28, 1], np.float16)
    poisoned[12:] = np.inf  # the last replica's quarter of the global batch
    train_steps(one_batch(poisoned), tf.constant(1))
    for a, b in zip(before, _trainables(state, strategy)):
        np.testing.assert_array_equal(b, a)
    for optimizer in optimizers:
        assert int(optimizer.iterations.numpy()) == 0
        assert float(optimizer.dynamic_scale.numpy()) == scale / 2

    metrics = train_steps(one_batch(np.zeros([16, 28, 28, 1], np.float16)), tf.constant(1))
    assert all(np.isfinite(float(v)) for v in metrics.values())
    after = _trainables(state, strategy)
    assert all(np.isfinite(w).all() for w in after)
    assert sum(not np.array_equal(a, b) for a, b in zip(before, after)) == len(before)
    for optimizer in optimizers:
        assert int(optimizer.iterations.numpy()) == 1
        assert int(optimizer.step_counter.numpy()) == 1


@pytest.mark.slow
@pytest.mark.parametrize("precision, jit_compile", [
    ("fp32", True), ("bf16", False), ("bf16", True), ("fp16", False), ("fp16", True)])
def test_each_precision_and_xla_choice_trains(precision, jit_compile, fashion_builder,
                                              tfds_dir, tmp_path):
    workdir = tmp_path / "w"
    config = TrainConfig(workdir=str(workdir), dataset="fashion_mnist",
                         tfds_data_dir=tfds_dir, split="train[:128]", batch_size=32,
                         epochs=1, max_steps=3, precision=precision,
                         jit_compile=jit_compile, progress_bar=False)
    metrics = trainer.train(config, mirrored(1))
    assert all(np.isfinite(value) for value in metrics.values()), metrics
    # A resume restores every variable of the state that precision builds.
    restored = train_step.create_state(dataclasses.replace(
        config, sync_batch_norm=False, image_size=28, channels=1),
        tf.distribute.get_strategy())
    initial = restored.generator.layers[0].kernel.numpy()
    restored.checkpoint().restore(tf.train.latest_checkpoint(
        str(workdir / "checkpoints"))).assert_existing_objects_matched()
    assert int(restored.step.numpy()) == 3
    kernel = restored.generator.layers[0].kernel
    assert kernel.dtype == tf.float32  # mixed precision keeps float32 weights
    assert not np.array_equal(kernel.numpy(), initial)  # it trained
    values = checkpoint_values(str(workdir))
    scales = [k for k in values if "dynamic_scale" in k]
    # fp16 checkpoints each network's loss scale, so a resume continues with it.
    assert len(scales) == (2 if precision == "fp16" else 0), scales


def test_build_refuses_an_unsettled_config(fashion_builder, tmp_path):
    config = TrainConfig(workdir=str(tmp_path), batch_size=BATCH, precision="fp32")
    images = pipeline.tfds_images(fashion_builder, "train[:320]")
    assert not config.settled  # jit_compile, batch norm and progress bar still auto
    with pytest.raises(ValueError, match="build needs a settled config"):
        train_step.build(config, mirrored(1), images)
    assert train_step.build(settled(config, mirrored(1)), mirrored(1), images).config.settled


def test_a_run_settles_its_config_once(fashion_builder, tfds_dir, tmp_path, monkeypatch):
    calls = []
    resolve = settings.resolve
    monkeypatch.setattr(settings, "resolve",
                        lambda *args, **kwargs: calls.append(args) or resolve(*args, **kwargs))
    config = TrainConfig(workdir=str(tmp_path / "w"), dataset="fashion_mnist",
                         tfds_data_dir=tfds_dir, split="train[:320]", batch_size=BATCH,
                         epochs=1, max_steps=2, precision="fp32")
    trainer.train(config, mirrored(1))
    assert len(calls) == 1
