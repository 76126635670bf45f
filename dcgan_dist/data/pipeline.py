"""The training input pipeline: decode once, cache, shuffle per epoch, batch, distribute.

Every epoch's order is a pure function of (seed, epoch): the whole split is shuffled with a
seed derived from both, then cut into global batches of `global_batch_size` (the remainder
is dropped, as the replica count must divide every batch). Each input pipeline (one per
worker or TPU host) takes its own contiguous slice of every *global* batch and splits it
into per-replica batches in replica order. So

- the images in a step do not depend on the number of workers or replicas: one replica at
  batch B and four at B/4 train on the same global batch;
- a run resumed at global step s rebuilds the stream from epoch s // steps_per_epoch and
  skips s % steps_per_epoch batches, and sees what an uninterrupted run would have seen.

Each worker reads the whole split (at most 70,000 28x28 images, 55 MB as uint8) and keeps
it cached in memory as uint8; scaling to [-1, 1] happens per batch, after slicing.
"""

import tensorflow as tf
import tensorflow_datasets as tfds


def steps_per_epoch(num_examples, global_batch_size):
    return num_examples // global_batch_size


def tfds_images(builder, split):
    """(a function returning the uint8 image dataset of `split`, its number of images)."""
    num_examples = builder.info.splits[split].num_examples

    def images_fn():
        ds = builder.as_dataset(split=split, shuffle_files=False,
                                read_config=tfds.ReadConfig(try_autocache=False))
        return ds.map(lambda example: example["image"],
                      num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)

    return images_fn, num_examples


def _epoch_seed(seed, epoch):
    # Distinct (seed, epoch) pairs give distinct 64-bit seeds for seeds and epochs < 2**31.
    return tf.bitwise.bitwise_or(tf.bitwise.left_shift(tf.constant(seed, tf.int64),
                                                       tf.constant(32, tf.int64)), epoch)


def scale_images(images, dtype=tf.float32):
    """uint8 [0, 255] -> [-1, 1], as the article does: (x - 127.5) / 127.5."""
    return tf.cast((tf.cast(images, tf.float32) - 127.5) / 127.5, dtype)


def make_dataset_fn(images_fn, num_examples, global_batch_size, seed, start_step=0,
                    dtype=tf.float32):
    """A `dataset_fn` for `strategy.distribute_datasets_from_function`.

    Args:
      images_fn: returns a tf.data.Dataset of uint8 [28, 28, 1] images in a fixed order.
      num_examples: how many images `images_fn` yields.
      global_batch_size: images per step across all replicas.
      seed: run seed; with the epoch it fixes each epoch's order.
      start_step: global steps already trained (a resumed run starts there).
      dtype: dtype of the images handed to the model.
    """
    per_epoch = steps_per_epoch(num_examples, global_batch_size)
    if per_epoch < 1:
        raise ValueError(f"{num_examples} images make no batch of {global_batch_size}")
    start_epoch, skip_batches = divmod(start_step, per_epoch)

    def dataset_fn(input_context):
        per_replica = input_context.get_per_replica_batch_size(global_batch_size)
        per_pipeline = global_batch_size // input_context.num_input_pipelines
        replicas_here = per_pipeline // per_replica
        first = input_context.input_pipeline_id * per_pipeline
        cached = images_fn().cache()

        def one_epoch(epoch):
            return (cached
                    .shuffle(num_examples, seed=_epoch_seed(seed, epoch),
                             reshuffle_each_iteration=False)
                    .batch(global_batch_size, drop_remainder=True))

        def replica_batches(global_batch):
            mine = global_batch[first:first + per_pipeline]
            return tf.data.Dataset.from_tensor_slices(
                tf.reshape(mine, [replicas_here, per_replica, *mine.shape[1:]]))

        return (tf.data.Dataset.counter(start_epoch)
                .flat_map(one_epoch)
                .skip(skip_batches)
                .flat_map(replica_batches)
                .map(lambda images: scale_images(images, dtype),
                     num_parallel_calls=tf.data.AUTOTUNE)
                .prefetch(tf.data.AUTOTUNE))

    return dataset_fn
