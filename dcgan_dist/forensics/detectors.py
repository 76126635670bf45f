"""The detectors and their training augmentations.

Every detector maps images scaled to [-1, 1] ([N, H, W, C] of the pool's shape, as the
discriminator of its runs takes them: [N, 28, 28, 1] for the article's) to float32 logits
[N, 1] of "real", so `savedmodel.DetectorModule` exports any of them with the
discriminator's signature.

- `cnn`: a small convolutional network on pixels (Wang et al. 2020 use a ResNet-50 at
  256x256; three convolutions are ample at 28x28). No pooling before the last layer:
  upsampling artefacts are a few pixels wide.
- `spectral`: the log-magnitude 2-D Fourier spectrum of the image, normalized, then a
  small MLP (Frank et al. 2020, Durall et al. 2020). Transposed convolutions of stride 2
  leave periodic peaks (at a half and a quarter of the sampling rate here); the
  spectrum holds them in a few fixed coordinates whatever the image shows. Colour
  images get one spectrum per channel (R, G, B side by side), not one of their luma:
  the generator's last transposed convolution draws each channel with its own kernel,
  so each channel carries its own peaks, and luma would average chroma artefacts away.
- `spectral_residual`: the same spectrum, beside the spectrum of the image's high-pass
  residual (the image minus a 3x3 blur, so garments weigh less than the upsampling's
  texture); a wider MLP with dropout.
- `npr`: neighbouring pixel relationships (Tan et al., CVPR 2024): the image minus its
  2x2 nearest-neighbour down-and-up copy, which is zero wherever a 2x2 block is flat and
  holds what upsampling wrote between neighbours, into a small CNN whose features are
  averaged over the image (what it reads is where, not what, the image draws).
- `npr_spectral`: both inputs, the `spectral_residual` branch beside the `npr` one.

The perturbations they train with are perturbations.py's.
"""

import keras
import tensorflow as tf
from keras import layers

from dcgan_dist import shapes
from dcgan_dist.forensics import perturbations
from dcgan_dist.forensics.config import ARCHITECTURES


@keras.saving.register_keras_serializable(package="dcgan_dist")
class LogSpectrum(layers.Layer):
    """[N, H, W, C] images -> [N, C * H * (W // 2 + 1)] log(1 + |rfft2d|) of each
    channel ([N, 28 * 15] for the article's)."""

    def call(self, images):
        return _log_spectrum(tf.cast(images, tf.float32))


@keras.saving.register_keras_serializable(package="dcgan_dist")
class ResidualFeatures(layers.Layer):
    """[N, H, W, C] images -> the log spectra of the image and of its high-pass
    residual (the image minus a 3x3 binomial blur, each channel on its own),
    [N, 2 * C * H * (W // 2 + 1)] ([N, 2 * 28 * 15] for the article's)."""

    def call(self, images):
        x = tf.cast(images, tf.float32)
        blur = tf.constant([1.0, 2.0, 1.0]) / 4.0
        padded = tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]], mode="SYMMETRIC")
        residual = x - perturbations.per_channel_conv(padded, blur[:, None] * blur[None, :])
        return tf.concat([_log_spectrum(x), _log_spectrum(residual)], axis=1)


def _log_spectrum(images):
    """[N, H, W, C] -> [N, C * H * (W // 2 + 1)] log(1 + |rfft2d|), per channel (see
    the module docstring: one spectrum per colour channel, not luma), channel-major."""
    planes = (images[..., 0] if images.shape[-1] == 1  # [N, H, W], as always for grey
              else tf.transpose(images, [0, 3, 1, 2]))  # [N, C, H, W]
    magnitude = tf.math.log1p(tf.abs(tf.signal.rfft2d(planes)))
    size = 1
    for dim in magnitude.shape[1:]:
        size *= dim
    return tf.reshape(magnitude, [-1, size])


def make_detector(architecture, seed=0, image_shape=shapes.DEFAULT_SHAPE):
    """A detector network (see the module docstring) of [N, *image_shape] images;
    float32 throughout."""
    init = lambda i: keras.initializers.GlorotUniform(seed=seed * 100 + i)  # noqa: E731
    if architecture == "cnn":
        body = [layers.Conv2D(32, 3, padding="same", kernel_initializer=init(0)),
                layers.LeakyReLU(0.2),
                layers.Conv2D(64, 3, strides=2, padding="same", kernel_initializer=init(1)),
                layers.LeakyReLU(0.2),
                layers.Conv2D(128, 3, strides=2, padding="same", kernel_initializer=init(2)),
                layers.LeakyReLU(0.2),
                layers.Flatten()]
    elif architecture == "spectral":
        body = [LogSpectrum(),
                # Normalizes each frequency; its moving statistics are what inference uses.
                layers.BatchNormalization(),
                layers.Dense(64, activation="relu", kernel_initializer=init(0))]
    elif architecture == "spectral_residual":
        body = [ResidualFeatures(),
                layers.BatchNormalization(),
                layers.Dense(256, activation="relu", kernel_initializer=init(0)),
                layers.Dropout(0.3, seed=seed),
                layers.Dense(64, activation="relu", kernel_initializer=init(1))]
    elif architecture in ("npr", "npr_spectral"):
        return _npr_detector(architecture, init, seed, image_shape)
    else:
        raise ValueError(f"unknown detector {architecture!r}; use one of {ARCHITECTURES}")
    return keras.Sequential([keras.Input(tuple(image_shape)), *body,
                             layers.Dense(1, kernel_initializer=init(9))],
                            name=f"{architecture}_detector")


def _npr_detector(architecture, init, seed, image_shape):
    """`npr`, or `npr_spectral` (the spectral_residual branch beside it), as one model."""
    images = keras.Input(tuple(image_shape))
    # Stride-1 layers first, so each sees the 2x2 grid's phases before any pooling.
    x = NeighbourResidual()(images)
    for index, (filters, strides) in enumerate([(32, 1), (32, 1), (64, 2), (64, 1)]):
        x = layers.Conv2D(filters, 3, strides=strides, padding="same",
                          kernel_initializer=init(index))(x)
        x = layers.LeakyReLU(0.2)(x)
    features = [layers.GlobalAveragePooling2D()(x)]
    if architecture == "npr_spectral":
        y = ResidualFeatures()(images)
        y = layers.BatchNormalization()(y)
        y = layers.Dense(256, activation="relu", kernel_initializer=init(5))(y)
        y = layers.Dropout(0.3, seed=seed)(y)
        features.append(layers.Dense(64, activation="relu", kernel_initializer=init(6))(y))
    x = features[0] if len(features) == 1 else layers.Concatenate()(features)
    logits = layers.Dense(1, kernel_initializer=init(9))(x)
    return keras.Model(images, logits, name=f"{architecture}_detector")


@keras.saving.register_keras_serializable(package="dcgan_dist")
class NeighbourResidual(layers.Layer):
    """[N, H, W, C] -> the image minus its 2x2 nearest-neighbour down-and-up copy (each
    pixel minus the top-left pixel of its 2x2 block), scaled to unit-ish range; zero at
    every block's top-left pixel. H and W even (every supported size is)."""

    def call(self, images):
        x = tf.cast(images, tf.float32)
        corners = x[:, ::2, ::2, :]
        up = tf.repeat(tf.repeat(corners, 2, axis=1), 2, axis=2)
        return (x - up) * 4.0  # residuals of [-1, 1] images are small: scale them up
