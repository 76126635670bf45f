"""DiffAugment (training/augment.py): what each transform does to known images, that it
is seeded and differentiable, and the --diffaugment flag's checks.

That augmented runs are equal across replica counts is in test_replica_equivalence.py,
and that they resume bitwise in test_resume.py (its runs train with augmentation on).
"""

import numpy as np
import pytest
import tensorflow as tf

from dcgan_dist.errors import ConfigError
from dcgan_dist.training import augment
from dcgan_dist.training.config import TrainConfig

SEED = tf.constant([7, 11], tf.int64)


def _ramp(rows=4, size=8, channels=1):
    """Distinct values in [-1, 1], so a moved or zeroed pixel shows."""
    values = np.linspace(-0.9, 0.9, rows * size * size * channels, dtype=np.float32)
    return tf.constant(values.reshape(rows, size, size, channels))


def test_a_shift_moves_each_row_by_its_own_pixels_with_zeros_shifted_in():
    images = _ramp(rows=3)
    shifted = augment._shift_axis(images, tf.constant([1, 0, -2]), axis=1).numpy()
    x = images.numpy()
    # Output row r reads input row r + shift: DiffAugment's sign convention.
    np.testing.assert_array_equal(shifted[0, :-1], x[0, 1:])
    np.testing.assert_array_equal(shifted[0, -1], 0)
    np.testing.assert_array_equal(shifted[1], x[1])
    np.testing.assert_array_equal(shifted[2, 2:], x[2, :-2])
    np.testing.assert_array_equal(shifted[2, :2], 0)


def test_translation_shifts_by_at_most_an_eighth_and_keeps_the_pixels():
    images = _ramp(rows=64, size=16)
    moved = augment.augment(images, ("translation",), SEED).numpy()
    x = images.numpy()
    for original, result in zip(x, moved):
        # Some whole shift (dy, dx) within +-2 pixels (16 / 8) explains every pixel.
        found = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)
                 if np.array_equal(result, _shifted(original, dy, dx))]
        assert len(found) == 1
    assert not np.array_equal(moved, x)


def _shifted(image, dy, dx):
    out = np.zeros_like(image)
    size = image.shape[0]
    for i in range(size):
        for j in range(size):
            if 0 <= i + dy < size and 0 <= j + dx < size:
                out[i, j] = image[i + dy, j + dx]
    return out


def test_cutout_zeroes_one_square_of_half_the_side():
    images = tf.ones([64, 28, 28, 3])
    cut = augment.augment(images, ("cutout",), SEED).numpy()
    zeros = (cut == 0).all(axis=-1)  # every channel of a pixel, or none
    assert ((cut == 0) == zeros[..., None]).all()
    side = 14
    for hole in zeros:
        rows, cols = np.nonzero(hole.any(axis=1))[0], np.nonzero(hole.any(axis=0))[0]
        # A rectangle (clipped at the border), at most 14 x 14, never empty here.
        assert 0 < len(rows) <= side and 0 < len(cols) <= side
        assert hole.sum() == len(rows) * len(cols)
        assert hole[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1].all()
    # Whole squares inside the image for most draws.
    assert (zeros.sum(axis=(1, 2)) == side * side).mean() > 0.2


def test_color_on_grey_is_brightness_then_contrast():
    images = _ramp(rows=8)
    out = augment.augment(images, ("color",), SEED).numpy()
    draws = augment._uniforms(images, 3, tf.random.experimental.stateless_fold_in(
        SEED, 0)).numpy()
    x = images.numpy() + (draws[:, 0] - 0.5)[:, None, None, None]
    mean = x.mean(axis=(1, 2, 3), keepdims=True)
    expected = (x - mean) * (draws[:, 2] + 0.5)[:, None, None, None] + mean
    np.testing.assert_allclose(out, expected, atol=1e-6)


def test_color_changes_saturation_of_colour_images():
    # Each pixel's channels 0.2 apart: a spread the float32 arithmetic keeps exact.
    images = 0.5 * _ramp(rows=8) + tf.constant([-0.2, 0.0, 0.2])
    out = augment.augment(images, ("color",), SEED).numpy()
    spread_in = np.ptp(images.numpy(), axis=-1)
    spread_out = np.ptp(out, axis=-1)
    # Saturation scales each pixel's spread over its channels by U(0, 2), contrast by
    # U(0.5, 1.5): per image, one factor for all pixels.
    ratios = spread_out / spread_in
    np.testing.assert_allclose(ratios, np.broadcast_to(ratios[:, :1, :1], ratios.shape),
                               rtol=1e-3)
    assert len(np.unique(np.round(ratios[:, 0, 0], 4))) == 8


def test_the_same_seed_gives_the_same_images_and_another_seed_others():
    images = _ramp(rows=16)
    policy = ("color", "translation", "cutout")
    first = augment.augment(images, policy, SEED).numpy()
    np.testing.assert_array_equal(first, augment.augment(images, policy, SEED).numpy())
    other = augment.augment(images, policy, tf.constant([7, 12], tf.int64)).numpy()
    assert not np.array_equal(first, other)


def test_an_empty_policy_is_the_identity():
    images = _ramp()
    assert augment.augment(images, (), SEED) is images


@pytest.mark.parametrize("policy", [("color",), ("translation",), ("cutout",)])
def test_gradients_flow_through_every_transform(policy):
    images = tf.Variable(_ramp(rows=8))
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(augment.augment(images, policy, SEED))
    gradient = tape.gradient(loss, images).numpy()
    assert np.isfinite(gradient).all()
    if policy == ("color",):  # every pixel moves the image's mean, so the contrast
        assert (gradient != 0).all()
    else:  # 1 where a pixel is kept, 0 where it is shifted off or cut out
        assert set(np.unique(gradient)) <= {0.0, 1.0}
        assert 0.2 < gradient.mean() < 1.0


def test_bf16_images_stay_bf16():
    images = tf.cast(_ramp(), tf.bfloat16)
    out = augment.augment(images, ("color", "translation", "cutout"), SEED)
    assert out.dtype == tf.bfloat16


@pytest.mark.parametrize("flag", ["bogus", "color,bogus", "color,color ", "Color"])
def test_an_unknown_policy_is_refused(flag, tmp_path):
    with pytest.raises(ConfigError, match="--diffaugment=.* is unknown"):
        TrainConfig(workdir=str(tmp_path), diffaugment=flag)


def test_the_policy_is_recorded_in_one_order(tmp_path):
    config = TrainConfig(workdir=str(tmp_path), diffaugment="cutout, translation,color")
    assert config.diffaugment == "color,translation,cutout"
    assert config.augmentations == ("color", "translation", "cutout")
    assert config.resume_fields()["diffaugment"] == "color,translation,cutout"
    assert TrainConfig(workdir=str(tmp_path)).augmentations == ()
