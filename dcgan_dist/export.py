"""Export a training run's networks as SavedModels: the generator (noise or seeds to
uint8 images) and the discriminator as a detector (uint8 images to the probability of
being real). See `inference/savedmodel.py` for the signatures.

    python -m dcgan_dist.export --workdir=runs/dcgan --export_dir=runs/dcgan/export
    python -m dcgan_dist.detect --detector=runs/dcgan/export/detector image.png

Writes EXPORT_DIR/generator, EXPORT_DIR/detector and EXPORT_DIR/export.json (the step
and checkpoint they came from, the image shape and, for a conditional run, the class
names its generator's `label` indexes), each record written whole. The
detector's folder holds its own export.json too, so a copy of the folder alone keeps
the shape `detect` reads. Exit statuses: dcgan_dist/errors.py.
"""

import os

from absl import flags

from dcgan_dist import cli, files
from dcgan_dist.errors import ConfigError

FLAGS = flags.FLAGS
cli.define_checkpoint_flags()
flags.DEFINE_string("export_dir", None, "Folder for the SavedModels.", required=True)


def export():
    from dcgan_dist import workdir as layout
    from dcgan_dist.inference import runs
    layout.resolve_checkpoint(FLAGS.workdir, FLAGS.checkpoint, whole=False)  # no TF yet
    if os.path.exists(os.path.join(FLAGS.export_dir, layout.EXPORT_RECORD)):
        raise ConfigError(f"--export_dir={FLAGS.export_dir} already holds an export; "
                          "name a new folder.")
    path = layout.resolve_checkpoint(FLAGS.workdir, FLAGS.checkpoint)
    import tensorflow as tf

    from dcgan_dist.inference import savedmodel
    generator, discriminator, step = runs.load_networks(path, FLAGS.raw_generator)
    record = {"step": step, "checkpoint": path}
    classes = runs.class_names(path)
    if classes is not None:  # what the generator's label means, in label order
        record["class_names"] = classes
    try:
        savedmodel.export_generator(generator, os.path.join(FLAGS.export_dir,
                                                         savedmodel.GENERATOR_FOLDER))
        # DETECTOR/export.json (the shape detect reads), then EXPORT_DIR/export.json:
        # last, so an export_dir holding it holds a whole export.
        savedmodel.export_detector(discriminator, os.path.join(
            FLAGS.export_dir, savedmodel.DETECTOR_FOLDER), record)
        files.write_json(os.path.join(FLAGS.export_dir, layout.EXPORT_RECORD),
                         {**record, "image_shape": list(runs.image_shape(path))})
    except (OSError, tf.errors.OpError) as e:
        reason = str(e).splitlines()[0][:200]
        raise ConfigError(f"--export_dir={FLAGS.export_dir} cannot be written ({reason}); "
                          "choose a folder you can write to.") from None
    print(f"export | step: {step} | checkpoint: {path} | generator and detector in "
          f"{FLAGS.export_dir}", flush=True)


if __name__ == "__main__":
    cli.run(export)
