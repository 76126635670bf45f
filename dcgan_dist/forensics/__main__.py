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
uint8 images (see pool.py). A pool, its held-out sets and its detectors share the image
shape of their runs (28x28x1 for the article's, 32x32x3 for a colour run ...); the real
images (--dataset or --data_dir, by default the data the runs trained on) are fitted to
it as training fitted them.

The exported detector has the signature of `dcgan_dist.export`'s detector/ (uint8
images [N, H, W, C] of the pool's shape -> probability_real and logit, float32 [N]), so
`dcgan_dist.detect --detector=EXPORT_DIR` takes it (it reads the shape from
EXPORT_DIR/export.json). Its probability_real is calibrated on the validation split
(temperature scaling), and export.json records the temperature and the operating point
that calls at most 1% of the validation's real images generated (training.py), which
`detect` prints as a third column.

`train` holds OUT_DIR (OUT_DIR/lock: a second `train` on it exits 7 naming the holder)
and records its flags in OUT_DIR/flags.json before training: an interrupted run resumes
at its last epoch when started again with the same flags, and a run with other flags
is refused (name a new --out_dir).

Exit statuses: dcgan_dist/errors.py (3: missing or damaged checkpoints, an empty pool,
runs of different image shapes, or .npz images not of the pool's shape; 2: an --out_dir
trained or started with other flags; 7: an --out_dir another live process trains in).
"""

import os

from absl import flags

from dcgan_dist import cli, files, shapes
from dcgan_dist.errors import ConfigError
from dcgan_dist.options import DEFAULT_DATASET
from dcgan_dist.forensics.config import (ARCHITECTURES, DEFAULT_PERTURBATIONS,
                                         PERTURBATIONS, DetectorConfig, claim_out_dir,
                                         VALIDATIONS, run_flags)

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
                  "to --augment_probability of the images: blur, jpeg, noise, resize, chain "
                  "(down-up, then JPEG twice; --augment= for none).")
flags.DEFINE_float("augment_probability", _DEFAULT.augment_probability, "train: the "
                   "probability of each augmentation, per image (1 with --augment=chain: "
                   "every training image chained, the ceiling of docs/forensics.md).")
flags.DEFINE_integer("epochs", _DEFAULT.epochs, "train: epochs.")
flags.DEFINE_enum("lr_schedule", _DEFAULT.lr_schedule, ["constant", "cosine"], "train: the "
                  "learning rate held, or decayed to 0 along a cosine over the epochs.")
flags.DEFINE_integer("batch_size", _DEFAULT.batch_size, "train: global batch size.")
flags.DEFINE_enum("validation", _DEFAULT.validation, list(VALIDATIONS), "train: the "
                  "validation split that sets the threshold, the temperature and the "
                  "operating point: unseen samples of every generator, or every sample "
                  "of a tenth of the generators, which the detector then never trains on.")
flags.DEFINE_float("learning_rate", _DEFAULT.learning_rate, "train: Adam learning rate.")
flags.DEFINE_integer("samples_per_generator", _DEFAULT.per_generator, "Images drawn from "
                     "each generator "
                     "(train), or at most (evaluate: a set's fakes match --num_real).")
flags.DEFINE_string("out_dir", None, "train: the detector's folder (a new one).")
flags.DEFINE_string("export_dir", None, "train: also export the detector SavedModel here.")
flags.DEFINE_list("detectors", [], "evaluate: --out_dir folders of trained detectors.")
flags.DEFINE_list("sets", [], "evaluate: held-out sets, NAME=ENTRY|ENTRY...")
flags.DEFINE_list("perturbations", list(DEFAULT_PERTURBATIONS),
                  "evaluate: perturbations of real and fake test images, of "
                  f"{', '.join(PERTURBATIONS)} (forensics/perturbations.py).")
flags.DEFINE_integer("num_real", 10000, "evaluate: real test images.")
flags.DEFINE_bool("discriminator", True, "evaluate: also score each generator with its "
                  "checkpoint's discriminator.")
flags.DEFINE_string("output", None, "evaluate: write the rows here as JSON.")
cli.define_data_flags(of_run=True, what="The real images: ")
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


def _data_source(generators):
    """(dataset, data_dir or None) of the real images: --dataset and --data_dir, else
    what the pool's runs trained on (their config.json)."""
    from dcgan_dist.forensics import pool
    data_dir = FLAGS.data_dir
    if not FLAGS.dataset and not data_dir:  # the folder the runs trained on, if any
        folders = pool.data_dirs_of(generators)
        if len(folders) > 1:
            raise ConfigError("the pool's runs trained on different data ("
                              + ", ".join(sorted(str(f) for f in folders)) + "); pass "
                              "--data_dir or --dataset to choose the real images.")
        data_dir = folders.pop() if folders else None
        if data_dir and not os.path.isdir(data_dir):
            raise ConfigError(f"the pool's runs trained on --data_dir={data_dir}, which is "
                              "not a folder here; pass --data_dir to choose the real images.")
    datasets = pool.datasets_of(generators)
    if not FLAGS.dataset and len(datasets) > 1:
        raise ConfigError(f"the pool's runs trained on {', '.join(sorted(datasets))}; pass "
                          "--dataset to choose the real images.")
    return FLAGS.dataset or (datasets.pop() if datasets else DEFAULT_DATASET), data_dir


def _real_data(generators, others=()):
    """(sources.Data of the real images at the pool's image shape, their dataset, their
    --data_dir or None), once every .npz entry is known to be of that shape. others: (name, shape) of
    trained detectors, which must agree too.

    The shape is the runs' (or the detectors'); for .npz files alone, the real data's:
    28x28x1 for MNIST-format data (IDX files, mnist, fashion_mnist), known before it
    loads so that a wrong file is refused first, else the loaded data's own.
    """
    from dcgan_dist.data import sources
    from dcgan_dist.forensics import pool
    shape = pool.image_shape(generators, others)  # refuses a mix before anything else
    dataset, data_dir = _data_source(generators)
    if shape is None and (sources.is_idx_folder(data_dir) if data_dir
                          else dataset in sources.KNOWN_LOCAL_FOLDERS):
        shape = shapes.DEFAULT_SHAPE
    if shape is not None:
        pool.check_files(generators, shape)
    size, channels = (shape[0], shape[-1]) if shape else (None, None)  # None: the data's
    data = sources.load(dataset, data_dir, FLAGS.tfds_data_dir, size, channels)
    if shape is None:
        pool.check_files(generators, data.image_shape)
    return data, dataset, data_dir


def _train():
    from dcgan_dist.forensics import pool
    if not FLAGS.out_dir:
        raise ConfigError("train needs --out_dir, a new folder for the detector.")
    config = DetectorConfig(
        architecture=FLAGS.detector, augment=FLAGS.augment,
        augment_probability=FLAGS.augment_probability, epochs=FLAGS.epochs,
        validation=FLAGS.validation,
        batch_size=FLAGS.batch_size, learning_rate=FLAGS.learning_rate,
        lr_schedule=FLAGS.lr_schedule, per_generator=FLAGS.samples_per_generator,
        seed=FLAGS.seed)
    entries = _entries(FLAGS.workdirs)
    generators = pool.parse(entries)
    data, dataset, data_dir = _real_data(generators)
    # Every input is known good: the folder becomes this run's (one writer; the same
    # flags resume an interrupted run, other flags are refused).
    with claim_out_dir(FLAGS.out_dir, run_flags(config, entries, generators, dataset,
                                                data_dir)):
        from dcgan_dist.evaluation import calibration
        from dcgan_dist.forensics import training
        from dcgan_dist.inference import savedmodel
        from dcgan_dist.training import strategies
        strategy = strategies.make_strategy(FLAGS.strategy, FLAGS.cpu_replicas, FLAGS.tpu)
        model, record = training.train(config, strategy, generators, data.builder,
                                       FLAGS.out_dir, entries=entries,
                                       shape=data.image_shape)
        fitted = calibration.of_record(record)
        if FLAGS.export_dir:  # export.json: the shape and calibration detect reads
            savedmodel.export_detector(model, FLAGS.export_dir,
                                       {"detector": FLAGS.out_dir}, fitted)
    print(f"forensics | trained {FLAGS.detector} on {record['images']} images from "
          f"{len(generators)} generators | temperature: {fitted.temperature:.4f} | "
          f"1% FPR threshold (logit): {fitted.threshold_logit:.4f} | validation: "
          + " | ".join(f"{k}: {v:.4f}" for k, v in record["validation"].items()), flush=True)


def _evaluate():
    from dcgan_dist.data import splits
    from dcgan_dist.forensics import pool, protocol, training
    if not FLAGS.detectors and not FLAGS.discriminator:
        raise ConfigError("nothing to score: pass --detectors or leave --discriminator on.")
    unknown = set(FLAGS.perturbations) - set(PERTURBATIONS)
    if unknown:
        raise ConfigError(f"--perturbations={','.join(sorted(unknown))} is unknown; use "
                          f"{', '.join(PERTURBATIONS)}.")
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
    generators = [g for members in sets.values() for g in members]
    trained = [(d, training.image_shape(training.read_record(d))) for d in FLAGS.detectors]
    data, _, data_dir = _real_data(generators, trained)
    splits.require_real_split(data.builder, data_dir, needed_by="forensics evaluate")
    rows = protocol.evaluate(FLAGS.detectors, sets, data.builder, FLAGS.num_real,
                             FLAGS.perturbations, FLAGS.discriminator, FLAGS.seed,
                             data.image_shape)
    if FLAGS.output:
        os.makedirs(os.path.dirname(FLAGS.output) or ".", exist_ok=True)
        files.write_json(FLAGS.output, rows)
    print(protocol.table(rows), flush=True)


def main(args):
    if len(args) != 1 or args[0] not in COMMANDS:
        raise ConfigError(f"name one command, {' or '.join(COMMANDS)}: python -m "
                          "dcgan_dist.forensics train|evaluate --flags.")
    _train() if args[0] == "train" else _evaluate()


if __name__ == "__main__":
    cli.run(main, positional=True)
