"""The trained networks of a run, restored for inference (evaluate, generate, export,
detect, forensics). Which checkpoint is the latest, and what the run's record says, are
decided in dcgan_dist/workdir.py.

Restoring needs TensorFlow and imports it when called.
"""

from dcgan_dist import shapes
from dcgan_dist import workdir as layout
from dcgan_dist.errors import DataError

def generator_architecture(path):
    """The generator architecture of checkpoint `path`, as its run's record says (the
    article's, "dcgan", for a checkpoint outside a workdir or from before the choice was
    recorded)."""
    return layout.checkpoint_record(path).get("generator", "dcgan")


def image_shape(path):
    """(H, W, C) of the images of checkpoint `path`'s networks (workdir.record_shape)."""
    return layout.record_shape(layout.checkpoint_record(path))


def class_names(path):
    """A conditional run's class names, in label order, from checkpoint `path`'s record;
    None for an unconditional run (workdir.record_classes)."""
    return layout.record_classes(layout.checkpoint_record(path))


def make_networks(architecture="dcgan", shape=shapes.DEFAULT_SHAPE, num_classes=0,
                  conditioning="batchnorm"):
    """A float32 generator (of `architecture`) and discriminator of images of `shape`,
    to restore a checkpoint into; with num_classes, the conditional ones.

    Batch norm is not synchronized here, whatever training used: the synchronized and
    plain layers hold the same variables under the same checkpoint keys (tested), and
    inference uses the moving statistics only. Mixed-precision runs keep float32
    variables, so float32 networks restore them exactly.
    """
    from dcgan_dist import models
    classes = ({"num_classes": num_classes, "conditioning": conditioning}
               if num_classes else {})
    return (models.make_generator(architecture, sync_batch_norm=False, dtype="float32",
                                  image_shape=shape, **classes),
            models.make_discriminator_model(dtype="float32", image_shape=shape,
                                            num_classes=num_classes))


def networks_of(path):
    """make_networks for checkpoint `path`: its generator architecture, image shape and
    (a conditional run's) classes and conditioning."""
    record = layout.checkpoint_record(path)
    return make_networks(generator_architecture(path), image_shape(path),
                         len(layout.record_classes(record) or ()),
                         record.get("conditioning", "batchnorm"))


def has_averaged_generator(path):
    """Whether checkpoint `path` holds an averaged generator (a run with averaging on)."""
    import tensorflow as tf
    try:
        names = [name for name, _ in tf.train.list_variables(path)]
    except (tf.errors.OpError, ValueError):
        return False  # restore() below says what is wrong with it
    return any(name.startswith(layout.AVERAGED_KEY + "/") for name in names)


def restore(path, generator=None, discriminator=None, raw=False):
    """Restores the given networks from checkpoint `path`; returns its global step.

    `generator` receives the averaged generator when the checkpoint holds one, unless
    `raw`: users see the average, and the raw generator stays reachable.
    Raises DataError when the checkpoint is damaged or does not hold these networks.
    """
    import tensorflow as tf

    error = layout.checkpoint_read_error(path)
    if error:
        raise DataError(f"checkpoint {path} is damaged ({error}); pass another "
                        "--checkpoint.")
    step = tf.Variable(0, dtype=tf.int64)
    generator_key = ("generator" if raw or generator is None
                     or not has_averaged_generator(path) else layout.AVERAGED_KEY)
    networks = {k: v for k, v in ((generator_key, generator),
                                  ("discriminator", discriminator)) if v is not None}
    try:
        # expect_partial: the optimizers and RNG state are not needed for inference.
        tf.train.Checkpoint(step=step, **networks).restore(path).expect_partial() \
            .assert_existing_objects_matched()
    except (AssertionError, ValueError, tf.errors.OpError) as e:
        raise DataError(f"checkpoint {path} does not hold this package's networks "
                        f"({str(e).splitlines()[0][:200]}); pass a checkpoint that "
                        "dcgan_dist.train wrote.") from None
    return int(step.numpy())


def load_networks(path, raw=False):
    """(generator, discriminator, step) restored from checkpoint `path` (the generator
    averaged, when the run averaged it and not `raw`)."""
    generator, discriminator = networks_of(path)
    step = restore(path, generator, discriminator, raw)
    return generator, discriminator, step
