"""The training loop in process: several steps per call, metrics, non-finite losses."""

import numpy as np
import pytest
import tensorflow as tf

from conftest import mirrored
from dcgan_dist import train_lib
from dcgan_dist.config import TrainConfig
from dcgan_dist.data import pipeline
from dcgan_dist.errors import NonFiniteError

BATCH = 32


def _run(fashion_builder, tmp_path, calls):
    """Trains with one train_steps call per entry of `calls` (its number of steps)."""
    strategy = mirrored(1)
    config = TrainConfig(workdir=str(tmp_path), batch_size=BATCH, seed=5)
    state = train_lib.create_state(config, strategy, sync_batch_norm=False)
    images_fn, count = pipeline.tfds_images(fashion_builder, "train[:320]")
    iterator = iter(strategy.distribute_datasets_from_function(
        pipeline.make_dataset_fn(images_fn, count, BATCH, config.seed)))
    train_steps = train_lib.make_train_steps(state, strategy, BATCH)
    metrics = [{k: float(v) for k, v in train_steps(iterator, tf.constant(n)).items()}
               for n in calls]
    weights = [v.numpy() for v in state.generator.weights + state.discriminator.weights]
    return state, metrics, weights


def test_several_steps_per_call_equal_one_step_per_call(fashion_builder, tmp_path):
    state1, metrics1, weights1 = _run(fashion_builder, tmp_path, [1, 1, 1, 1])
    state4, metrics4, weights4 = _run(fashion_builder, tmp_path, [4])
    assert int(state1.step.numpy()) == int(state4.step.numpy()) == 4
    for a, b in zip(weights1, weights4):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-7)
    # A call returns the mean of its steps' metrics.
    for name in train_lib.METRICS:
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
    config = TrainConfig(workdir=str(tmp_path), batch_size=BATCH, on_nan="rollback")
    state = train_lib.create_state(config, strategy, sync_batch_norm=False)
    checkpoint = state.checkpoint()
    state.step.assign(7)
    tf.train.CheckpointManager(checkpoint, str(tmp_path / "checkpoints"), max_to_keep=2,
                               checkpoint_name="ckpt").save(checkpoint_number=7)
    saved = [v.numpy() for v in state.generator.weights]
    # What a diverged step leaves behind.
    state.step.assign(9)
    for variable in state.generator.trainable_variables:
        variable.assign(tf.fill(variable.shape, float("nan")))
    failure = train_lib._NonFinite(9, {"g_loss": float("nan"), "d_loss": 1.0,
                                       "d_real": 0.5, "d_fake": 0.5})
    for rollbacks in range(train_lib.MAX_ROLLBACKS):
        assert train_lib._roll_back(config, state, checkpoint, failure, rollbacks,
                                    chief=True) == 7
        for a, b in zip(saved, state.generator.weights):
            np.testing.assert_array_equal(b.numpy(), a)
        for optimizer in (state.generator_optimizer, state.discriminator_optimizer):
            np.testing.assert_allclose(float(optimizer.learning_rate.numpy()),
                                       1e-4 * 0.5 ** (rollbacks + 1), rtol=1e-6)
    with pytest.raises(NonFiniteError, match="again after 3 rollbacks"):
        train_lib._roll_back(config, state, checkpoint, failure, train_lib.MAX_ROLLBACKS,
                             chief=True)
    stop = TrainConfig(workdir=str(tmp_path), batch_size=BATCH, on_nan="stop")
    with pytest.raises(NonFiniteError, match="non-finite g_loss=nan at step 9"):
        train_lib._roll_back(stop, state, checkpoint, failure, 0, chief=True)


def test_divergence_before_any_checkpoint_stops_cleanly(fashion_builder, tfds_dir,
                                                       tmp_path):
    """A learning rate of 1e30 gives NaN at the first step: nothing is saved."""
    config = TrainConfig(workdir=str(tmp_path / "w"), dataset="fashion_mnist",
                         tfds_data_dir=tfds_dir, split="train[:320]", batch_size=BATCH, epochs=1,
                         learning_rate=1e30, on_nan="rollback", progress_bar=False)
    with pytest.raises(NonFiniteError, match="nothing to roll back to"):
        train_lib.train(config, mirrored(1))
    assert tf.train.latest_checkpoint(str(tmp_path / "w" / "checkpoints")) is None
