"""Score images with a trained discriminator: the probability that each one is real.

With a training run's discriminator (the latest checkpoint, or --checkpoint):
    python -m dcgan_dist.detect --workdir=runs/dcgan digit.png samples.npz
With an exported detector (python -m dcgan_dist.export):
    python -m dcgan_dist.detect --detector=runs/dcgan/export/detector digit.png

Takes image files (PNG, JPEG, ...) of the run's size, 28x28 for the article's networks
(colour is turned grey for a grey run, grey copied to R, G and B for a colour one), and
.npz files of uint8 images [N, H, W(, C)] (as dcgan_dist.generate writes; nothing
pickled is loaded). Prints one line per image: its name (PATH, or PATH[i] inside an
.npz), a tab, the probability. Images are scored 1000 at a time, however many a file
holds. An exported detector's image shape is read from its folder's export.json.

A detector that `forensics train --export_dir` exported gives its calibrated
probability (the temperature in its export.json) and, after another tab, `generated` or
`real`: its call at the operating point export.json records (at most 1% of its
validation's real images called generated), e.g. "a.png<TAB>0.031245<TAB>generated".
Other detectors and --workdir print two columns, as before.

A detector (SavedModel) or checkpoint from someone else is code, not data: --detector
runs the SavedModel's graph, which can read and write files with your rights, and
--workdir has TensorFlow parse the checkpoint's files; pass only your own exports and
runs, or ones from people you trust.

Exit statuses: dcgan_dist/errors.py (3: an unusable image file, or a missing or damaged
checkpoint or detector, or a detector that records no image shape or a bad
calibration).
"""

import json
import math
import os

from absl import flags

from dcgan_dist import cli
from dcgan_dist.errors import ConfigError, DataError
from dcgan_dist.evaluation import calibration  # numpy alone: no TensorFlow yet

FLAGS = flags.FLAGS
cli.define_checkpoint_flags(workdir_required=False)
flags.DEFINE_string("detector", None, "An exported detector SavedModel, instead of "
                    "--workdir.")


def _checkpoint_logits(path, images):
    from dcgan_dist.inference import detection, runs
    _, discriminator = runs.networks_of(path)
    runs.restore(path, discriminator=discriminator)
    return detection.score_images(discriminator, images)


def _read_record(path):
    """The JSON object at `path`; None when there is no file. DataError when it is
    there but unreadable."""
    try:
        with open(path) as f:
            record = json.load(f)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        raise DataError(f"{path} is unreadable ({type(e).__name__}); export the detector "
                        "again.") from None
    if not isinstance(record, dict):
        raise DataError(f"{path} is not an export record (a JSON object); export the "
                        "detector again.")
    return record


def _shape_of(record, path):
    shape = record["image_shape"]
    if not (isinstance(shape, list) and len(shape) == 3
            and all(isinstance(d, int) and d > 0 for d in shape)):
        raise DataError(f"{path} records the image shape {shape!r}, not [H, W, C]; export "
                        "the detector again.")
    return tuple(shape)


def _number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and (
        math.isfinite(value))


def _calibration_of(record, path):
    """The Calibration in a detector's own export.json (T = 1 and no operating point
    where it records none)."""
    temperature = record.get(calibration.TEMPERATURE, 1.0)
    threshold = record.get(calibration.THRESHOLD_LOGIT)
    if not (_number(temperature) and temperature > 0) or not (
            threshold is None or _number(threshold)):
        raise DataError(f"{path} records the temperature {temperature!r} and the "
                        f"threshold {threshold!r}, not a positive number and a number; "
                        "export the detector again.")
    return calibration.Calibration(float(temperature), threshold)


def _exported(folder):
    """(image shape, Calibration) of the detector in `folder`: its own export.json (what
    dcgan_dist.export and forensics write), else the export.json of the export folder
    around it (exports from before the detector held its own, uncalibrated). Nothing is
    assumed: a detector with no record is refused."""
    from dcgan_dist import shapes
    from dcgan_dist import workdir as layout
    if not os.path.isfile(os.path.join(folder, "saved_model.pb")):
        raise DataError(f"--detector={folder} is not a SavedModel folder; pass "
                        "EXPORT_DIR/detector as dcgan_dist.export wrote it.")
    own = os.path.join(folder, layout.EXPORT_RECORD)
    record = _read_record(own)
    if record is not None and "image_shape" in record:
        return _shape_of(record, own), _calibration_of(record, own)
    around = os.path.join(os.path.dirname(os.path.abspath(folder)), layout.EXPORT_RECORD)
    beside = _read_record(around)
    if beside is not None and "image_shape" in beside:
        return _shape_of(beside, around), calibration.Calibration()
    if beside is not None and "step" in beside:
        # dcgan_dist.export's record from before shapes were recorded (8fe4fcd..8e0c9ca):
        # the networks were then 28x28x1 only.
        return shapes.DEFAULT_SHAPE, calibration.Calibration()
    raise DataError(f"--detector={folder} records no image shape ({layout.EXPORT_RECORD} "
                    "is missing in it and beside it); pass the detector folder as "
                    "dcgan_dist.export or `forensics train --export_dir` wrote it, or "
                    "export it again.")


def detect(paths):
    from dcgan_dist import workdir as layout
    from dcgan_dist.data import image_files
    from dcgan_dist.inference import runs
    if bool(FLAGS.workdir) == bool(FLAGS.detector):
        raise ConfigError("pass either --workdir (a training run) or --detector (an "
                          "exported detector), not both or neither.")
    if FLAGS.workdir:  # a discriminator: its own sigmoid, no operating point
        shape = runs.image_shape(layout.resolve_checkpoint(FLAGS.workdir, FLAGS.checkpoint,
                                                           whole=False))
        fitted = calibration.Calibration()
    else:
        shape, fitted = _exported(FLAGS.detector)
    names, images = image_files.read_images(paths, shape)
    # TensorFlow: only once the inputs are known good.
    if FLAGS.workdir:
        logits = _checkpoint_logits(layout.resolve_checkpoint(FLAGS.workdir,
                                                              FLAGS.checkpoint), images)
    else:
        from dcgan_dist.inference import savedmodel
        logits = savedmodel.detector_logits(FLAGS.detector, images)
    _print(names, logits, fitted)


def _print(names, logits, fitted):
    """One line per image: name, calibrated probability of real and, with an operating
    point, the call at it (below it: generated, as the validation's FPR was counted)."""
    probabilities = calibration.probability_real(logits, fitted.temperature)
    for name, logit, probability in zip(names, logits, probabilities):
        line = f"{name}\t{probability:.6f}"
        if fitted.threshold_logit is not None:
            line += "\tgenerated" if logit < fitted.threshold_logit else "\treal"
        print(line)


if __name__ == "__main__":
    cli.run(detect, positional=True)
