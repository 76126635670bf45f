"""Score images with a trained discriminator: the probability that each one is real.

With a training run's discriminator (the latest checkpoint, or --checkpoint):
    python -m dcgan_dist.detect --workdir=runs/dcgan digit.png samples.npz
With an exported detector (python -m dcgan_dist.export):
    python -m dcgan_dist.detect --detector=runs/dcgan/export/detector digit.png

Takes image files (PNG, JPEG, ...) of the run's size, 28x28 for the article's networks
(colour is turned grey for a grey run, grey copied to R, G and B for a colour one), and
.npz files of uint8 images [N, H, W(, C)] (as dcgan_dist.generate writes). Prints one
line per image: its name (PATH, or PATH[i] inside an .npz), a tab, the probability.

Exit statuses: dcgan_dist/errors.py (3: an unusable image file, or a missing or damaged
checkpoint or detector).
"""

import json
import os

from absl import flags

from dcgan_dist import cli
from dcgan_dist.errors import ConfigError, DataError

FLAGS = flags.FLAGS
cli.define_checkpoint_flags(workdir_required=False)
flags.DEFINE_string("detector", None, "An exported detector SavedModel, instead of "
                    "--workdir.")


def _exported_logits(folder, images):
    import tensorflow as tf
    if not os.path.isfile(os.path.join(folder, "saved_model.pb")):
        raise DataError(f"--detector={folder} is not a SavedModel folder; pass "
                        "EXPORT_DIR/detector as dcgan_dist.export wrote it.")
    try:
        detect = tf.saved_model.load(folder).signatures["serving_default"]
        return detect(images=tf.constant(images))["logit"].numpy()
    except (KeyError, ValueError, TypeError, OSError, tf.errors.OpError) as e:
        raise DataError(f"--detector={folder} is not a detector that "
                        f"dcgan_dist.export wrote ({type(e).__name__}).") from None


def _checkpoint_logits(path, images):
    from dcgan_dist.serving import detection, runs
    _, discriminator = runs.networks_of(path)
    runs.restore(path, discriminator=discriminator)
    return detection.score_images(discriminator, images)


def _exported_shape(folder):
    """The image shape export.json records, in the detector's folder (forensics) or
    beside it (dcgan_dist.export); 28x28x1 for an export from before shapes were
    recorded."""
    from dcgan_dist import shapes
    from dcgan_dist import workdir as layout
    for path in (os.path.join(folder, layout.EXPORT_RECORD),
                 os.path.join(folder, os.pardir, layout.EXPORT_RECORD)):
        try:
            with open(path) as f:
                return tuple(json.load(f)["image_shape"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return shapes.DEFAULT_SHAPE


def detect(paths):
    from dcgan_dist.data import image_files
    from dcgan_dist.serving import runs
    if bool(FLAGS.workdir) == bool(FLAGS.detector):
        raise ConfigError("pass either --workdir (a training run) or --detector (an "
                          "exported detector), not both or neither.")
    checkpoint = (runs.resolve_checkpoint(FLAGS.workdir, FLAGS.checkpoint)
                  if FLAGS.workdir else None)
    shape = runs.image_shape(checkpoint) if checkpoint else _exported_shape(FLAGS.detector)
    names, images = image_files.read_images(paths, shape)
    # TensorFlow: only once the inputs are known good.
    from dcgan_dist.serving import detection
    logits = (_checkpoint_logits(checkpoint, images) if checkpoint
              else _exported_logits(FLAGS.detector, images))
    for name, probability in zip(names, detection.probability_real(logits)):
        print(f"{name}\t{probability:.6f}")


if __name__ == "__main__":
    cli.run(detect, positional=True)
