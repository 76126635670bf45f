"""Small data: FID against training minutes with and without DiffAugment, on the first N
images of Fashion-MNIST and on a folder of colour images, same seeds and the same
training time for every setting.

    python benchmarks/colour_images.py --out=runs/icons       # the oxygen icons
    python benchmarks/small_data.py --sizes=600 --colour_dir=runs/icons --seeds=3 \
        --train_minutes=4 --report=small_data_4min
    python benchmarks/small_data.py --sizes=6000,60000 --seeds=1 --train_minutes=3 \
        --report=small_data_3min

Each run is a real `python -m dcgan_dist.train --recipe=fast` process on
`--split=train[:N]` (or the colour folder at --colour_size, 3 channels), evaluated every
--eval_every_images images against the whole test split (10,000 Fashion-MNIST images;
the folder's test/), in the package's feature space (evaluation/classifier.py), and
stopped at its first evaluation past --train_minutes of training (evaluation excluded).
The augmented run of a seed follows the plain one at once, so both see the machine in
the same state. A setting's score is each seed's best FID within the budget (the
median over seeds, with min and max): a run whose discriminator memorised the images
gets worse with time, and the best point is what early stopping would keep.

Beside them, the FID of the training images themselves (repeated to --eval_samples):
what a generator that memorised them would score.

Runs already in OUT_DIR are read back, not trained again. Writes OUT_DIR/REPORT.json
and OUT_DIR/REPORT.png (one panel per dataset, one colour per setting).
"""

import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import curves  # noqa: E402
import results  # noqa: E402
from absl import app, flags  # noqa: E402

from dcgan_dist import cli  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_list("sizes", ["600", "6000"], "Train on the first N images of the training "
                  "split, for each N.")
flags.DEFINE_string("colour_dir", None, "Also train on this folder of colour images "
                    "(benchmarks/colour_images.py), at --colour_size, 3 channels.")
flags.DEFINE_integer("colour_size", 32, "Image size of the colour runs.")
flags.DEFINE_string("policy", "color,translation,cutout", "The --diffaugment policy "
                    "compared against none.")
flags.DEFINE_integer("seeds", 3, "Seeds 0..N-1 of each setting.")
flags.DEFINE_float("train_minutes", 3.0, "Training-time budget of every run.")
flags.DEFINE_integer("eval_every_images", 10000, "Evaluate every N images.")
flags.DEFINE_integer("eval_samples", 10000, "Generated images per evaluation (and real "
                     "test images, at most the test split's).")
flags.DEFINE_integer("batch_size", None, "Global batch (default: the fast recipe's).")
cli.define_data_flags(dataset="fashion_mnist", what="The grey runs': ")
flags.DEFINE_string("out_dir", "runs/small_data", "Workdirs, logs and results.")
flags.DEFINE_string("report", "small_data", "The results' name: OUT_DIR/REPORT.json and "
                    ".png (one per budget, when datasets get different ones).")


def _settings():
    return {"none": "", "diffaugment": FLAGS.policy}


def _datasets():
    """{name: (the train command's data flags, (dataset, data_dir, split, image shape
    or None))}."""
    tfds_dir = ([f"--tfds_data_dir={FLAGS.tfds_data_dir}"] if FLAGS.tfds_data_dir
                else [])
    data = [f"--dataset={FLAGS.dataset}"] + tfds_dir + (
        [f"--data_dir={FLAGS.data_dir}"] if FLAGS.data_dir else [])
    datasets = {f"{FLAGS.dataset}[:{int(size)}]": (
        data + [f"--split=train[:{int(size)}]"],
        (FLAGS.dataset, FLAGS.data_dir, f"train[:{int(size)}]", None))
        for size in FLAGS.sizes}
    if FLAGS.colour_dir:
        size = FLAGS.colour_size
        name = f"{os.path.basename(os.path.normpath(FLAGS.colour_dir))}{size}x{size}x3"
        datasets[name] = ([f"--data_dir={FLAGS.colour_dir}", f"--image_size={size}",
                           "--channels=3"] + tfds_dir,
                          (FLAGS.dataset, FLAGS.colour_dir, "train", (size, size, 3)))
    return datasets


def _copy_fid(dataset, data_dir, split, image_shape):
    """The FID of the training images themselves (repeated to --eval_samples) against
    the test split: what a generator that memorised them would score."""
    import numpy as np

    from dcgan_dist.data import sources, splits
    from dcgan_dist.evaluation import evaluator, metrics
    scorer = evaluator.Evaluator(dataset, data_dir, FLAGS.tfds_data_dir,
                                 num_samples=FLAGS.eval_samples, image_shape=image_shape)
    size, _, channels = image_shape or (None, None, None)
    builder = sources.load(dataset, data_dir, FLAGS.tfds_data_dir, size, channels).builder
    images, _ = splits.load_split(builder, split, image_shape)
    copies = np.resize(images, (FLAGS.eval_samples, *images.shape[1:]))
    return metrics.frechet_distance(scorer.real, scorer.classifier.embed(copies))["fid"]


def _workdir(dataset, setting, seed):
    name = dataset.replace("[:", "_").replace("]", "").replace("/", "_")
    return os.path.join(FLAGS.out_dir, f"{name}-{setting}-s{seed}")


def _command(data_flags, policy, seed, workdir):
    batch = [f"--batch_size={FLAGS.batch_size}"] if FLAGS.batch_size else []
    # One epoch of 600 images is 9 steps: no checkpoint but the last (it would cost more
    # than the steps), and no earlier generators to score.
    return [sys.executable, "-m", "dcgan_dist.train", "--recipe=fast", f"--seed={seed}",
            f"--workdir={workdir}", f"--diffaugment={policy}", "--epochs=1000000",
            "--checkpoint_every_epochs=1000000", "--keep_checkpoints=1",
            f"--eval_every_images={FLAGS.eval_every_images}",
            f"--eval_samples={FLAGS.eval_samples}", "--noeval_earlier",
            "--progress_bar=false", *batch, *data_flags]


def _past_budget(curve):
    return bool(curve) and curve[-1]["train_seconds"] >= FLAGS.train_minutes * 60


def _within_budget(curve):
    """The points of `curve` trained within the budget (evaluated at or before it)."""
    return [p for p in curve if p["train_seconds"] <= FLAGS.train_minutes * 60]


def _spread(values):
    return ({"median": statistics.median(values), "min": min(values),
             "max": max(values), "values": values} if values else None)


def _summary(runs):
    """{dataset: {setting: best FID within the budget over seeds, ...}, ratio}."""
    summary = {}
    for dataset in dict.fromkeys(run["dataset"] for run in runs):
        row = {}
        for setting in _settings():
            mine = [run for run in runs if run["dataset"] == dataset
                    and run["setting"] == setting and _within_budget(run["curve"])]
            best = [min(_within_budget(run["curve"]), key=lambda p: p["fid"])
                    for run in mine]
            row[setting] = {
                "seeds": [run["seed"] for run in mine],
                "best_fid": _spread([p["fid"] for p in best]),
                "best_at_train_seconds": [p["train_seconds"] for p in best],
                "last_fid": _spread([_within_budget(run["curve"])[-1]["fid"]
                                     for run in mine]),
                "images_in_budget": _spread([_within_budget(run["curve"])[-1]["images_seen"]
                                             for run in mine])}
        plain, augmented = row["none"]["best_fid"], row["diffaugment"]["best_fid"]
        if plain and augmented:
            row["best_fid_change"] = augmented["median"] / plain["median"] - 1
        summary[dataset] = row
    return summary


def _plot(runs, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    datasets = list(dict.fromkeys(run["dataset"] for run in runs))
    figure, panels = plt.subplots(1, len(datasets), figsize=(5 * len(datasets), 4.2),
                                  dpi=110, squeeze=False)
    for axes, dataset in zip(panels[0], datasets):
        for index, setting in enumerate(_settings()):
            mine = [r for r in runs if r["dataset"] == dataset and r["setting"] == setting]
            for number, run in enumerate(mine):
                axes.plot([p["train_seconds"] / 60 for p in run["curve"]],
                          [p["fid"] for p in run["curve"]], color=f"C{index}", alpha=0.8,
                          linewidth=1.2, label=setting if number == 0 else None)
        axes.axvline(FLAGS.train_minutes, color="grey", linestyle="--", linewidth=1)
        axes.set_yscale("log")
        axes.set_title(dataset)
        axes.set_xlabel("training minutes (evaluation excluded)")
        axes.grid(True, which="both", alpha=0.3)
        axes.legend()
    panels[0][0].set_ylabel("FID (package's classifier features)")
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {argv[1:]}")
    os.makedirs(FLAGS.out_dir, exist_ok=True)
    runs = []
    copy_fid = {}
    for dataset, (data_flags, source) in _datasets().items():
        copy_fid[dataset] = _copy_fid(*source)
        for seed in range(FLAGS.seeds):
            for setting, policy in _settings().items():  # a seed's pair back to back
                workdir = _workdir(dataset, setting, seed)
                label = f"small_data | {dataset} {setting} seed {seed}"
                if not _past_budget(curves.read_curve(workdir)):
                    curves.train_until(_command(data_flags, policy, seed, workdir),
                                       workdir, _past_budget, label)
                runs.append({"dataset": dataset, "setting": setting, "policy": policy,
                             "seed": seed, "workdir": workdir,
                             "curve": curves.read_curve(workdir)})
    summary = _summary(runs)
    for dataset, fid in copy_fid.items():
        summary[dataset]["training_images_fid"] = fid
    report = {"flags": {name: getattr(FLAGS, name) for name in (
        "sizes", "colour_dir", "colour_size", "policy", "seeds", "train_minutes",
        "eval_every_images", "eval_samples", "batch_size", "dataset")},
        "summary": summary, "runs": runs}
    results.write_json(os.path.join(FLAGS.out_dir, f"{FLAGS.report}.json"), report)
    _plot(runs, os.path.join(FLAGS.out_dir, f"{FLAGS.report}.png"))
    for dataset, row in summary.items():
        parts = [f"{setting}: best FID {row[setting]['best_fid']['median']:.2f} "
                 f"({row[setting]['best_fid']['min']:.2f}-"
                 f"{row[setting]['best_fid']['max']:.2f})"
                 for setting in _settings() if row[setting]["best_fid"]]
        change = (f" | change {row['best_fid_change']:+.1%}"
                  if "best_fid_change" in row else "")
        print(f"small_data | {dataset} | " + " | ".join(parts) + change, flush=True)


if __name__ == "__main__":
    app.run(main)
