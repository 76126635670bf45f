"""bf16 and fp16 training, small enough for a CPU that emulates them (no AVX512_BF16:
a bf16 step there is ~5x slower than fp32), so they run on every CPU this project sees.

fp16 wraps each network's Adam in a LossScaleOptimizer; `train_step._skip_together`
makes both networks, on every replica, skip a step when any gradient overflowed.
"""

import numpy as np
import pytest
import tensorflow as tf

from conftest import mirrored
from dcgan_dist.data import pipeline
from dcgan_dist.training import train_step
from dcgan_dist.training.config import TrainConfig

BATCH = 8  # global, over 2 replicas


def _build(fashion_builder, tmp_path, precision):
    config = TrainConfig(workdir=str(tmp_path), batch_size=BATCH, seed=5,
                         precision=precision)
    return train_step.build(config, mirrored(2),
                            pipeline.tfds_images(fashion_builder, "train[:64]"))


def _weights(model):
    return [v.numpy() for v in model.trainable_variables]


@pytest.mark.parametrize("precision, compute", [("bf16", "bfloat16"),
                                                ("fp16", "float16")])
def test_mixed_precision_trains_with_float32_weights(fashion_builder, tmp_path, precision,
                                                     compute):
    built = _build(fashion_builder, tmp_path, precision)
    state = built.state
    assert state.generator.layers[0].compute_dtype == compute
    assert all(v.dtype == tf.float32 for v in state.generator.weights)
    before = _weights(state.generator) + _weights(state.discriminator)
    metrics = built.train_steps(built.iterator(), tf.constant(2))
    assert all(np.isfinite(float(v)) for v in metrics.values()), metrics
    assert 0 < float(metrics["d_real"]) < 1 and 0 < float(metrics["d_fake"]) < 1
    after = _weights(state.generator) + _weights(state.discriminator)
    assert int(state.step.numpy()) == 2
    assert all(not np.array_equal(a, b) for a, b in zip(before, after))
    if precision == "fp16":  # the loss scales are state: checkpointed with the rest
        names = [v.path for v in state.checkpoint().generator_optimizer.variables]
        assert any("scale" in name for name in names), names


def test_fp16_overflow_in_one_network_skips_both_on_every_replica(fashion_builder,
                                                                    tmp_path):
    """The generator's loss scale is set so high that its float16 gradients overflow;
    the discriminator's is 1, so its own gradients are finite. Both must skip the step
    (weights unchanged) and the generator's scale must halve."""
    built = _build(fashion_builder, tmp_path, "fp16")
    state = built.state
    state.generator_optimizer.dynamic_scale.assign(2.0**60)
    state.discriminator_optimizer.dynamic_scale.assign(1.0)
    generator, discriminator = _weights(state.generator), _weights(state.discriminator)
    built.train_steps(built.iterator(), tf.constant(1))
    for before, after in zip(generator + discriminator,
                             _weights(state.generator) + _weights(state.discriminator)):
        np.testing.assert_array_equal(after, before)
    assert float(state.generator_optimizer.dynamic_scale.numpy()) == 2.0**59
