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
"""

import keras
import tensorflow as tf
from keras import layers

from dcgan_dist import shapes
from dcgan_dist.forensics.config import ARCHITECTURES, AUGMENTATIONS


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
        residual = x - _per_channel_conv(padded, blur[:, None] * blur[None, :])
        return tf.concat([_log_spectrum(x), _log_spectrum(residual)], axis=1)


def _per_channel_conv(padded, kernel):
    """Each channel of [N, H, W, C] convolved ("VALID") with the 2-D `kernel` alone."""
    channels = padded.shape[-1]
    kernel = kernel[:, :, None, None]
    if channels == 1:  # the article's images: the op the detectors always used
        return tf.nn.conv2d(padded, kernel, strides=1, padding="VALID")
    return tf.nn.depthwise_conv2d(padded, tf.tile(kernel, [1, 1, channels, 1]),
                                  strides=[1, 1, 1, 1], padding="VALID")


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
    else:
        raise ValueError(f"unknown detector {architecture!r}; use one of {ARCHITECTURES}")
    return keras.Sequential([keras.Input(tuple(image_shape)), *body,
                             layers.Dense(1, kernel_initializer=init(9))],
                            name=f"{architecture}_detector")


def _gaussian_blur(image, sigma):
    """uint8-valued float [H, W, C] blurred by a 5x5 Gaussian of `sigma` pixels, each
    channel on its own."""
    x = tf.range(-2.0, 3.0)
    kernel_1d = tf.exp(-0.5 * tf.square(x / sigma))
    kernel_1d /= tf.reduce_sum(kernel_1d)
    padded = tf.pad(image[None], [[0, 0], [2, 2], [2, 2], [0, 0]], mode="SYMMETRIC")
    return _per_channel_conv(padded, kernel_1d[:, None] * kernel_1d[None, :])[0]


def perturb(image, name, strength):
    """One perturbation of a uint8 [H, W, C] image (C: 1 or 3), quantized back to uint8.

    blur: Gaussian sigma `strength` px; jpeg: re-encoded at quality `strength`; noise:
    Gaussian of std `strength` grey levels (each channel its own draw); resize: down to
    `strength` px square, back up to H x W (images are square, see shapes.py).
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
        small = tf.image.resize(x, [size, size], method="bilinear")
        x = tf.ensure_shape(tf.image.resize(small, list(image.shape[:2]), method="bilinear"),
                            image.shape)
    else:
        raise ValueError(f"unknown perturbation {name!r}; use one of {AUGMENTATIONS}")
    return tf.cast(tf.clip_by_value(tf.round(x), 0.0, 255.0), tf.uint8)


# Training-time ranges (Wang et al. 2020: blur sigma up to 3 at 256 px, JPEG quality
# 30-100, each with probability 0.5), scaled to 28-pixel images. The resize sizes are
# those of a 28-pixel image; other sizes scale them (`_range`). Blur and noise stay
# as they are: a generator's artefacts are a few pixels wide at any size.
_RANGES = {"blur": (0.3, 1.5), "jpeg": (50, 96), "noise": (1.0, 8.0), "resize": (14, 27)}
_RANGES_SIZE = 28  # the image size the resize range is written for


def _range(name, size):
    """(low, high) of augmentation `name` for images of `size` pixels."""
    low, high = _RANGES[name]
    if name == "resize" and size != _RANGES_SIZE:
        # Half the size up to 27/28 of it (exclusive): 16..30 at 32 px, 32..61 at 64.
        low, high = (round(low * size / _RANGES_SIZE), round(high * size / _RANGES_SIZE))
    return low, high


def augment(image, names, probability=0.5):
    """Applies each named augmentation with `probability`, at a random strength, to a
    uint8 [H, W, C] image."""
    for name in names:
        low, high = _range(name, image.shape[0])
        if name in ("jpeg", "resize"):
            strength = tf.random.uniform([], low, high, dtype=tf.int32)
        else:
            strength = tf.random.uniform([], low, high)
        image = tf.cond(tf.random.uniform([]) < probability,
                        lambda: perturb(image, name, strength), lambda: image)
    return image
