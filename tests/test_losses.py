import math

import numpy as np
import tensorflow as tf

from dcgan_dist.training import losses


def bce(label, logit):
    p = 1 / (1 + math.exp(-logit))
    return -(label * math.log(p) + (1 - label) * math.log(1 - p))


def test_losses_on_hand_computed_logits():
    real = tf.constant([[2.0], [-1.0], [0.0], [3.5]])
    fake = tf.constant([[-3.0], [0.5], [1.0], [-0.25]])
    expected_d = (sum(bce(1, x) for x in [2.0, -1.0, 0.0, 3.5]) / 4
                  + sum(bce(0, x) for x in [-3.0, 0.5, 1.0, -0.25]) / 4)
    expected_g = sum(bce(1, x) for x in [-3.0, 0.5, 1.0, -0.25]) / 4
    np.testing.assert_allclose(losses.discriminator_loss(real, fake, 4), expected_d,
                               rtol=1e-6)
    np.testing.assert_allclose(losses.generator_loss(fake, 4), expected_g, rtol=1e-6)
    # log(2) at logit 0, the article's untrained starting point.
    np.testing.assert_allclose(losses.generator_loss(tf.zeros([8, 1]), 8), math.log(2),
                               rtol=1e-6)


def test_losses_match_keras_binary_crossentropy():
    """The article's loss, keras.losses.BinaryCrossentropy(from_logits=True)."""
    import keras
    cross_entropy = keras.losses.BinaryCrossentropy(from_logits=True)
    real = tf.random.stateless_normal([32, 1], seed=[1, 1]) * 3
    fake = tf.random.stateless_normal([32, 1], seed=[2, 2]) * 3
    article_d = (cross_entropy(tf.ones_like(real), real)
                 + cross_entropy(tf.zeros_like(fake), fake))
    np.testing.assert_allclose(losses.discriminator_loss(real, fake, 32), article_d,
                               rtol=1e-5)
    np.testing.assert_allclose(losses.generator_loss(fake, 32),
                               cross_entropy(tf.ones_like(fake), fake), rtol=1e-5)


def test_shards_average_over_the_global_batch():
    """Summing per-replica losses over 4 shards gives the one-device mean."""
    real = tf.random.stateless_normal([16, 1], seed=[3, 3])
    fake = tf.random.stateless_normal([16, 1], seed=[4, 4])
    whole = losses.discriminator_loss(real, fake, 16)
    shards = sum(losses.discriminator_loss(real[i:i + 4], fake[i:i + 4], 16)
                 for i in range(0, 16, 4))
    np.testing.assert_allclose(shards, whole, rtol=1e-6)
    # Averaging over each replica's own batch (the classic mistake) sums to ~4x the mean.
    mistaken = sum(losses.discriminator_loss(real[i:i + 4], fake[i:i + 4], 4)
                   for i in range(0, 16, 4))
    np.testing.assert_allclose(mistaken, 4 * whole, rtol=1e-6)
    assert losses.generator_loss(fake, 16).dtype == tf.float32
    assert losses.generator_loss(tf.cast(fake, tf.bfloat16), 16).dtype == tf.float32


def test_class_loss_is_cross_entropy_over_the_global_batch():
    """--class_loss: softmax cross-entropy of every class's logit, each replica's share
    divided by the global batch (here 8: two replicas of 4)."""
    logits = tf.constant([[2.0, 0.0, -1.0], [0.0, 0.0, 0.0], [1.0, 3.0, 0.5],
                          [-2.0, 1.0, 4.0]])
    labels = tf.constant([0, 2, 1, 0])
    expected = 0.0
    for row, label in zip(logits.numpy(), labels.numpy()):
        expected -= row[label] - math.log(np.exp(row).sum())
    np.testing.assert_allclose(losses.class_loss(logits, labels, 8), expected / 8,
                               rtol=1e-6)
