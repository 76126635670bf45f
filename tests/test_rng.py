import numpy as np
import pytest
import tensorflow as tf

from dcgan_dist import rng


@pytest.mark.parametrize("draw", [rng.normal_rows, rng.uniform_rows])
@pytest.mark.parametrize("row_shape", [(100,), (7, 7, 3), (5,)])  # 5 and 147: not /4
def test_rows_equal_slices_of_the_global_draw(draw, row_shape):
    seed = tf.constant([11, 7], tf.int64)
    full = draw([12, *row_shape], seed).numpy()
    for first, count in [(0, 3), (3, 3), (5, 4), (11, 1)]:
        part = draw([count, *row_shape], seed, first).numpy()
        np.testing.assert_array_equal(part, full[first:first + count])


def test_distributions_and_seeds():
    normal = rng.normal_rows([4000, 25], [1, 2]).numpy()
    assert abs(normal.mean()) < 0.02 and abs(normal.std() - 1) < 0.02
    uniform = rng.uniform_rows([4000, 25], [1, 2]).numpy()
    assert uniform.min() >= 0 and uniform.max() < 1 and abs(uniform.mean() - 0.5) < 0.01
    # Another seed, the same rows and shape: other numbers (a draw that ignored its
    # seed would repeat them).
    assert not np.array_equal(rng.normal_rows([4000, 25], [1, 3]), normal)
    assert not np.array_equal(rng.uniform_rows([4000, 25], [2, 2]), uniform)
    np.testing.assert_array_equal(rng.normal_rows([4, 25], [1, 2]), normal[:4])
