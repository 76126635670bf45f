"""Samples from a generator, named by seeds: seed s always means the same noise vector.

    noise = noise_for_seeds(range(100, 116))   # [16, 100]: seeds 100..115
    images = generate_images(generator, noise) # uint8 [16, H, W, C]

One image per seed, so image s does not depend on how many others were drawn with it,
and the exported generator's `from_seeds` signature draws the same noise. A conditional
generator is also given each image's class; by default the classes are balanced
(`balanced_labels`: image i is of class i % classes), so every tool that samples a run
(evaluation, forensics pools) samples a conditional one evenly.
"""

import numpy as np
import tensorflow as tf

from dcgan_dist import models

# The second word of every per-image stateless seed: keeps these draws apart from the
# training noise, whose per-step seeds come from the checkpointed tf.random.Generator
# of the training state (training/train_step.py), and from the grid's [--seed, 1].
_SEED_SALT = 0x5A3D1E


@tf.function(input_signature=[tf.TensorSpec([None], tf.int64)])
def _noise_graph(seeds):
    # One trace for every call (fixed signature); map_fn because stateless ops take one
    # seed per call.
    return tf.map_fn(
        lambda s: tf.random.stateless_normal([models.NOISE_DIM],
                                             seed=tf.stack([s, _SEED_SALT])),
        seeds, fn_output_signature=tf.float32)


def noise_for_seeds(seeds):
    """float32 [len(seeds), 100]: the standard-normal noise vector of each seed."""
    if tf.is_tensor(seeds):  # e.g. inside the exported generator's signature
        return _noise_graph(tf.cast(seeds, tf.int64))
    return _noise_graph(tf.constant(np.asarray(seeds, dtype=np.int64).reshape([-1])))


def images_to_uint8(images):
    """Generator output in [-1, 1] -> uint8 [0, 255] (as images.to_uint8, in TensorFlow)."""
    images = tf.cast(images, tf.float32)
    return tf.cast(tf.clip_by_value(tf.round(images * 127.5 + 127.5), 0.0, 255.0), tf.uint8)


def balanced_labels(count, num_classes):
    """int32 [count]: class i % num_classes for image i, as even as `count` allows."""
    return np.arange(count, dtype=np.int32) % num_classes


def generate_images(generator, noise, labels=None, batch_size=500):
    """uint8 [N, H, W, C] images of `generator` (inference mode) for noise [N, 100];
    a conditional generator's of classes `labels` [N] (default: balanced_labels).

    Eager calls in fixed-size batches: nothing is traced, so calling it on new models or
    new weights, as often as needed, leaves no compiled functions behind.
    """
    noise = tf.convert_to_tensor(noise, tf.float32)
    count, classes = int(noise.shape[0]), models.class_count(generator)
    if classes:
        labels = tf.convert_to_tensor(balanced_labels(count, classes) if labels is None
                                      else labels, tf.int32)

    def inputs(i):
        batch = noise[i:i + batch_size]
        return [batch, labels[i:i + batch_size]] if classes else batch

    batches = [images_to_uint8(generator(inputs(i), training=False))
               for i in range(0, count, batch_size)]
    if not batches:
        return np.zeros([0, *generator.output_shape[1:]], np.uint8)
    return tf.concat(batches, axis=0).numpy()


def slerp_noise(seed_a, seed_b, steps):
    """float32 [steps, 100]: the great-circle path from seed_a's noise to seed_b's.

    Spherical rather than linear, because Gaussian noise lives near a sphere: linear
    midpoints are shorter than any noise the generator was trained on.
    """
    a, b = noise_for_seeds([seed_a, seed_b]).numpy().astype(np.float64)
    cos = np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b))
    omega = np.arccos(np.clip(cos, -1.0, 1.0))
    t = np.linspace(0.0, 1.0, steps)[:, None]
    if omega < 1e-6:  # the same direction: nothing to bend around
        return ((1 - t) * a + t * b).astype(np.float32)
    path = (np.sin((1 - t) * omega) * a + np.sin(t * omega) * b) / np.sin(omega)
    return path.astype(np.float32)

