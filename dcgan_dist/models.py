"""The article's generator and discriminator, ready for any replica count, precision and
image shape.

At 28x28x1 the layers, shapes and parameter counts are the article's (2,330,944 and
212,865); other sizes and colour follow the DCGAN paper's rule (`shapes`: one stride-2
stage per doubling, the channels halving toward the image). A class-conditional run
(`num_classes`) builds them around the same layers (see below). Three things differ from the
article, none of which changes what the networks compute on one device:
- batch normalization can be synchronized across replicas, so its statistics are those of
  the global batch;
- dropout draws its mask for the global batch from a per-call seed (see `rng`), so that a
  replica's mask does not depend on how many replicas share the batch;
- the discriminator's last layer runs in float32, so its logits are float32 whatever the
  compute precision (bf16/fp16 logits lose the resolution the BCE losses need).
"""

import keras
import tensorflow as tf
from keras import layers

from dcgan_dist import rng, shapes
from dcgan_dist.class_layers import ClassAffine, ClassProjection

NOISE_DIM = 100
IMAGE_SHAPE = shapes.DEFAULT_SHAPE  # the article's


@keras.saving.register_keras_serializable(package="dcgan_dist")
class ShardInvariantDropout(layers.Layer):
    """`keras.layers.Dropout` whose mask depends on the global row, not the replica.

    The mask of row i of the global batch is the same whether that row is processed by
    one replica or by replica i // b of many. The seed advances once per training call
    and lives in a variable that `tf.train.Checkpoint` saves with the model (Keras'
    own SeedGenerator state is not checkpointed), so a resumed run draws the same masks
    as an uninterrupted one. Like Keras' seed state, it is not counted as a parameter.
    """

    def __init__(self, rate, seed=0, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"dropout rate must be in [0, 1), got {rate}")
        self.rate = float(rate)
        self.seed = int(seed)

    def build(self, input_shape):
        # A plain tf.Variable: mirrored under a strategy, updated identically on every
        # replica (aggregation NONE), saved by tf.train.Checkpoint, not a Keras weight.
        self.seed_state = tf.Variable(
            [self.seed, 0], dtype=tf.int64, trainable=False, name="seed_state",
            aggregation=tf.VariableAggregation.NONE)

    def call(self, inputs, training=False):
        if not training or self.rate == 0.0:
            return inputs
        seed = self.seed_state.read_value()
        self.seed_state.assign_add(tf.constant([0, 1], tf.int64))
        shape = tf.shape(inputs)
        uniform = rng.uniform_rows(shape, seed, rng.replica_row_offset(shape[0]))
        keep = tf.cast(uniform >= self.rate, inputs.dtype)
        return inputs * keep / tf.cast(1.0 - self.rate, inputs.dtype)

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "seed": self.seed}


def _glorot(seed, layer_index):
    # The article's (Keras') default initializer, seeded per layer: --seed fixes the
    # initial weights without touching any global random state.
    return keras.initializers.GlorotUniform(seed=seed * 100 + layer_index)


def _widths(image_shape):
    """(base, [the generator's widths after the dense layer, widest first])."""
    base, doublings = shapes.stages(image_shape[0])
    return base, [64 * 2 ** i for i in range(doublings, -1, -1)]


def _generator_layers(upsampling_conv, image_shape, sync_batch_norm, dtype, seed,
                      batch_norm=None):
    """The generator's layers after its input: Dense(base*base*top) -> base x base x top
    -> a stride-1 convolution to top/2, then one stride-2 convolution per doubling,
    halving the channels, the last to the image's channels; batch norm and leaky ReLU
    between. At 28x28x1: Dense(7*7*256) -> 128 -> 64 (14x14) -> 1 (28x28), the
    article's. `upsampling_conv(filters, layer_index, strides, **kwargs)` gives the
    layers of each upsampling convolution; `batch_norm(channels)` those of each
    normalization (the article's by default)."""
    def article_batch_norm(channels):
        return [layers.BatchNormalization(synchronized=sync_batch_norm, dtype=dtype)]

    batch_norm = batch_norm or article_batch_norm

    def block(filters, index, strides):
        return [*upsampling_conv(filters, index, strides), *batch_norm(filters),
                layers.LeakyReLU(dtype=dtype)]

    base, widths = _widths(image_shape)
    hidden = [block(widths[1], 1, 1)] + [block(width, index, 2) for index, width
                                         in enumerate(widths[2:], start=2)]
    return [
        layers.Dense(base * base * widths[0], use_bias=False,
                     kernel_initializer=_glorot(seed, 0), dtype=dtype),
        *batch_norm(base * base * widths[0]),
        layers.LeakyReLU(dtype=dtype),
        layers.Reshape((base, base, widths[0]), dtype=dtype),
        *[layer for stage in hidden for layer in stage],
        *upsampling_conv(image_shape[-1], len(widths), 2, activation="tanh"),
    ]


def _generator(upsampling_conv, image_shape, sync_batch_norm, dtype, seed,
               num_classes=0, conditioning="batchnorm"):
    """The article's generator (num_classes=0), or a conditional one (`conditional`)."""
    if num_classes:
        return _conditional_generator(upsampling_conv, image_shape, sync_batch_norm,
                                      dtype, seed, num_classes, conditioning)
    return keras.Sequential([
        keras.Input((NOISE_DIM,)),
        *_generator_layers(upsampling_conv, image_shape, sync_batch_norm, dtype, seed),
    ], name="generator")


def make_generator_model(sync_batch_norm=False, dtype=None, seed=0,
                         image_shape=IMAGE_SHAPE, num_classes=0,
                         conditioning="batchnorm"):
    """Noise [N, 100] -> images [N, *image_shape] in [-1, 1] (the article's generator);
    with num_classes, [noise, labels int32 [N]] -> images (see `_conditional_generator`)."""
    def transposed_conv(filters, index, strides, **kwargs):
        return [layers.Conv2DTranspose(filters, 5, strides=strides, padding="same",
                                       use_bias=False, kernel_initializer=_glorot(seed, index),
                                       dtype=dtype, **kwargs)]

    return _generator(transposed_conv, image_shape, sync_batch_norm, dtype, seed,
                      num_classes, conditioning)


def _upsample_then_conv(interpolation, sync_batch_norm, dtype, seed, image_shape,
                        num_classes, conditioning):
    """The article's generator with each transposed convolution replaced by upsampling
    (`interpolation`: nearest or bilinear) and a convolution of the same width and
    kernel."""
    def upsample_conv(filters, index, strides, **kwargs):
        upsample = ([layers.UpSampling2D(strides, interpolation=interpolation, dtype=dtype)]
                    if strides > 1 else [])
        return upsample + [layers.Conv2D(filters, 5, padding="same", use_bias=False,
                                         kernel_initializer=_glorot(seed, index),
                                         dtype=dtype, **kwargs)]

    return _generator(upsample_conv, image_shape, sync_batch_norm, dtype, seed, num_classes,
                      conditioning)


def make_resize_conv_generator_model(sync_batch_norm=False, dtype=None, seed=0,
                                     image_shape=IMAGE_SHAPE, num_classes=0,
                                     conditioning="batchnorm"):
    """Nearest-neighbour upsampling then a convolution in place of each transposed
    convolution (Odena et al. 2016's remedy for checkerboard artefacts): the same
    widths, kernels and layer count, another family of upsampling artefacts.
    `--generator=resize_conv`; one of the families of the forensics protocol
    (docs/forensics.md)."""
    return _upsample_then_conv("nearest", sync_batch_norm, dtype, seed, image_shape,
                               num_classes, conditioning)


def make_bilinear_generator_model(sync_batch_norm=False, dtype=None, seed=0,
                                  image_shape=IMAGE_SHAPE, num_classes=0,
                                  conditioning="batchnorm"):
    """As resize_conv with bilinear upsampling (StyleGAN's and most later generators'
    smooth upsampling): `--generator=bilinear`, a held-out family of the forensics
    protocol."""
    return _upsample_then_conv("bilinear", sync_batch_norm, dtype, seed, image_shape,
                               num_classes, conditioning)


@keras.saving.register_keras_serializable(package="dcgan_dist")
class DepthToSpace(layers.Layer):
    """[N, H, W, C * s * s] -> [N, H * s, W * s, C] (tf.nn.depth_to_space)."""

    def __init__(self, block_size, **kwargs):
        super().__init__(**kwargs)
        self.block_size = block_size

    def call(self, inputs):
        return tf.nn.depth_to_space(inputs, self.block_size)

    def get_config(self):
        return {**super().get_config(), "block_size": self.block_size}


def make_subpixel_generator_model(sync_batch_norm=False, dtype=None, seed=0,
                                  image_shape=IMAGE_SHAPE, num_classes=0,
                                  conditioning="batchnorm"):
    """Sub-pixel convolution (Shi et al. 2016) in place of each transposed convolution:
    a convolution to s*s times the channels, rearranged into an s-times larger image
    (depth-to-space). `--generator=subpixel`, a held-out family of the forensics
    protocol. The activation (tanh on the last) follows the rearrangement."""
    def subpixel_conv(filters, index, strides, activation=None):
        return [layers.Conv2D(filters * strides * strides, 5, padding="same",
                              use_bias=False, kernel_initializer=_glorot(seed, index),
                              dtype=dtype),
                *([DepthToSpace(strides, dtype=dtype)] if strides > 1 else []),
                *([layers.Activation(activation, dtype=dtype)] if activation else [])]

    return _generator(subpixel_conv, image_shape, sync_batch_norm, dtype, seed, num_classes,
                      conditioning)


GENERATORS = {"dcgan": make_generator_model, "resize_conv": make_resize_conv_generator_model,
              "bilinear": make_bilinear_generator_model,
              "subpixel": make_subpixel_generator_model}


def make_generator(name="dcgan", **kwargs):
    """The generator of architecture `name` (a key of GENERATORS)."""
    return GENERATORS[name](**kwargs)


def _discriminator_layers(seed, dtype, image_shape):
    """One stride-2 convolution per doubling (64, 128, ... channels), each with leaky
    ReLU and dropout, then Flatten: the discriminator's features."""
    _, doublings = shapes.stages(image_shape[0])
    body = []
    for i in range(doublings):
        body += [layers.Conv2D(64 * 2 ** i, 5, strides=2, padding="same",
                               kernel_initializer=_glorot(seed, 10 + i), dtype=dtype),
                 layers.LeakyReLU(dtype=dtype),
                 ShardInvariantDropout(0.3, seed=seed * 100 + 20 + i, dtype=dtype)]
    return body + [layers.Flatten(dtype=dtype)]


def _logit_layer(seed, image_shape, **kwargs):
    _, doublings = shapes.stages(image_shape[0])
    return layers.Dense(1, kernel_initializer=_glorot(seed, 10 + doublings),
                        dtype="float32", **kwargs)


def make_discriminator_model(seed=0, dtype=None, image_shape=IMAGE_SHAPE, num_classes=0):
    """Images [N, *image_shape] -> float32 logits [N, 1]: one stride-2 convolution per
    doubling (64, 128, ... channels), each with leaky ReLU and dropout, then Dense(1).
    At 28x28x1, the article's discriminator. With num_classes, [images, labels int32
    [N]] -> logits (`_projection_discriminator`)."""
    if num_classes:
        return _projection_discriminator(seed, dtype, image_shape, num_classes)
    return keras.Sequential([
        keras.Input(tuple(image_shape)),
        *_discriminator_layers(seed, dtype, image_shape),
        _logit_layer(seed, image_shape),
    ], name="discriminator")


# Class-conditional networks (train --conditional). The generator draws an image of the
# class it is given; the discriminator judges an image together with its class.
CLASS_EMBEDDING_DIM = 50  # --conditioning=input: the class's vector beside the noise


def _label_input():
    return keras.Input((), dtype="int32", name="label")


def _conditional_generator(upsampling_conv, image_shape, sync_batch_norm, dtype, seed,
                           num_classes, conditioning):
    """[noise [N, 100], labels int32 [N]] -> images, the article's layers taking the
    class one of two ways (--conditioning; measured in docs/conditional.md):
    - batchnorm (the default): conditional batch norm, every batch norm's scale and
      shift per class;
    - input: a learned class embedding concatenated to the noise, into the Dense layer."""
    noise, labels = keras.Input((NOISE_DIM,), name="noise"), _label_input()

    def class_batch_norm(channels):
        return [layers.BatchNormalization(synchronized=sync_batch_norm, center=False,
                                          scale=False, dtype=dtype),
                ClassAffine(num_classes, dtype=dtype)]

    x = noise
    if conditioning == "input":
        embedded = layers.Embedding(
            num_classes, CLASS_EMBEDDING_DIM, dtype=dtype,
            embeddings_initializer=keras.initializers.RandomNormal(seed=seed * 100 + 30)
        )(labels)
        x = layers.Concatenate(dtype=dtype)([noise, embedded])
    for layer in _generator_layers(upsampling_conv, image_shape, sync_batch_norm, dtype,
                                   seed, class_batch_norm if conditioning == "batchnorm"
                                   else None):
        x = layer([x, labels]) if isinstance(layer, ClassAffine) else layer(x)
    model = keras.Model([noise, labels], x, name="generator")
    model.num_classes = num_classes  # how the tools tell a conditional network (class_count)
    return model


def _projection_discriminator(seed, dtype, image_shape, num_classes):
    """[images, labels int32 [N]] -> float32 logits [N, 1]: the article's discriminator
    (its features h, then Dense(1)) plus the projection <embedding[label], h>."""
    images, labels = keras.Input(tuple(image_shape), name="images"), _label_input()
    h = images
    for layer in _discriminator_layers(seed, dtype, image_shape):
        h = layer(h)
    logit = _logit_layer(seed, image_shape, name="logit")(h)
    projection = ClassProjection(num_classes, seed=seed * 100 + 40, dtype="float32",
                                 name="projection")([h, labels])
    model = keras.Model([images, labels], layers.Add(dtype="float32")([logit, projection]),
                        name="discriminator")
    model.num_classes = num_classes
    return model


def class_count(network):
    """The classes a conditional generator or discriminator takes; 0 for the article's."""
    return getattr(network, "num_classes", 0)


def class_logits(discriminator, images, training=False):
    """float32 [N, classes]: a conditional discriminator's logit of each image as each
    class, its features h computed once (logit = Dense(1)(h) + <embedding[k], h>)."""
    h = images
    for layer in discriminator.layers:  # in order: the features' layers, then "logit"
        if layer.name == "logit":
            break
        if not isinstance(layer, layers.InputLayer):
            h = layer(h, training=training)
    return (discriminator.get_layer("logit")(h)
            + discriminator.get_layer("projection").all_classes(h))
