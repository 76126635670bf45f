"""What happens to images on their way to a user: blur, resizing, JPEG re-encoding, noise
and chains of them. The held-out protocol applies them to real and generated images
alike (`named`, `PERTURBATIONS`); detectors train with random ones (`augment`).

Every function takes and returns one uint8 image [H, W, C] (C: 1 or 3), quantized back
to uint8 after each step, as a file would store it.
"""

import tensorflow as tf

from dcgan_dist.forensics.config import AUGMENTATIONS, PERTURBATIONS

# The blur kernel's radius: 3 sigma of the strongest blur measured (2 px) fits in it;
# one static size, so random strengths in training need no retracing.
_BLUR_RADIUS = 6


def per_channel_conv(padded, kernel):
    """Each channel of [N, H, W, C] convolved ("VALID") with the 2-D `kernel` alone."""
    channels = padded.shape[-1]
    kernel = kernel[:, :, None, None]
    if channels == 1:
        return tf.nn.conv2d(padded, kernel, strides=1, padding="VALID")
    return tf.nn.depthwise_conv2d(padded, tf.tile(kernel, [1, 1, channels, 1]),
                                  strides=[1, 1, 1, 1], padding="VALID")


def _gaussian_blur(image, sigma):
    """float [H, W, C] blurred by a Gaussian of `sigma` pixels, each channel alone."""
    x = tf.range(-float(_BLUR_RADIUS), _BLUR_RADIUS + 1.0)
    kernel_1d = tf.exp(-0.5 * tf.square(x / sigma))
    kernel_1d /= tf.reduce_sum(kernel_1d)
    r = _BLUR_RADIUS
    padded = tf.pad(image[None], [[0, 0], [r, r], [r, r], [0, 0]], mode="SYMMETRIC")
    return per_channel_conv(padded, kernel_1d[:, None] * kernel_1d[None, :])[0]


def _down_up(image, size):
    """float [H, W, C] down to `size` px square (antialiased, as image editors and
    browsers shrink), then back up, bilinear both ways (images are square, shapes.py)."""
    small = tf.image.resize(image, [size, size], method="bilinear", antialias=True)
    return tf.ensure_shape(tf.image.resize(small, tf.shape(image)[:2], method="bilinear"),
                           image.shape)


def perturb(image, kind, strength):
    """One perturbation of a uint8 [H, W, C] image, quantized back to uint8.

    blur: Gaussian, sigma `strength` px; jpeg: re-encoded at quality `strength`; noise:
    Gaussian of std `strength` grey levels (each channel its own draw); resize: down to
    `strength` px square and back up; downup: the same at `strength` times the size.
    """
    if kind == "jpeg":
        # The codec's output has no static shape; the detectors' dense layers need one.
        return tf.ensure_shape(
            tf.image.adjust_jpeg_quality(image, tf.cast(strength, tf.int32)), image.shape)
    x = tf.cast(image, tf.float32)
    if kind == "blur":
        x = _gaussian_blur(x, tf.cast(strength, tf.float32))
    elif kind == "noise":
        x += tf.random.normal(tf.shape(x), stddev=tf.cast(strength, tf.float32))
    elif kind == "resize":
        x = _down_up(x, tf.cast(strength, tf.int32))
    elif kind == "downup":
        size = tf.cast(tf.round(tf.cast(strength, tf.float32) * image.shape[0]), tf.int32)
        x = _down_up(x, size)
    else:
        raise ValueError(f"unknown perturbation {kind!r}")
    return tf.cast(tf.clip_by_value(tf.round(x), 0.0, 255.0), tf.uint8)


def named(image, name):
    """The protocol's perturbation `name` (a key of PERTURBATIONS) of one image."""
    for kind, strength in PERTURBATIONS[name]:
        image = perturb(image, kind, strength)
    return image


# Training-time ranges. Wang et al. 2020 draw blur sigma up to 3 at 256 px and JPEG
# quality 30-100, each on half the images; here blur reaches past the protocol's
# strongest (2 px), since a detector only holds under the blur it trained on. The resize
# sizes are a 28-pixel image's (other sizes scale them, `_range`); blur and noise stay
# as they are: a generator's artefacts are a few pixels wide at any size.
_RANGES = {"blur": (0.2, 2.5), "jpeg": (50, 96), "noise": (1.0, 8.0), "resize": (14, 27)}
_RANGES_SIZE = 28  # the image size the resize range is written for
# The chain's steps: a copy shrunk to 50-90% and enlarged, then two JPEG encodings.
_CHAIN = {"downup": (0.5, 0.9), "jpeg": (60, 96), "jpeg_again": (70, 96)}


def _range(name, size):
    """(low, high) of augmentation `name` for images of `size` pixels."""
    low, high = _RANGES[name]
    if name == "resize" and size != _RANGES_SIZE:
        # Half the size up to 27/28 of it (exclusive): 16..30 at 32 px, 32..61 at 64.
        low, high = (round(low * size / _RANGES_SIZE), round(high * size / _RANGES_SIZE))
    return low, high


def _chain(image):
    """A random chain like the protocol's: shrink and enlarge, then JPEG twice."""
    image = perturb(image, "downup", tf.random.uniform([], *_CHAIN["downup"]))
    image = perturb(image, "jpeg", tf.random.uniform([], *_CHAIN["jpeg"], dtype=tf.int32))
    return perturb(image, "jpeg", tf.random.uniform([], *_CHAIN["jpeg_again"],
                                                    dtype=tf.int32))


def augment(image, names, probability=0.5):
    """Applies each named augmentation (AUGMENTATIONS) with `probability`, at a random
    strength, to a uint8 [H, W, C] image."""
    for name in names:
        if name not in AUGMENTATIONS:
            raise ValueError(f"unknown augmentation {name!r}; use one of {AUGMENTATIONS}")
        if name == "chain":
            apply = lambda image=image: _chain(image)  # noqa: E731
        else:
            low, high = _range(name, image.shape[0])
            dtype = tf.int32 if name in ("jpeg", "resize") else tf.float32
            strength = tf.random.uniform([], low, high, dtype=dtype)
            apply = lambda image=image, name=name, strength=strength: perturb(  # noqa: E731
                image, name, strength)
        image = tf.cond(tf.random.uniform([]) < probability, apply,
                        lambda image=image: image)
    return image
