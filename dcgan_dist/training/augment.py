"""Differentiable augmentation of the discriminator's inputs (DiffAugment: Zhao et al.,
NeurIPS 2020; mit-han-lab/data-efficient-gans, DiffAugment_tf.py).

With few training images the discriminator memorises them and stops teaching the
generator. Augmenting what it sees, real and generated images alike and in both
networks' steps, keeps it from that without the generator learning the augmentations:
each transform is differentiable, so the generator's gradient flows through it.

    augmented = augment(images, ("color", "cutout"), seed)  # config.augmentations

The policies are DiffAugment's, on images in [-1, 1]:
- `color`: brightness (+U(-0.5, 0.5)), saturation (x U(0, 2) about the pixel's channel
  mean) and contrast (x U(0.5, 1.5) about the image's mean). On grey images saturation
  has nothing to act on (the channel mean is the pixel), so `color` is brightness and
  contrast there; it is skipped rather than computed as the identity.
- `translation`: a shift of up to 1/8 of the side in each direction, zeros shifted in;
- `cutout`: a square of half the side set to zero, centred anywhere in the image.

Unlike DiffAugment's code, every random number is drawn per *global* row from the
step's seed (`rng.uniform_rows`): row i of the global batch gets the same transform
whether one replica holds it or another, and the seed comes from the run's checkpointed
generator, so runs stay equal across replica counts and resume bitwise.
"""

import tensorflow as tf

from dcgan_dist import rng
from dcgan_dist.options import DIFFAUGMENT_POLICIES as POLICIES

TRANSLATION_RATIO = 0.125
CUTOUT_RATIO = 0.5


def _uniforms(images, count, seed):
    """[rows, count] uniform [0, 1) numbers of this replica's rows of the global batch."""
    rows = tf.shape(images)[0]
    return rng.uniform_rows([rows, count], seed, rng.replica_row_offset(rows))


def _color(images, draws):
    dtype = images.dtype

    def column(i):
        return tf.cast(tf.reshape(draws[:, i], [-1, 1, 1, 1]), dtype)

    images = images + (column(0) - 0.5)                            # brightness
    if images.shape[-1] > 1:                                         # saturation
        mean = tf.reduce_mean(images, axis=3, keepdims=True)
        images = (images - mean) * (column(1) * 2.0) + mean
    mean = tf.reduce_mean(images, axis=[1, 2, 3], keepdims=True)     # contrast
    return (images - mean) * (column(2) + 0.5) + mean


def _shift_axis(images, shifts, axis):
    """Each row of `images` shifted by its own whole number of pixels along `axis`
    (1: rows, 2: columns), zeros shifted in."""
    size = images.shape[axis]
    padding = [[0, 0]] * 4
    padding[axis] = [1, 1]
    padded = tf.pad(images, padding)  # index 0 and size + 1 are the zeros
    index = tf.clip_by_value(tf.range(size)[tf.newaxis, :] + shifts[:, tf.newaxis] + 1,
                             0, size + 1)
    return tf.gather(padded, index, axis=axis, batch_dims=1)


def _translation(images, draws):
    size = images.shape[1]
    shift = int(size * TRANSLATION_RATIO + 0.5)
    # Uniform on the 2 * shift + 1 whole shifts in [-shift, shift], as DiffAugment draws.
    shifts = tf.cast(tf.floor(draws * (2 * shift + 1)), tf.int32) - shift
    images = _shift_axis(images, shifts[:, 0], axis=1)
    return _shift_axis(images, shifts[:, 1], axis=2)


def _cutout(images, draws):
    size = images.shape[1]
    cut = int(size * CUTOUT_RATIO + 0.5)
    # DiffAugment's offsets: the square's centre in [0, size + (1 - cut % 2)).
    centres = tf.cast(tf.floor(draws * (size + 1 - cut % 2)), tf.int32)
    starts = centres - cut // 2
    positions = tf.range(size)[tf.newaxis, :]

    def inside(start):  # [rows, size]: whether each pixel index falls in the square
        start = start[:, tf.newaxis]
        return tf.logical_and(positions >= start, positions < start + cut)

    hole = tf.logical_and(inside(starts[:, 0])[:, :, tf.newaxis],
                          inside(starts[:, 1])[:, tf.newaxis, :])
    return images * tf.cast(tf.logical_not(hole), images.dtype)[..., tf.newaxis]


_TRANSFORMS = {"color": (_color, 3), "translation": (_translation, 2),
               "cutout": (_cutout, 2)}


def augment(images, policy, seed):
    """`images` [rows, H, W, C] in [-1, 1] with each transform of `policy` (names of
    POLICIES) applied in DiffAugment's order, all differentiable; `seed` is an int
    [2] tensor, one per step and batch. The identity for an empty policy."""
    for index, name in enumerate(POLICIES):  # each transform its own fixed stream
        if name not in policy:
            continue
        transform, count = _TRANSFORMS[name]
        draws = _uniforms(images, count, tf.random.experimental.stateless_fold_in(
            seed, index))
        images = transform(images, draws)
    return images
