"""An exponential moving average of the generator's weights (StyleGAN2's G_ema;
Yazici et al. 2019), which users see instead of the raw, oscillating generator.

Every weight is averaged, the batch-norm moving mean and variance included: the
averaged network then normalizes with statistics averaged over the same window as its
kernels, which is what its inference (training=False) uses. The update runs in the
strategy's cross-replica context on values that are already equal on every replica (the
generator's weights after the all-reduced step), and a cross-replica assign writes the
same value to every replica's copy, so the average is equal on every replica and worker.
"""

import tensorflow as tf


def decay(config, images_seen):
    """This step's decay (a float32 scalar) from the config's averaging settings.

    With a half-life of H images and a global batch of B, the decay is 0.5 ** (B / H):
    the weight of an image seen H images ago halves. The ramp-up (StyleGAN2-ADA's
    ema_rampup) caps H at `ema_rampup` times the images seen so far, so the first
    averages forget the random initialization quickly.
    """
    if config.ema_decay is not None:
        return tf.constant(config.ema_decay, tf.float32)
    halflife = tf.constant(config.ema_halflife_images, tf.float32)
    if config.ema_rampup:
        halflife = tf.minimum(halflife, tf.cast(images_seen, tf.float32) * config.ema_rampup)
    return tf.pow(0.5, config.batch_size / tf.maximum(halflife, 1e-8))


def update(averaged, model, rate):
    """averaged <- rate * averaged + (1 - rate) * model, weight by weight, in place."""
    for average, weight in zip(averaged.weights, model.weights):
        average.assign(rate * average + (1.0 - rate) * tf.convert_to_tensor(weight))


def copy(averaged, model):
    for average, weight in zip(averaged.weights, model.weights):
        average.assign(weight)
