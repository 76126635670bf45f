"""The compiled training loop in process: several steps per call, counters, metrics."""

import numpy as np
import tensorflow as tf

from conftest import mirrored
from dcgan_dist import train_lib
from dcgan_dist.config import TrainConfig
from dcgan_dist.data import pipeline

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
