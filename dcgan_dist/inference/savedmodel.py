"""SavedModels for serving: the generator, and the discriminator as a detector.

    generator/  serving_default: noise float32 [N, 100] -> {"images": uint8 [N,H,W,C]}
                from_seeds:      seeds int64 [N]        -> {"images": ..., "noise": ...}
    detector/   serving_default: images uint8 [N,H,W,C]
                                 -> {"probability_real": float32 [N], "logit": float32 [N]}

[H, W, C] is the run's image shape: [28, 28, 1] for the article's networks.

Both load with `tf.saved_model.load` alone (no dcgan_dist, no Keras needed) and compute
exactly what the checkpoint's networks compute in inference mode: the seed signature
draws `sampling.noise_for_seeds`' noise, the detector scales as training did.
"""

import tensorflow as tf

from dcgan_dist import models
from dcgan_dist.serving import detection, sampling

GENERATOR_FOLDER = "generator"
DETECTOR_FOLDER = "detector"


class GeneratorModule(tf.Module):
    def __init__(self, generator):
        super().__init__(name="dcgan_generator")
        self.generator = generator

    @tf.function(input_signature=[tf.TensorSpec([None, models.NOISE_DIM], tf.float32,
                                                name="noise")])
    def generate(self, noise):
        images = self.generator(noise, training=False)
        return {"images": sampling.images_to_uint8(images)}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.int64, name="seeds")])
    def from_seeds(self, seeds):
        noise = sampling.noise_for_seeds(seeds)
        return {"images": self.generate(noise)["images"], "noise": noise}


class DetectorModule(tf.Module):
    def __init__(self, discriminator):
        super().__init__(name="dcgan_detector")
        self.discriminator = discriminator

    def detect(self, images):
        logits = detection.detector_logits(self.discriminator, images)
        return {"probability_real": tf.sigmoid(logits), "logit": logits}


def export_generator(generator, path):
    module = GeneratorModule(generator)
    tf.saved_model.save(module, path, signatures={
        "serving_default": module.generate, "from_seeds": module.from_seeds})
    return path


def export_detector(discriminator, path):
    module = DetectorModule(discriminator)
    # The signature takes the discriminator's own image shape.
    detect = tf.function(module.detect, input_signature=[tf.TensorSpec(
        [None, *discriminator.input_shape[1:]], tf.uint8, name="images")])
    tf.saved_model.save(module, path, signatures={"serving_default": detect})
    return path
