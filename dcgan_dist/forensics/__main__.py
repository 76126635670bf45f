"""Train a detector of generated images, and measure it on generators it never saw.

Train on the even checkpoints of a run (raw generators), with augmentation, and export:
    python -m dcgan_dist.forensics train --workdirs=runs/dcgan@even#raw \
        --detector=cnn --augment=blur,jpeg,noise,resize --out_dir=runs/det/cnn \
        --export_dir=runs/det/cnn/export
Score it and the GANs' own discriminators on held-out sets (NAME=ENTRY|ENTRY...):
    python -m dcgan_dist.forensics evaluate --detectors=runs/det/cnn \
        --sets='other epochs=runs/dcgan@odd#raw,other seed=runs/seed1' \
        --output=runs/det/protocol.json

Pool entries are WORKDIR[@all|latest|even|odd|STEP+STEP][#raw|#averaged] or an .npz of
uint8 images (see pool.py). The exported detector has the signature of
`dcgan_dist.export`'s detector/ (uint8 images [N, 28, 28, 1] -> probability_real and
logit, float32 [N]), so `dcgan_dist.detect --detector=EXPORT_DIR` takes it.

Exit statuses: dcgan_dist/errors.py (3: missing or damaged checkpoints, an empty pool,
or images that are not 28x28).
"""

import json
import os

from absl import flags

from dcgan_dist import cli
from dcgan_dist.errors import ConfigError
from dcgan_dist.forensics.config import ARCHITECTURES, DetectorConfig

FLAGS = flags.FLAGS
COMMANDS = ("train", "evaluate")
flags.DEFINE_list("workdirs", [], "train: the pool of generators (entries as above).")
flags.DEFINE_string("checkpoints", "all", "train: the selector of entries that name "
                    "none (all, latest, even, odd, or steps joined by +).")
_DEFAULT = DetectorConfig()  # the detector that measured best (docs/forensics.md)
flags.DEFINE_enum("detector", _DEFAULT.architecture, list(ARCHITECTURES),
                  "train: the detector (see detectors.py); spectral_residual measured best "
                  "on generators it never saw.")
flags.DEFINE_list("augment", list(_DEFAULT.augment), "train: augmentations, each applied "
                  "to half the images: blur, jpeg, noise, resize (--augment= for none).")
flags.DEFINE_integer("epochs", _DEFAULT.epochs, "train: epochs.")
flags.DEFINE_enum("lr_schedule", _DEFAULT.lr_schedule, ["constant", "cosine"], "train: the "
                  "learning rate held, or decayed to 0 along a cosine over the epochs.")
flags.DEFINE_integer("batch_size", _DEFAULT.batch_size, "train: global batch size.")
flags.DEFINE_float("learning_rate", _DEFAULT.learning_rate, "train: Adam learning rate.")
flags.DEFINE_integer("samples_per_generator", _DEFAULT.per_generator, "Images drawn from "
                     "each generator "
                     "(train), or at most (evaluate: a set's fakes match --num_real).")
flags.DEFINE_string("out_dir", None, "train: the detector's folder (a new one).")
flags.DEFINE_string("export_dir", None, "train: also export the detector SavedModel here.")
flags.DEFINE_list("detectors", [], "evaluate: --out_dir folders of trained detectors.")
flags.DEFINE_list("sets", [], "evaluate: held-out sets, NAME=ENTRY|ENTRY...")
flags.DEFINE_list("perturbations", ["none", "jpeg75", "blur1", "noise5"],
                  "evaluate: perturbations of real and fake test images.")
flags.DEFINE_integer("num_real", 10000, "evaluate: real test images.")
flags.DEFINE_bool("discriminator", True, "evaluate: also score each generator with its "
                  "checkpoint's discriminator.")
flags.DEFINE_string("output", None, "evaluate: write the rows here as JSON.")
flags.DEFINE_string("dataset", None, "tfds dataset of the real images (default: the one "
                    "the pool's runs trained on).")
flags.DEFINE_string("data_dir", None, "Folder of MNIST-format IDX files, as in training.")
flags.DEFINE_string("tfds_data_dir", None, "Where tensorflow-datasets keeps prepared data.")
cli.define_strategy_flags("train: ")
flags.DEFINE_integer("seed", 0, "Seeds the detector, the data order and the draws.")


def _entries(entries):
    """Entries with --checkpoints as the selector of those that name none."""
    out = []
    for entry in entries:
        spec, mark, kind = entry.partition("#")
        if not (spec.endswith(".npz") or "@" in spec):
            spec = f"{spec}@{FLAGS.checkpoints}"
        out.append(spec + mark + kind)
    return out


def _builder(generators):
    from dcgan_dist.data import sources
    from dcgan_dist.forensics import pool
    datasets = pool.datasets_of(generators)
    if not FLAGS.dataset and len(datasets) > 1:
        raise ConfigError(f"the pool's runs trained on {', '.join(sorted(datasets))}; pass "
                          "--dataset to choose the real images.")
    dataset = FLAGS.dataset or (datasets.pop() if datasets else "mnist")
    return sources.load_builder(dataset, FLAGS.data_dir, FLAGS.tfds_data_dir)


def _train():
    from dcgan_dist.forensics import pool
    if not FLAGS.out_dir:
        raise ConfigError("train needs --out_dir, a new folder for the detector.")
    config = DetectorConfig(
        architecture=FLAGS.detector, augment=FLAGS.augment, epochs=FLAGS.epochs,
        batch_size=FLAGS.batch_size, learning_rate=FLAGS.learning_rate,
        lr_schedule=FLAGS.lr_schedule, per_generator=FLAGS.samples_per_generator,
        seed=FLAGS.seed)
    entries = _entries(FLAGS.workdirs)
    generators = pool.parse(entries)
    builder = _builder(generators)
    from dcgan_dist.forensics import training
    from dcgan_dist.serving import savedmodel
    from dcgan_dist.training import strategies
    strategy = strategies.make_strategy(FLAGS.strategy, FLAGS.cpu_replicas, FLAGS.tpu)
    model, record = training.train(config, strategy, generators, builder, FLAGS.out_dir,
                                   entries=entries)
    if FLAGS.export_dir:
        savedmodel.export_detector(model, FLAGS.export_dir)
    print(f"forensics | trained {FLAGS.detector} on {record['images']} images from "
          f"{len(generators)} generators | validation: "
          + " | ".join(f"{k}: {v:.4f}" for k, v in record["validation"].items()), flush=True)


def _evaluate():
    from dcgan_dist.forensics import pool, protocol
    if not FLAGS.detectors and not FLAGS.discriminator:
        raise ConfigError("nothing to score: pass --detectors or leave --discriminator on.")
    unknown = set(FLAGS.perturbations) - set(protocol.PERTURBATIONS)
    if unknown:
        raise ConfigError(f"--perturbations={','.join(sorted(unknown))} is unknown; use "
                          f"{', '.join(protocol.PERTURBATIONS)}.")
    if not FLAGS.sets:
        raise ConfigError("--sets names no held-out set; pass NAME=WORKDIR[@...], e.g. "
                          "--sets=other_seed=runs/seed1.")
    sets = {}
    for spec in FLAGS.sets:
        name, _, entries = spec.partition("=")
        if not name or not entries:
            raise ConfigError(f"--sets: {spec!r} is not NAME=ENTRY|ENTRY...")
        sets[name] = pool.parse(entries.split("|"), flag=f"--sets {name}")
    for directory in FLAGS.detectors:
        if not os.path.isdir(directory):
            raise ConfigError(f"--detectors: {directory} is not a folder; pass the "
                              "--out_dir of `forensics train`.")
    builder = _builder([g for generators in sets.values() for g in generators])
    rows = protocol.evaluate(FLAGS.detectors, sets, builder, FLAGS.num_real,
                             FLAGS.perturbations, FLAGS.discriminator, FLAGS.seed)
    if FLAGS.output:
        os.makedirs(os.path.dirname(FLAGS.output) or ".", exist_ok=True)
        with open(FLAGS.output, "w") as f:
            json.dump(rows, f, indent=2)
    print(protocol.table(rows), flush=True)


def main(args):
    if len(args) != 1 or args[0] not in COMMANDS:
        raise ConfigError(f"name one command, {' or '.join(COMMANDS)}: python -m "
                          "dcgan_dist.forensics train|evaluate --flags.")
    _train() if args[0] == "train" else _evaluate()


if __name__ == "__main__":
    cli.run(main, positional=True)
