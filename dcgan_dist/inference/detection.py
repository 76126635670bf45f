"""The discriminator as a detector of generated images.

Trained to tell the training images from the generator's, the discriminator gives every
image a logit; its sigmoid is the probability that the image is real. Both the
checkpointed discriminator and the exported detector (see `savedmodel.py`) score uint8 images
through `detector_logits`, so they agree on every image.

A conditional discriminator judges an image together with a class, and an image to be
detected comes without one (a fake has none that is true). Its logit is the largest
over the classes: the image as the class that makes it look most real. A real image
scores at least its true class's logit; a fake must look real as some class.
"""

import numpy as np
import tensorflow as tf

from dcgan_dist import models
from dcgan_dist.data import pipeline
from dcgan_dist.evaluation import calibration


def detector_logits(discriminator, images):
    """float32 [N] logits for uint8 images [N, H, W, C] (inference mode, no dropout);
    a conditional discriminator's largest over the classes."""
    scaled = pipeline.scale_images(images)
    if models.class_count(discriminator):
        logits = tf.reduce_max(models.class_logits(discriminator, scaled), axis=1)
    else:
        logits = discriminator(scaled, training=False)
    return tf.cast(tf.reshape(logits, [-1]), tf.float32)


BATCH_SIZE = 1000  # images scored at once: memory holds one batch's activations


def in_batches(score, images, batch_size=None):
    """float32 [N]: score(uint8 batch) -> logits, called on `batch_size` images at a
    time (BATCH_SIZE by default), so a large file never meets the network in one call."""
    batch_size = batch_size or BATCH_SIZE
    out = [np.asarray(score(images[i:i + batch_size]), np.float32).reshape([-1])
           for i in range(0, len(images), batch_size)]
    return np.concatenate(out) if out else np.zeros([0], np.float32)


def score_images(discriminator, images, batch_size=None):
    """float32 [N] logits of the uint8 `images`, in eager batches (nothing is traced)."""
    return in_batches(lambda batch: detector_logits(discriminator, batch).numpy(), images,
                      batch_size)


def probability_real(logits, temperature=1.0):
    """sigmoid(logits / temperature), in float64 (`calibration.probability_real`)."""
    return calibration.probability_real(logits, temperature)
