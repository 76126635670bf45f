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
    path = layout.resolve_checkpoint(FLAGS.workdir, FLAGS.checkpoint)
    import numpy as np

    from dcgan_dist import images
    from dcgan_dist.inference import sampling
    generator, _ = runs.networks_of(path)
    step = runs.restore(path, generator=generator, raw=FLAGS.raw_generator)
    written = []
    if FLAGS.npz or FLAGS.grid:
        seeds = np.arange(FLAGS.num_samples, dtype=np.int64) + FLAGS.seed
        samples = sampling.generate_images(generator, sampling.noise_for_seeds(seeds))
        if FLAGS.npz:
            buffer = io.BytesIO()
            # Grey images as [N, H, W] (as before colour), colour as [N, H, W, 3].
            np.savez(buffer, seeds=seeds, step=step,
                     images=samples[..., 0] if samples.shape[-1] == 1 else samples)
            _write(FLAGS.npz, buffer.getvalue())
            written.append(FLAGS.npz)
        if FLAGS.grid:
            _write_png(FLAGS.grid, images.tile(samples, FLAGS.columns))
            written.append(FLAGS.grid)
    if pair:
        strip = sampling.generate_images(generator, sampling.slerp_noise(*pair, FLAGS.steps))
        _write_png(FLAGS.strip, images.tile(strip, columns=FLAGS.steps))
        written.append(FLAGS.strip)
    print(f"generate | step: {step} | checkpoint: {path} | wrote "
          + ", ".join(os.path.abspath(w) for w in written), flush=True)


if __name__ == "__main__":
    cli.run(generate)
