"""Random draws that do not depend on how a global batch is split across replicas.

Every random tensor of a training step (the generator's noise, the discriminator's dropout
masks) is defined for the *global* batch by one per-step seed: row i of the global batch
always gets the same numbers. A replica that holds rows [r*b, (r+1)*b) draws only its own
b rows, by starting TensorFlow's counter-based Philox generator at the right offset. So one
replica at global batch B and four replicas at B/4 each see exactly the same noise and
masks, which is what makes training results independent of the replica count (and what the
replica-equivalence test checks).

Philox yields 4 float32 values per counter increment, for uniform and for normal draws.
"""

import tensorflow as tf

_PHILOX = 1  # tf.random.Algorithm.PHILOX; fixed so CPU, GPU and TPU use the same stream.
_VALUES_PER_COUNTER = 4


def replica_row_offset(rows_per_replica):
    """Index of this replica's first row in the global batch (0 outside a strategy)."""
    context = tf.distribute.get_replica_context()
    replica_id = 0 if context is None else context.replica_id_in_sync_group
    return tf.cast(replica_id, tf.int64) * tf.cast(rows_per_replica, tf.int64)


def _draw_rows(op, shape, seed, first_row):
    """Rows [first_row, first_row + shape[0]) of the draw `op` would make for all rows."""
    shape = tf.cast(tf.stack(shape), tf.int64)
    row_size = tf.reduce_prod(shape[1:])
    start = tf.cast(first_row, tf.int64) * row_size
    count = tf.reduce_prod(shape)
    skip = start % _VALUES_PER_COUNTER
    key, counter = tf.raw_ops.StatelessRandomGetKeyCounter(seed=tf.cast(seed, tf.int64))
    # The counter derived from a seed has a zero low word, so adding the offset there
    # cannot carry into the high word.
    offset = tf.cast(start // _VALUES_PER_COUNTER, tf.uint64)
    counter = counter + tf.stack([offset, tf.constant(0, tf.uint64)])
    flat = op(shape=tf.reshape(count + skip, [1]), key=key, counter=counter, alg=_PHILOX)
    return tf.reshape(flat[skip:], shape)


def normal_rows(shape, seed, first_row=0):
    """Standard-normal float32 rows of a global draw seeded by `seed` (an int [2])."""
    return _draw_rows(tf.raw_ops.StatelessRandomNormalV2, shape, seed, first_row)


def uniform_rows(shape, seed, first_row=0):
    """Uniform [0, 1) float32 rows of a global draw seeded by `seed` (an int [2])."""
    return _draw_rows(tf.raw_ops.StatelessRandomUniformV2, shape, seed, first_row)
