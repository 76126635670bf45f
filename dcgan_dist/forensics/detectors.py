"""The detectors and their training augmentations.

Every detector maps images scaled to [-1, 1] ([N, 28, 28, 1], as the discriminator
takes them) to float32 logits [N, 1] of "real", so `savedmodel.DetectorModule` exports any
of them with the discriminator's signature.

- `cnn`: a small convolutional network on pixels (Wang et al. 2020 use a ResNet-50 at
  256x256; three convolutions are ample at 28x28). No pooling before the last layer:
  upsampling artefacts are a few pixels wide.
- `spectral`: the log-magnitude 2-D Fourier spectrum of the image, normalized, then a
  small MLP (Frank et al. 2020, Durall et al. 2020). Transposed convolutions of stride 2
  leave periodic peaks (at a half and a quarter of the sampling rate here); the
  spectrum holds them in a few fixed coordinates whatever the image shows.
- `spectral_residual`: the same spectrum, beside the spectrum of the image's high-pass
  residual (the image minus a 3x3 blur, so garments weigh less than the upsampling's
  texture); a wider MLP with dropout.
"""

import keras
import tensorflow as tf
from keras import layers

from dcgan_dist import models
from dcgan_dist.forensics.config import ARCHITECTURES, AUGMENTATIONS


@keras.saving.register_keras_serializable(package="dcgan_dist")
class LogSpectrum(layers.Layer):
    """[N, 28, 28, 1] images -> [N, 28 * 15] log(1 + |rfft2d|) of the image."""

    def call(self, images):
        return _log_spectrum(tf.cast(images, tf.float32))


@keras.saving.register_keras_serializable(package="dcgan_dist")
class ResidualFeatures(layers.Layer):
    """[N, 28, 28, 1] images -> the log spectra of the image and of its high-pass
    residual (the image minus a 3x3 binomial blur), [N, 2 * 28 * 15]."""

    def call(self, images):
        x = tf.cast(images, tf.float32)
        blur = tf.constant([1.0, 2.0, 1.0]) / 4.0
        kernel = tf.reshape(blur[:, None] * blur[None, :], [3, 3, 1, 1])
        padded = tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]], mode="SYMMETRIC")
        residual = x - tf.nn.conv2d(padded, kernel, strides=1, padding="VALID")
        return tf.concat([_log_spectrum(x), _log_spectrum(residual)], axis=1)


def _log_spectrum(images):
    """[N, 28, 28, 1] -> [N, 28 * 15] log(1 + |rfft2d|)."""
    magnitude = tf.math.log1p(tf.abs(tf.signal.rfft2d(images[..., 0])))
    return tf.reshape(magnitude, [-1, magnitude.shape[1] * magnitude.shape[2]])


def make_detector(architecture, seed=0):
    """A detector network (see the module docstring); float32 throughout."""
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
    else:
        raise ValueError(f"unknown detector {architecture!r}; use one of {ARCHITECTURES}")
    return keras.Sequential([keras.Input(models.IMAGE_SHAPE), *body,
                             layers.Dense(1, kernel_initializer=init(9))],
                            name=f"{architecture}_detector")


def _gaussian_blur(image, sigma):
    """uint8-valued float [28, 28, 1] blurred by a 5x5 Gaussian of `sigma` pixels."""
    x = tf.range(-2.0, 3.0)
    kernel_1d = tf.exp(-0.5 * tf.square(x / sigma))
    kernel_1d /= tf.reduce_sum(kernel_1d)
    kernel = tf.reshape(kernel_1d[:, None] * kernel_1d[None, :], [5, 5, 1, 1])
    padded = tf.pad(image[None], [[0, 0], [2, 2], [2, 2], [0, 0]], mode="SYMMETRIC")
    return tf.nn.conv2d(padded, kernel, strides=1, padding="VALID")[0]


def perturb(image, name, strength):
    """One perturbation of a uint8 [28, 28, 1] image, quantized back to uint8.

    blur: Gaussian sigma `strength` px; jpeg: re-encoded at quality `strength`; noise:
    Gaussian of std `strength` grey levels; resize: down to `strength` px, back up to 28.
    """
    if name == "jpeg":
        # The codec's output has no static shape; the detectors' dense layers need one.
        return tf.ensure_shape(
            tf.image.adjust_jpeg_quality(image, tf.cast(strength, tf.int32)), image.shape)
    x = tf.cast(image, tf.float32)
    if name == "blur":
        x = _gaussian_blur(x, tf.cast(strength, tf.float32))
    elif name == "noise":
        x += tf.random.normal(tf.shape(x), stddev=tf.cast(strength, tf.float32))
    elif name == "resize":
        size = tf.cast(strength, tf.int32)
        x = tf.ensure_shape(tf.image.resize(tf.image.resize(
            x, [size, size], method="bilinear"), [28, 28], method="bilinear"), image.shape)
    else:
        raise ValueError(f"unknown perturbation {name!r}; use one of {AUGMENTATIONS}")
    return tf.cast(tf.clip_by_value(tf.round(x), 0.0, 255.0), tf.uint8)


# Training-time ranges (Wang et al. 2020: blur sigma up to 3 at 256 px, JPEG quality
# 30-100, each with probability 0.5), scaled to 28-pixel images.
_RANGES = {"blur": (0.3, 1.5), "jpeg": (50, 96), "noise": (1.0, 8.0), "resize": (14, 27)}


def augment(image, names, probability=0.5):
    """Applies each named augmentation with `probability`, at a random strength."""
    for name in names:
        low, high = _RANGES[name]
        if name in ("jpeg", "resize"):
            strength = tf.random.uniform([], low, high, dtype=tf.int32)
        else:
            strength = tf.random.uniform([], low, high)
        image = tf.cond(tf.random.uniform([]) < probability,
                        lambda: perturb(image, name, strength), lambda: image)
    return image

