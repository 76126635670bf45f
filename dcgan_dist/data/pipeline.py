"""The training input pipeline: decode once, cache, shuffle per epoch, batch, distribute.

Every epoch's order is a pure function of (seed, epoch): the whole split is shuffled with a
seed derived from both, then cut into global batches of `global_batch_size` (the remainder
is dropped, as the replica count must divide every batch). Each input pipeline (one per
worker or TPU host) takes its own contiguous slice of every *global* batch and splits it
into per-replica batches in replica order. So

- the images in a step do not depend on the number of workers or replicas: one replica at
  batch B and four at B/4 train on the same global batch;
- a conditional run's labels travel with their images, sliced the same way;
- a run resumed at global step s rebuilds the stream from epoch s // steps_per_epoch and
  skips s % steps_per_epoch batches, and sees what an uninterrupted run would have seen.

Each input pipeline (one per worker, or one per replica on CPU devices:
strategies.input_options) reads the whole split (70,000 28x28 images are 55 MB as uint8)
and keeps it cached in memory as uint8, at the run's image shape; scaling to [-1, 1]
happens per batch, after slicing.

A dataset whose images are not of the run's shape (a tfds dataset such as cifar10 or
celeb_a, at another --image_size or --channels) is fitted to it once, before the cache,
by `fit_image`: the centre crop and Lanczos resize that folders get when prepared.
"""

import tensorflow as tf
import tensorflow_datasets as tfds


def without_autotuning(dataset):
    """`dataset` with tf.data's autotuning off, and so without its optimization thread.

    In TensorFlow 2.21 that thread is not woken when its iterator is deleted: deleting the
    iterator waits out the thread's current optimization period, which doubles from 10 ms
    up to 60 s as the iterator lives on (measured here: 17 s idle after 20 s of
    training; TF_CPP_VMODULE=model=2 logs the wait). With autotuning off, AUTOTUNE
    parallelism and buffer sizes fall back to TensorFlow's fixed defaults; the training
    speed measured with them is the same (docs/measurements.md#the-wait-at-exit).
    """
    options = tf.data.Options()
    options.autotune.enabled = False
    return dataset.with_options(options)


def steps_per_epoch(num_examples, global_batch_size):
    return num_examples // global_batch_size


LUMA = (0.299, 0.587, 0.114)  # ITU-R 601, as Pillow's "L" (folders.to_channels)


def fit_image(image, size, channels=None):
    """uint8 [H, W, C] -> uint8 [size, size, channels]: converted to `channels` (grey
    copied to R, G and B; colour to luma), centre-cropped to a square of its shorter
    side and resized by Lanczos-3 with antialiasing. That is stylegan2-ada's
    dataset_tool --transform=center-crop (Pillow's LANCZOS); pytorch/examples' dcgan
    resizes the shorter side and then crops, the same picture up to rounding. Images
    are only scaled down: callers refuse smaller ones (sources, folders)."""
    image = tf.convert_to_tensor(image)
    pixels = tf.cast(image, tf.float32)
    if channels is not None and channels != image.shape[-1]:
        pixels = (tf.tile(pixels, [1, 1, 3]) if channels == 3
                  else tf.reduce_sum(pixels * LUMA, axis=-1, keepdims=True))
    height, width = tf.shape(image)[0], tf.shape(image)[1]
    side = tf.minimum(height, width)
    pixels = tf.image.crop_to_bounding_box(pixels, (height - side) // 2,
                                           (width - side) // 2, side, side)
    pixels = tf.image.resize(pixels, [size, size], method="lanczos3", antialias=True)
    return tf.cast(tf.clip_by_value(tf.round(pixels), 0.0, 255.0), tf.uint8)


def fitted(dataset, native_shape, image_shape):
    """`dataset` of uint8 images of `native_shape` (dims may be None), or of (image,
    label) pairs, fitted to `image_shape`; the same dataset when they already match."""
    if tuple(native_shape) == tuple(image_shape):
        return dataset
    size, _, channels = image_shape

    def fit(image, *label):
        with tf.control_dependencies([tf.debugging.assert_greater_equal(
                tf.reduce_min(tf.shape(image)[:2]), size,
                message=f"an image is smaller than --image_size={size}")]):
            image = tf.ensure_shape(fit_image(image, size, channels), image_shape)
        return (image, *label) if label else image

    return dataset.map(fit, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def native_shape(builder):
    return tuple(builder.info.features["image"].shape)


def tfds_images(builder, split, image_shape=None, labels=False):
    """(a function returning the uint8 images of `split`, of `image_shape` (default: the
    data's own), their number). labels: (image, int32 label) pairs instead, for a
    conditional run."""
    num_examples = builder.info.splits[split].num_examples

    def example_of(example):
        if labels:
            return example["image"], tf.cast(example["label"], tf.int32)
        return example["image"]

    def images_fn():
        ds = builder.as_dataset(split=split, shuffle_files=False,
                                read_config=tfds.ReadConfig(try_autocache=False))
        ds = ds.map(example_of, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        return fitted(ds, native_shape(builder), image_shape or native_shape(builder))

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
      images_fn: returns a tf.data.Dataset of uint8 [H, W, C] images in a fixed order,
        or of (image, int32 label) pairs: the batches are then (images, labels) pairs.
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

        def replica_batches(*global_batch):  # images, and labels if any: rows alike
            parts = []
            for part in global_batch:
                mine = part[first:first + per_pipeline]
                parts.append(tf.reshape(mine, [replicas_here, per_replica,
                                               *mine.shape[1:]]))
            return tf.data.Dataset.from_tensor_slices(parts[0] if len(parts) == 1
                                                      else tuple(parts))

        def scaled(images, *labels):
            images = scale_images(images, dtype)
            return (images, *labels) if labels else images

        return (tf.data.Dataset.counter(start_epoch)
                .flat_map(one_epoch)
                .skip(skip_batches)
                .flat_map(replica_batches)
                .map(scaled, num_parallel_calls=tf.data.AUTOTUNE)
                .prefetch(tf.data.AUTOTUNE)
                .apply(without_autotuning))

    return dataset_fn
