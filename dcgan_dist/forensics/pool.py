"""A pool of generators: the checkpoints of training workdirs, and their samples.

A pool entry is written `WORKDIR[@SELECTOR][#raw|#averaged]`:
- SELECTOR picks checkpoints by their order in the workdir: `all` (the default),
  `latest`, `even` or `odd` (2nd, 4th, ... or 1st, 3rd, ...: train on one half of a
  run's checkpoints and test on the other), or steps joined by `+` (`1170+2340`);
- `#raw` takes the raw generator, `#averaged` the averaged one (an error if the run kept
  none); by default, what `dcgan_dist.generate` shows (the averaged one when there is
  one).
An entry ending in `.npz` is a file of generated uint8 images [N, H, W, C] instead (or
[N, H, W] for grey), e.g. from another package's generator.

A pool has one image shape, its runs' (config.json's image_size and channels; 28x28x1
for the article's and for runs from before shapes were recorded): a pool, its held-out
sets and the detectors trained on it must agree (`image_shape`), and .npz files are
read at that shape (`check_files`); a pool of .npz files alone takes the real data's.

Samples are quantized to uint8 exactly as real images are stored (`sampling`), so no
detector can tell fakes by their dtype or range (TequilaGAN's caveat on MNIST).
"""

import dataclasses
import os

import numpy as np

from dcgan_dist import shapes
from dcgan_dist import workdir as layout
from dcgan_dist.data import image_files
from dcgan_dist.errors import ConfigError, DataError
from dcgan_dist.inference import runs


@dataclasses.dataclass(frozen=True)
class Generator:
    """One generator of a pool: a checkpoint and which of its generators, or a file."""

    path: str              # checkpoint path, or an .npz of images
    kind: str = "shown"    # "raw", "averaged" or "shown" (averaged if kept, else raw)

    @property
    def name(self):
        return self.path if self.kind == "shown" else f"{self.path}#{self.kind}"

    @property
    def is_file(self):
        return self.path.endswith(".npz")


def _select(workdir, selector):
    available = layout.list_checkpoints(workdir)
    if not available:  # resolve_checkpoint says it in one sentence
        layout.resolve_checkpoint(workdir)
    if selector in ("", "all"):
        chosen = available
    elif selector == "latest":  # the latest whole one, as training and every tool
        latest = layout.resolve_checkpoint(workdir)
        chosen = [(step, path) for step, path in available if path == latest]
    elif selector in ("even", "odd"):
        chosen = available[(1 if selector == "even" else 0)::2]
    else:
        try:
            steps = {int(step) for step in selector.split("+")}
        except ValueError:
            raise ConfigError(f"@{selector} is not a checkpoint selector; use all, latest, "
                              "even, odd or steps joined by +, e.g. @1170+2340.") from None
        chosen = [(step, path) for step, path in available if step in steps]
        missing = steps - {step for step, _ in chosen}
        if missing:
            raise DataError(f"{workdir} has no checkpoint of step "
                            f"{', '.join(map(str, sorted(missing)))}; it holds the steps "
                            f"{', '.join(str(s) for s, _ in available)}.")
    if not chosen:
        raise DataError(f"{workdir}@{selector} selects no checkpoint (it holds "
                        f"{len(available)}); choose another selector.")
    return [path for _, path in chosen]


def parse(entries, flag="--workdirs"):
    """[Generator] of pool entries (see the module docstring)."""
    if not entries:
        raise ConfigError(f"{flag} names no generator; pass training workdirs, e.g. "
                          f"{flag}=runs/dcgan@even#raw.")
    generators = []
    for entry in entries:
        spec, _, kind = entry.partition("#")
        if kind not in ("", "raw", "averaged"):
            raise ConfigError(f"{entry}: #{kind} is unknown; use #raw or #averaged.")
        if spec.endswith(".npz"):  # read by check_files once the pool's shape is known
            generators.append(Generator(spec))
            continue
        workdir, _, selector = spec.partition("@")
        if not os.path.isdir(workdir):
            raise ConfigError(f"{flag}: {workdir} is not a folder; pass the --workdir of "
                              "a training run.")
        generators += [Generator(path, kind or "shown") for path in _select(workdir, selector)]
    return generators


def datasets_of(generators):
    """The datasets the pool's runs trained on (their records: workdir.record_data)."""
    return {layout.record_data(layout.checkpoint_record(g.path))[0]
            for g in generators if not g.is_file}


def data_dirs_of(generators):
    """The --data_dir folders the pool's runs trained on (None: a tfds dataset)."""
    return {layout.record_data(layout.checkpoint_record(g.path))[1]
            for g in generators if not g.is_file}


def image_shape(generators, others=()):
    """(H, W, C) of the images the pool's runs make, or None for a pool of .npz files
    alone. others: (name, shape) pairs that must agree too (trained detectors).

    Raises DataError naming two runs (or detectors) whose shapes differ.
    """
    first = {}  # shape -> the first workdir (or other) of that shape
    for generator in generators:
        if not generator.is_file:
            first.setdefault(tuple(runs.image_shape(generator.path)),
                             layout.of_checkpoint(generator.path))
    for name, shape in others:
        first.setdefault(tuple(shape), name)
    if len(first) > 1:
        (shape_a, a), (shape_b, b) = list(first.items())[:2]
        raise DataError(f"{a} makes {shapes.name(shape_a)} images but {b} makes "
                        f"{shapes.name(shape_b)}; a pool, its held-out sets and the "
                        "detectors trained on it share one image shape, so pass runs of "
                        "one shape.")
    return next(iter(first), None)


def check_files(generators, shape):
    """Refuses an .npz entry whose images are not of `shape` (before any sampling)."""
    for generator in generators:
        if generator.is_file:
            image_files.read_npz(generator.path, shape)


def load(generator):
    """(generator network, discriminator of the same checkpoint or None)."""
    if generator.is_file:
        return None, None
    if generator.kind == "averaged" and not runs.has_averaged_generator(generator.path):
        raise DataError(f"{generator.path} holds no averaged generator (its run did not "
                        "average); drop #averaged.")
    network, discriminator, _ = runs.load_networks(generator.path,
                                                      raw=generator.kind == "raw")
    return network, discriminator


def samples(generator, count, first_seed, network=None, shape=shapes.DEFAULT_SHAPE):
    """uint8 [count, H, W, C]: the images of seeds first_seed.. (of the network's shape),
    or a file's first `count` images (read at `shape`, the pool's)."""
    from dcgan_dist.inference import sampling
    if generator.is_file:
        images = image_files.read_npz(generator.path, shape)
        if len(images) < count:
            raise DataError(f"{generator.path} holds {len(images)} images; {count} are "
                            "needed (lower --samples_per_generator).")
        return images[:count]
    if network is None:
        network, _ = load(generator)
    return sampling.generate_images(network, sampling.noise_for_seeds(
        np.arange(first_seed, first_seed + count)))
