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


# (image shape, generator and discriminator parameters, the generator's layer widths):
# the README's table. The DCGAN rule: one stride-2 stage per doubling, channels halving.
SCALED = [((28, 28, 1), 2_330_944, 212_865, [12544, 128, 64, 1]),
          ((32, 32, 3), 2_733_504, 217_985, [16384, 128, 64, 3]),
          ((64, 64, 3), 7_715_264, 1_045_633, [32768, 256, 128, 64, 3])]


@pytest.mark.parametrize("shape, g_params, d_params, widths", SCALED,
                         ids=["x".join(map(str, case[0])) for case in SCALED])
def test_networks_follow_the_image_shape(shape, g_params, d_params, widths):
    for name, make in models.GENERATORS.items():
        generator = make(image_shape=shape)
        if name != "subpixel":  # its convolutions draw s*s times the channels
            assert generator.count_params() == g_params, name
        assert generator.output_shape == (None, *shape), name
    discriminator = models.make_discriminator_model(image_shape=shape)
    assert discriminator.count_params() == d_params
    assert discriminator.input_shape == (None, *shape)
    generator = models.make_generator_model(image_shape=shape)
    assert [layer.units if hasattr(layer, "units") else layer.filters
            for layer in generator.layers if hasattr(layer, "kernel")] == widths
    convolutions = [layer for layer in discriminator.layers
                    if isinstance(layer, tf.keras.layers.Conv2D)]
    assert [(c.filters, c.strides) for c in convolutions] == [
        (64 * 2 ** i, (2, 2)) for i in range(len(widths) - 2)]


@pytest.mark.parametrize("name", ["dcgan", "resize_conv", "bilinear", "subpixel"])
def test_each_generator_family_draws_in_range_and_trains(name):
    """Every --generator (options.GENERATORS names them for the CLI) makes images in
    [-1, 1] from its own upsampling, and its every weight gets a gradient."""
    from dcgan_dist import options
    assert tuple(models.GENERATORS) == options.GENERATORS
    generator = models.make_generator(name, seed=3)
    noise = tf.random.stateless_normal([4, models.NOISE_DIM], seed=[1, 2])
    with tf.GradientTape() as tape:
        images = generator(noise, training=True)
        loss = tf.reduce_mean(tf.square(images))
    grads = tape.gradient(loss, generator.trainable_variables)
    assert images.shape == (4, 28, 28, 1)
    assert float(tf.reduce_max(tf.abs(images))) <= 1.0
    assert all(g is not None and float(tf.reduce_sum(tf.abs(g))) > 0 for g in grads)
    kinds = {type(layer).__name__ for layer in generator.layers}
    assert {"dcgan": "Conv2DTranspose", "resize_conv": "UpSampling2D",
            "bilinear": "UpSampling2D", "subpixel": "DepthToSpace"}[name] in kinds
    if name == "subpixel":  # depth-to-space: output pixel (2i+a, 2j+b) is channel 2a+b
        x = tf.reshape(tf.range(16.0), [1, 2, 2, 4])
        y = models.DepthToSpace(2)(x).numpy()[0, :, :, 0]
        assert y[0, 1] == 1 and y[1, 0] == 2 and y[1, 1] == 3 and y[0, 2] == 4


@pytest.mark.parametrize("size", [16, 30, 48 * 3, 1024])
def test_sizes_the_networks_cannot_build_are_refused(size):
    from dcgan_dist.errors import ConfigError
    with pytest.raises(ConfigError, match=f"--image_size={size} cannot be built"):
        models.make_generator_model(image_shape=(size, size, 1))


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


# --conditional's networks at 28x28x1, 10 classes: (generator by --conditioning,
# discriminator). The article's stay as they are when it is off (above).
CONDITIONAL_PARAMS = {"input": 2_958_644, "batchnorm": 2_560_192}
PROJECTION_PARAMS = 275_585  # the article's 212,865 and a 10 x 6,272 class embedding


@pytest.mark.parametrize("conditioning", sorted(CONDITIONAL_PARAMS))
def test_conditional_networks_take_the_class(conditioning):
    generator = models.make_generator_model(num_classes=10, conditioning=conditioning)
    discriminator = models.make_discriminator_model(num_classes=10)
    assert generator.count_params() == CONDITIONAL_PARAMS[conditioning]
    assert discriminator.count_params() == PROJECTION_PARAMS
    assert models.class_count(generator) == models.class_count(discriminator) == 10
    assert models.class_count(models.make_generator_model()) == 0
    noise = tf.random.stateless_normal([4, models.NOISE_DIM], seed=[1, 2])
    labels = tf.constant([1, 1, 7, 7], tf.int32)
    images = generator([noise, labels], training=True)
    assert images.shape == (4, 28, 28, 1)
    logits = discriminator([images, labels], training=False)
    assert logits.shape == (4, 1) and logits.dtype == tf.float32
    # The class changes the logit: the projection term.
    other = discriminator([images, tf.constant([0, 0, 0, 0], tf.int32)], training=False)
    assert not np.allclose(logits, other)


def test_class_logits_are_the_logit_of_each_class():
    """detection's rule for a conditional discriminator (the largest logit over the
    classes) reads every class's logit from one pass over the features."""
    discriminator = models.make_discriminator_model(num_classes=10, seed=4)
    images = tf.random.stateless_uniform([6, 28, 28, 1], seed=[5, 6], minval=-1)
    every = models.class_logits(discriminator, images).numpy()
    assert every.shape == (6, 10)
    for k in range(10):
        np.testing.assert_allclose(
            every[:, k], discriminator([images, tf.fill([6], k)], training=False)[:, 0],
            rtol=1e-5, atol=1e-6)
