"""The convolution rewrites that benchmarks/conv_rewrites.py times compute exactly what
the plain ops compute: outputs, input gradients and kernel gradients (float32)."""

import os
import sys

import numpy as np
import pytest
import tensorflow as tf

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                                "benchmarks"))
import conv_rewrites  # noqa: E402


@pytest.mark.parametrize("case", conv_rewrites.cases(batch_size=4), ids=lambda c: c[0])
def test_rewrite_equals_the_plain_op(case):
    _, x_shape, k_shape, plain, rewritten = case
    x = tf.random.stateless_normal(x_shape, [1, 2])
    kernel = tf.random.stateless_normal(k_shape, [3, 4]) * 0.05
    expected = conv_rewrites.forward_and_gradients(plain, x, kernel, tf.float32)
    got = conv_rewrites.forward_and_gradients(rewritten, x, kernel, tf.float32)
    for a, b in zip(expected, got):
        assert a.shape == b.shape
        np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=1e-4,
                                   atol=1e-5 * float(tf.reduce_max(tf.abs(a))))


def test_a_wrong_tap_order_is_caught():
    """The check can fail: the stride-2 rewrite with its parities swapped differs."""
    x = tf.random.stateless_normal([2, 7, 7, 8], [1, 2])
    kernel = tf.random.stateless_normal([5, 5, 4, 8], [3, 4])
    saved = conv_rewrites._TRANSPOSED_TAPS
    try:
        conv_rewrites._TRANSPOSED_TAPS = saved[::-1]
        wrong = conv_rewrites.transposed_conv_stride2_as_subpixel(x, kernel)
    finally:
        conv_rewrites._TRANSPOSED_TAPS = saved
    right = conv_rewrites.transposed_conv(x, kernel, 2)
    assert np.abs(wrong.numpy() - right.numpy()).max() > 0.1
