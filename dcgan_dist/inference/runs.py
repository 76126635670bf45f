"""The trained networks of a workdir: finding its checkpoints and restoring the generator
and discriminator for inference (evaluate, generate, export, detect).

Finding a checkpoint needs no TensorFlow (the commands refuse a wrong --workdir or
--checkpoint before importing it); restoring does, and imports it when called.
"""

import glob
import os
import re

from dcgan_dist import shapes
from dcgan_dist import workdir as layout
from dcgan_dist.errors import ConfigError, DataError

_STEP = re.compile(r"-(\d+)\.index$")


def list_checkpoints(workdir):
    """[(step, checkpoint path)] of the checkpoints in `workdir`, oldest first.

    Damaged checkpoints that training moved to checkpoints/damaged/ are not listed.
    """
    found = []
    for index in glob.glob(os.path.join(glob.escape(layout.checkpoint_dir(workdir)),
                                        "*-*.index")):
        match = _STEP.search(index)
        if match:
            found.append((int(match.group(1)), index[:-len(".index")]))
    return sorted(found)


def resolve_checkpoint(workdir, name=None):
    """The checkpoint path of `name` in `workdir` (the latest when `name` is empty).

    `name` may be a path, a checkpoint file prefix in WORKDIR/checkpoints (ckpt-640) or a
    step (640). Raises ConfigError for a missing workdir, DataError for a missing
    checkpoint, each with a sentence that says what to pass instead.
    """
    if not os.path.isdir(workdir):
        raise ConfigError(f"--workdir={workdir} is not a folder; pass the --workdir that "
                          "training wrote.")
    available = list_checkpoints(workdir)
    if not available:
        raise DataError(f"{workdir} holds no checkpoint (no "
                        f"{os.path.join(layout.checkpoint_dir(workdir), 'ckpt-STEP.index')}); "
                        "train first or pass the --workdir that training wrote.")
    if not name:
        return available[-1][1]
    for step, path in available:
        if name in (path, str(step), os.path.basename(path)):
            return path
    if os.path.isfile(name + ".index"):
        return name
    steps = ", ".join(str(step) for step, _ in available)
    raise DataError(f"--checkpoint={name} is not a checkpoint of {workdir}; it holds the "
                    f"steps {steps} (pass one of them, or a checkpoint path).")


def generator_architecture(path):
    """The generator architecture of checkpoint `path`, as its workdir's config.json
    records it (the article's, "dcgan", for a checkpoint outside a workdir or from
    before the choice was recorded)."""
    return layout.read_config(layout.of_checkpoint(path)).get("generator", "dcgan")


def image_shape(path):
    """(H, W, C) of the images of checkpoint `path`'s networks, as its workdir's
    config.json records them (28x28x1, the article's, for a checkpoint outside a workdir
    or from before the shape was recorded)."""
    recorded = layout.read_config(layout.of_checkpoint(path))
    size = recorded.get("image_size") or shapes.DEFAULT_SHAPE[0]
    return (size, size, recorded.get("channels") or shapes.DEFAULT_SHAPE[-1])


def make_networks(architecture="dcgan", shape=shapes.DEFAULT_SHAPE):
    """A float32 generator (of `architecture`) and discriminator of images of `shape`,
    to restore a checkpoint into.

    Batch norm is not synchronized here, whatever training used: the synchronized and
    plain layers hold the same variables under the same checkpoint keys (tested), and
    inference uses the moving statistics only. Mixed-precision runs keep float32
    variables, so float32 networks restore them exactly.
    """
    from dcgan_dist import models
    return (models.make_generator(architecture, sync_batch_norm=False, dtype="float32",
                                  image_shape=shape),
            models.make_discriminator_model(dtype="float32", image_shape=shape))


def networks_of(path):
    """make_networks for checkpoint `path`: its generator architecture and image shape."""
    return make_networks(generator_architecture(path), image_shape(path))


AVERAGED_KEY = "generator_ema"  # the averaged generator's name in a checkpoint


def has_averaged_generator(path):
    """Whether checkpoint `path` holds an averaged generator (a run with averaging on)."""
    import tensorflow as tf
    try:
        names = [name for name, _ in tf.train.list_variables(path)]
    except (tf.errors.OpError, ValueError):
        return False  # restore() below says what is wrong with it
    return any(name.startswith(AVERAGED_KEY + "/") for name in names)


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
                     or not has_averaged_generator(path) else AVERAGED_KEY)
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
