"""The perturbations images meet on their way to users (forensics/perturbations.py), and
the NPR detector's input: values, not only shapes."""

import numpy as np
import pytest
import tensorflow as tf

from dcgan_dist.forensics import detectors, perturbations
from dcgan_dist.forensics.config import PERTURBATIONS


def _garment(seed=0, size=28):
    """A smooth uint8 image with edges (a blurred random blob), [size, size, 1]."""
    rng = np.random.default_rng(seed)
    x = (rng.random([size // 4, size // 4]) > 0.5).astype(np.float32) * 200 + 20
    x = np.kron(x, np.ones([4, 4], np.float32))
    return np.clip(x + rng.normal(0, 8, x.shape), 0, 255).astype(np.uint8)[..., None]


def _error(a, b):
    return float(np.mean(np.abs(np.asarray(a, np.float32) - np.asarray(b, np.float32))))


def test_stronger_perturbations_change_images_more():
    image = tf.constant(_garment())
    out = {name: perturbations.named(image, name).numpy() for name in PERTURBATIONS}
    assert _error(out["none"], image) == 0
    assert 0 < _error(out["blur0.5"], image) < _error(out["blur1"], image) < _error(
        out["blur2"], image)
    assert 0 < _error(out["jpeg90"], image) < _error(out["jpeg75"], image) < _error(
        out["jpeg50"], image)
    assert _error(out["downup0.5"], image) > 0
    # The chain is its three steps in order, and loses more than its first step alone.
    by_hand = perturbations.perturb(perturbations.perturb(perturbations.perturb(
        image, "downup", 0.5), "jpeg", 75), "jpeg", 90)
    np.testing.assert_array_equal(out["chain"], by_hand)
    assert _error(out["chain"], image) > _error(out["downup0.5"], image)


def test_blur_keeps_a_flat_image_and_its_mean():
    flat = tf.fill([28, 28, 3], tf.constant(117, tf.uint8))
    np.testing.assert_array_equal(perturbations.perturb(flat, "blur", 2.0), flat)
    image = tf.constant(_garment())
    blurred = perturbations.perturb(image, "blur", 2.0).numpy()
    assert abs(blurred.mean() - image.numpy().mean()) < 2.0  # symmetric padding, normalized
    assert blurred.std() < image.numpy().std()


@pytest.mark.parametrize("probability, changed", [(0.0, False), (1.0, True)])
def test_the_chain_augmentation_applies_at_its_probability(probability, changed):
    # No tf.random.set_seed here: a global seed of 0 left in this worker breaks the
    # tensor shuffle seeds of pipeline.py's tests that run after it.
    image = tf.constant(_garment(1))
    out = perturbations.augment(image, ["chain"], probability=probability)
    assert (_error(out, image) > 0) == changed


def test_the_npr_input_is_zero_on_nearest_upsampled_images_only():
    rng = np.random.default_rng(0)
    small = rng.uniform(-1, 1, [2, 14, 14, 1]).astype(np.float32)
    upsampled = np.repeat(np.repeat(small, 2, axis=1), 2, axis=2)
    np.testing.assert_array_equal(detectors.NeighbourResidual()(upsampled), 0.0)
    natural = rng.uniform(-1, 1, [2, 28, 28, 1]).astype(np.float32)
    residual = detectors.NeighbourResidual()(natural).numpy()
    np.testing.assert_array_equal(residual[:, ::2, ::2], 0.0)  # each block's anchor
    np.testing.assert_allclose(residual[:, 1::2, 1::2],
                               4 * (natural[:, 1::2, 1::2] - natural[:, ::2, ::2]), atol=1e-6)
