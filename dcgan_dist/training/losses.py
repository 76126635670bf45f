"""The article's losses, per example and averaged over the global batch.

The article averages binary cross-entropy over its (single-device) batch. Under a
tf.distribute strategy each replica sees only part of the batch and the optimizer *sums*
the replicas' gradients, so each replica must divide its per-example losses by the global
batch size, not its own: then the summed gradient equals the one-device gradient whatever
the number of replicas.
"""

import tensorflow as tf


def _per_example_bce(labels_value, logits):
    logits = tf.cast(logits, tf.float32)
    labels = tf.fill(tf.shape(logits), labels_value)
    per_logit = tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=logits)
    return tf.reduce_mean(tf.reshape(per_logit, [tf.shape(per_logit)[0], -1]), axis=1)


def generator_loss(fake_logits, global_batch_size):
    """Non-saturating generator loss: BCE of D(G(z)) against "real" (label 1)."""
    return tf.nn.compute_average_loss(
        _per_example_bce(1.0, fake_logits), global_batch_size=global_batch_size)


def discriminator_loss(real_logits, fake_logits, global_batch_size):
    """BCE of D(x) against 1 plus BCE of D(G(z)) against 0, as in the article."""
    real = tf.nn.compute_average_loss(
        _per_example_bce(1.0, real_logits), global_batch_size=global_batch_size)
    fake = tf.nn.compute_average_loss(
        _per_example_bce(0.0, fake_logits), global_batch_size=global_batch_size)
    return real + fake


def class_loss(class_logits, labels, global_batch_size):
    """A conditional run's classification loss (--class_loss): softmax cross-entropy of
    the discriminator's logit of every class [N, classes] against the class `labels`."""
    per_example = tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=labels, logits=tf.cast(class_logits, tf.float32))
    return tf.nn.compute_average_loss(per_example, global_batch_size=global_batch_size)
