"""Draw samples from a training run's checkpoint.

64 samples as an .npz of uint8 images and as a PNG grid:
    python -m dcgan_dist.generate --workdir=runs/dcgan --num_samples=64 \
        --npz=samples.npz --grid=samples.png
A walk through the latent space from seed 3 to seed 7, as a PNG strip:
    python -m dcgan_dist.generate --workdir=runs/dcgan --interpolate=3,7 --strip=walk.png

Image i is the image of seed --seed + i: the same seed gives the same image, whatever
--num_samples (and the exported generator's `from_seeds` signature agrees).
The .npz holds `images` (uint8 [N, H, W] for a grey run, e.g. [N, 28, 28], and
[N, H, W, 3] for a colour one), `seeds` (int64 [N]) and `step`.

A conditional run (train --conditional) draws --num_samples images of each class named
by --class (repeatable; a class name, else an index), of every class without it, class
after class; seed s gives each class its image of the same noise. The grid and the
strip have one row per class. The .npz adds `labels` (int32 [N]) and `class_names`:
    python -m dcgan_dist.generate --workdir=runs/cond --class=Shirt --class=7 \
        --num_samples=8 --grid=shirts_and_sneakers.png

Exit statuses: dcgan_dist/errors.py.
"""

import io
import os

from absl import flags

from dcgan_dist import cli
from dcgan_dist.errors import ConfigError

FLAGS = flags.FLAGS
cli.define_checkpoint_flags()
flags.DEFINE_integer("num_samples", 16, "Images to draw (for --npz and --grid).")
flags.DEFINE_integer("seed", 0, "Seed of the first image; image i has seed --seed + i.")
flags.DEFINE_string("npz", None, "Write the images here as an .npz.")
flags.DEFINE_string("grid", None, "Write the images here as a PNG grid.")
flags.DEFINE_integer("columns", 8, "Images per row of the grid.")
flags.DEFINE_list("interpolate", None, "Two seeds A,B: images along the latent path "
                  "from A's noise to B's, written to --strip.")
flags.DEFINE_integer("steps", 10, "Images in the --interpolate strip.")
flags.DEFINE_string("strip", None, "Write the --interpolate strip here as a PNG.")
flags.DEFINE_multi_string("class", None, "A conditional run's class to draw, by name or "
                          "index (repeatable): --num_samples images of each, a grid and "
                          "strip row each (default: every class)")


def _check_flags():
    """The two --interpolate seeds (None without), once every flag is known good."""
    if not (FLAGS.npz or FLAGS.grid or FLAGS.strip):
        raise ConfigError("nothing to write; pass --npz, --grid and/or --strip with "
                          "--interpolate.")
    if (FLAGS.npz or FLAGS.grid) and FLAGS.num_samples < 1:
        raise ConfigError(f"--num_samples={FLAGS.num_samples} must be at least 1.")
    if FLAGS.columns < 1 or FLAGS.steps < 2:
        raise ConfigError("--columns must be at least 1 and --steps at least 2.")
    if bool(FLAGS.strip) != bool(FLAGS.interpolate):
        raise ConfigError("--interpolate=A,B and --strip=PATH go together.")
    for name in ("grid", "strip"):
        path = getattr(FLAGS, name)
        if path and not path.lower().endswith(".png"):
            raise ConfigError(f"--{name}={path} must name a .png file.")
    if not FLAGS.interpolate:
        return None
    try:
        seeds = [int(s) for s in FLAGS.interpolate]
    except ValueError:
        seeds = []
    if len(seeds) != 2:
        raise ConfigError(f"--interpolate={','.join(FLAGS.interpolate)} must be two "
                          "integer seeds, e.g. --interpolate=3,7.")
    return seeds


def _classes(path):
    """(the class indexes to draw, the run's class names); (None, None) for an
    unconditional run. Reads the run's record only: no TensorFlow yet."""
    from dcgan_dist import workdir as layout
    wanted = getattr(FLAGS, "class") or []
    names = layout.record_classes(layout.checkpoint_record(path))
    if names is None:
        if wanted:
            raise ConfigError(f"--class={wanted[0]}: {FLAGS.workdir} was trained without "
                              "--conditional, so its generator takes no class; drop "
                              "--class.")
        return None, None
    indexes = []
    for value in wanted:
        if value in names:
            indexes.append(names.index(value))
        elif value.isdigit() and int(value) < len(names):
            indexes.append(int(value))
        else:
            listed = ", ".join(f"{k} {name}" for k, name in enumerate(names))
            raise ConfigError(f"--class={value} is not a class of {FLAGS.workdir}; pass a "
                              f"name or an index of its classes: {listed}.")
    return indexes or list(range(len(names))), names


def _write(path, data):
    """Writes bytes `data` to `path` whole (files.write_bytes)."""
    from dcgan_dist import files
    try:
        files.write_bytes(path, data)
    except OSError as e:
        raise ConfigError(f"{path} cannot be written ({e}); choose a folder you can "
                          "write to.") from None


def _write_png(path, picture):
    import imageio.v3 as iio
    _write(path, iio.imwrite("<bytes>", picture, extension=".png"))


def generate():
    from dcgan_dist import workdir as layout
    from dcgan_dist.inference import runs
    pair = _check_flags()
    classes, names = _classes(layout.resolve_checkpoint(FLAGS.workdir, FLAGS.checkpoint,
                                                         whole=False))
    path = layout.resolve_checkpoint(FLAGS.workdir, FLAGS.checkpoint)
    import numpy as np

    from dcgan_dist import images
    from dcgan_dist.inference import sampling
    generator, _ = runs.networks_of(path)
    step = runs.restore(path, generator=generator, raw=FLAGS.raw_generator)

    def draw(noise):
        """(uint8 images of `noise`, class after class on a conditional run, labels or
        None, images per row)."""
        if classes is None:
            return sampling.generate_images(generator, noise), None, None
        labels = np.repeat(np.asarray(classes, np.int32), len(noise))
        return (sampling.generate_images(generator, np.tile(noise, [len(classes), 1]),
                                         labels), labels, len(noise))

    written = []
    if FLAGS.npz or FLAGS.grid:
        seeds = np.arange(FLAGS.num_samples, dtype=np.int64) + FLAGS.seed
        samples, labels, per_row = draw(sampling.noise_for_seeds(seeds).numpy())
        if FLAGS.npz:
            buffer = io.BytesIO()
            extra = {} if labels is None else {"labels": labels,
                                               "class_names": np.asarray(names)}
            # Grey images as [N, H, W] (as before colour), colour as [N, H, W, 3].
            np.savez(buffer, seeds=np.tile(seeds, len(classes or [0])), step=step,
                     images=samples[..., 0] if samples.shape[-1] == 1 else samples,
                     **extra)
            _write(FLAGS.npz, buffer.getvalue())
            written.append(FLAGS.npz)
        if FLAGS.grid:
            _write_png(FLAGS.grid, images.tile(samples, per_row or FLAGS.columns))
            written.append(FLAGS.grid)
    if pair:
        strip, _, _ = draw(sampling.slerp_noise(*pair, FLAGS.steps))
        _write_png(FLAGS.strip, images.tile(strip, columns=FLAGS.steps))
        written.append(FLAGS.strip)
    shown = "" if classes is None else " | classes: " + ", ".join(names[k] for k in classes)
    print(f"generate | step: {step} | checkpoint: {path}{shown} | wrote "
          + ", ".join(os.path.abspath(w) for w in written), flush=True)


if __name__ == "__main__":
    cli.run(generate)
