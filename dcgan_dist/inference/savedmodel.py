"""SavedModels for serving: the generator, and the discriminator as a detector.

    generator/  serving_default: noise float32 [N, 100] -> {"images": uint8 [N,H,W,C]}
                from_seeds:      seeds int64 [N]        -> {"images": ..., "noise": ...}
                a conditional run's takes each image's class too, label int32 [N]
                (0 .. classes-1, in the order of export.json's class_names):
                serving_default: noise, label; from_seeds: seeds, label
    detector/   serving_default: images uint8 [N,H,W,C]
                                 -> {"probability_real": float32 [N], "logit": float32 [N]}
                export.json: {"image_shape": [H, W, C], ...}, which detect reads;
                a trained detector's (forensics) adds its temperature T, applied in
                probability_real = sigmoid(logit / T), and its operating point
                (evaluation/calibration.py); a discriminator's T is 1

[H, W, C] is the run's image shape: [28, 28, 1] for the article's networks.

Both load with `tf.saved_model.load` alone (no dcgan_dist, no Keras needed) and compute
exactly what the checkpoint's networks compute in inference mode: the seed signature
draws `sampling.noise_for_seeds`' noise, the detector scales as training did.

A SavedModel is a program, not data: `detector_logits` (detect --detector) runs the
graph in its folder, which can read and write files with the user's rights; load only
your own exports or ones from people you trust.
"""

import os

import tensorflow as tf

from dcgan_dist import files, models
from dcgan_dist import workdir as layout
from dcgan_dist.errors import DataError
from dcgan_dist.evaluation import calibration
from dcgan_dist.inference import detection, sampling

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
    """probability_real: sigmoid(logit / temperature), the calibrated probability of a
    trained detector (temperature 1 for a discriminator: its own sigmoid); logit: the
    raw logit, whatever the temperature."""

    def __init__(self, discriminator, temperature=1.0):
        super().__init__(name="dcgan_detector")
        self.discriminator = discriminator
        self.temperature = float(temperature)  # a constant of the graph, not a variable

    def detect(self, images):
        logits = detection.detector_logits(self.discriminator, images)
        return {"probability_real": tf.sigmoid(logits / self.temperature),
                "logit": logits}


class ConditionalGeneratorModule(tf.Module):
    """A conditional generator's signatures: those of GeneratorModule, and the class."""

    def __init__(self, generator):
        super().__init__(name="dcgan_conditional_generator")
        self.generator = generator

    @tf.function(input_signature=[
        tf.TensorSpec([None, models.NOISE_DIM], tf.float32, name="noise"),
        tf.TensorSpec([None], tf.int32, name="label")])
    def generate(self, noise, label):
        images = self.generator([noise, label], training=False)
        return {"images": sampling.images_to_uint8(images)}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.int64, name="seeds"),
                                  tf.TensorSpec([None], tf.int32, name="label")])
    def from_seeds(self, seeds, label):
        noise = sampling.noise_for_seeds(seeds)
        return {"images": self.generate(noise, label)["images"], "noise": noise}


def export_generator(generator, path):
    module = (ConditionalGeneratorModule(generator) if models.class_count(generator)
              else GeneratorModule(generator))
    tf.saved_model.save(module, path, signatures={
        "serving_default": module.generate, "from_seeds": module.from_seeds})
    return path


def export_detector(discriminator, path, record=None,
                    calibrated=calibration.Calibration()):
    """Saves the detector SavedModel in `path`, then PATH/export.json: the image shape
    it takes (what `detect --detector=PATH` reads before loading it; loaders ignore the
    file), `record`'s entries and `calibrated`'s (calibration.record_fields: a trained
    detector's temperature, which probability_real applies, and its operating point; none
    for a discriminator's T = 1). Inside the folder, so a copy of it keeps its shape;
    written last and whole, so a folder without it is not a finished export."""
    module = DetectorModule(discriminator, calibrated.temperature)
    inputs = discriminator.input_shape  # a conditional one's: [images, labels]
    shape = [int(d) for d in (inputs[0] if models.class_count(discriminator)
                              else inputs)[1:]]
    # The signature takes the discriminator's own image shape.
    detect = tf.function(module.detect, input_signature=[tf.TensorSpec(
        [None, *shape], tf.uint8, name="images")])
    tf.saved_model.save(module, path, signatures={"serving_default": detect})
    files.write_json(os.path.join(path, layout.EXPORT_RECORD),
                     {**(record or {}), **calibration.record_fields(calibrated),
                      "image_shape": shape})
    return path


def detector_logits(folder, images):
    """float32 [N] logits of the uint8 `images` by the detector SavedModel in `folder`,
    `detection.BATCH_SIZE` images per call (as a checkpoint's discriminator scores them):
    memory holds one batch's activations, however many images there are. Raises
    DataError when `folder` is not a detector of these images."""
    try:
        detect = tf.saved_model.load(folder).signatures["serving_default"]
        return detection.in_batches(
            lambda batch: detect(images=tf.constant(batch))["logit"].numpy(), images)
    except (KeyError, ValueError, TypeError, OSError, tf.errors.OpError) as e:
        raise DataError(f"--detector={folder} is not a detector that "
                        f"dcgan_dist.export wrote ({type(e).__name__}).") from None
