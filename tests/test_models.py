import numpy as np
import pytest
import tensorflow as tf

from conftest import mirrored
from dcgan_dist import models


def test_parameter_counts_are_the_articles():
    assert models.make_generator_model().count_params() == 2_330_944
    assert models.make_discriminator_model().count_params() == 212_865
    # Synchronized batch norm and mixed precision change no parameter.
    assert models.make_generator_model(sync_batch_norm=True,
                                       dtype="mixed_bfloat16").count_params() == 2_330_944


@pytest.mark.parametrize("dtype", ["float32", "mixed_bfloat16"])
def test_shapes_dtypes_and_ranges(dtype):
    generator = models.make_generator_model(dtype=dtype)
    discriminator = models.make_discriminator_model(dtype=dtype)
    noise = tf.random.stateless_normal([8, models.NOISE_DIM], seed=[1, 2])
    images = generator(noise, training=False)
    assert images.shape == (8, 28, 28, 1)
    assert images.dtype == (tf.float32 if dtype == "float32" else tf.bfloat16)
    values = tf.cast(images, tf.float32).numpy()
    assert values.min() >= -1.0 and values.max() <= 1.0
    assert values.std() > 0  # not a constant image
    logits = discriminator(images, training=True)
    assert logits.shape == (8, 1)
    assert logits.dtype == tf.float32  # whatever the compute precision


def test_dropout_off_at_inference_and_scaled_in_training():
    layer = models.ShardInvariantDropout(0.3, seed=5)
    x = tf.ones([64, 14, 14, 64])
    np.testing.assert_array_equal(layer(x, training=False), x)
    y = layer(x, training=True).numpy()
    kept = y != 0
    np.testing.assert_allclose(y[kept], 1 / 0.7, rtol=1e-6)
    assert abs(kept.mean() - 0.7) < 0.01
    # The seed advances: the next call draws another mask.
    assert (layer(x, training=True).numpy() != y).any()


def test_dropout_mask_does_not_depend_on_replica_count():
    """Rows of the global batch get the same mask on 1 replica and on 4."""
    x = tf.random.stateless_uniform([16, 7, 7, 128], seed=[3, 4]) + 1.0

    def masked(num_replicas):
        strategy = mirrored(num_replicas)
        with strategy.scope():
            layer = models.ShardInvariantDropout(0.3, seed=9)
            layer.build(x.shape)
        per_replica = 16 // num_replicas
        inputs = strategy.experimental_distribute_values_from_function(
            lambda ctx: x[ctx.replica_id_in_sync_group * per_replica:
                          (ctx.replica_id_in_sync_group + 1) * per_replica])
        outs = []
        for _ in range(2):  # two calls: the seed must advance identically on all replicas
            result = strategy.run(tf.function(lambda t: layer(t, training=True)),
                                  args=(inputs,))
            outs.append(np.concatenate(
                [v.numpy() for v in strategy.experimental_local_results(result)]))
        return outs

    one, four = masked(1), masked(4)
    for a, b in zip(one, four):
        np.testing.assert_array_equal(a, b)
    assert (one[0] != one[1]).any()
