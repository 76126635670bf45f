"""Class-conditional runs measured: does `generate --class=k` draw class k, and at what
cost in FID? (issue 25's acceptance, docs/conditional.md)

The README first command's budget (--recipe=fast --batch_size=8 --max_steps=3000) for
each variant and seed, then `evaluate` (FID and the rest on --eval_samples images) and,
for a conditional run, `generate` (--samples_per_class images of every class):
    python benchmarks/conditional.py --seeds=0,1,2

Variants: `none` (the README's command itself, no --conditional), or a --conditioning of
a --conditional run with train flags joined by + (`input+class_loss=1`); the default
list ends with --conditional's defaults, batchnorm+class_loss=1. Every step is a real
command in its own process, one at a time; a run already in OUT_DIR is resumed, or only
read when it is done (and a run stopped by a signal, exit 75, is started again: it
resumes). The share of each class's
generated images that the feature classifier (the one `evaluate` uses) assigns to that
class is compared with the classifier's accuracy on the real test images of the class:
the acceptance asks for at least that accuracy minus --margin, for every class.

Writes OUT_DIR/conditional.json: the CPU, the commands, every run's figures, and per
variant the mean over seeds and the check.
"""

import json
import os
import re
import statistics
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import results  # noqa: E402
from absl import app, flags, logging  # noqa: E402

from dcgan_dist import cli  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_list("variants", ["none", "input+class_loss=0", "batchnorm+class_loss=0",
                               "input+class_loss=1", "batchnorm+class_loss=1"],
                  "none (unconditional), "
                  "or a --conditioning of a --conditional run, optionally with train "
                  "flags joined by +, e.g. input+class_loss=1.")
flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds of every variant.")
flags.DEFINE_integer("max_steps", 3000, "Training steps (the README command's).")
flags.DEFINE_integer("batch_size", 8, "Global batch (the README command's).")
flags.DEFINE_string("recipe", "fast", "Recipe (the README command's).")
flags.DEFINE_integer("eval_samples", 10000, "evaluate --num_samples.")
flags.DEFINE_integer("samples_per_class", 1000, "generate --num_samples, per class.")
flags.DEFINE_float("margin", 0.05, "A class passes when its share is at least the "
                   "classifier's accuracy on its real images minus this.")
cli.define_data_flags(dataset="fashion_mnist", what="As dcgan_dist.train: ")
flags.DEFINE_string("out_dir", "runs/conditional", "Workdirs, logs and results.")

STOPPED = 75  # a signal stopped the command after a checkpoint: start it again


def _data_flags():
    return [f"--{name}={getattr(FLAGS, name)}" for name in ("dataset", "data_dir",
                                                              "tfds_data_dir")
            if getattr(FLAGS, name)]


def _commands(variant, seed, workdir):
    """{step: argv} of one run: train, evaluate and (conditional) generate."""
    conditioning, *overrides = variant.split("+")
    conditional = [] if variant == "none" else [
        "--conditional", f"--conditioning={conditioning}",
        *[f"--{override}" for override in overrides]]
    data = [f for f in _data_flags() if not f.startswith("--dataset")]  # the run's
    commands = {
        "train": ["dcgan_dist.train", "--strategy=mirrored", *_data_flags(),
                  f"--recipe={FLAGS.recipe}", f"--batch_size={FLAGS.batch_size}",
                  f"--max_steps={FLAGS.max_steps}", f"--seed={seed}", *conditional,
                  f"--workdir={workdir}"],
        "evaluate": ["dcgan_dist.evaluate", f"--workdir={workdir}", *data,
                     f"--num_samples={FLAGS.eval_samples}"],
    }
    if conditional:
        commands["generate"] = ["dcgan_dist.generate", f"--workdir={workdir}",
                                f"--num_samples={FLAGS.samples_per_class}",
                                f"--npz={os.path.join(workdir, 'classes.npz')}"]
    return commands


def _run(argv, log):
    """Runs `python -m argv` to the end (again while a signal stops it); returns stdout."""
    while True:
        print(f"conditional | {' '.join(argv)}", flush=True)
        done = subprocess.run([sys.executable, "-m", *argv], capture_output=True, text=True,
                              env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
        with open(log, "a") as f:
            f.write(done.stdout + done.stderr)
        if done.returncode != STOPPED:
            break
    if done.returncode:
        raise SystemExit(f"{argv[0]} failed (exit {done.returncode}): "
                         f"{done.stderr.strip().splitlines()[-1:]}; see {log}")
    return done.stdout


def _measure(variant, seed):
    """Trains, evaluates and samples one run (each step once); returns its record."""
    name = variant.replace("+", "_").replace("=", "")
    workdir = os.path.join(FLAGS.out_dir, f"{name}-s{seed}")
    os.makedirs(workdir, exist_ok=True)
    log, done_file = workdir + ".log", os.path.join(workdir, "benchmark.json")
    if os.path.exists(done_file):
        with open(done_file) as f:
            return json.load(f)
    commands = _commands(variant, seed, workdir)
    out = _run(commands["train"], log)
    record = {"variant": variant, "seed": seed, "workdir": workdir,
              "commands": {k: "python -m " + " ".join(v) for k, v in commands.items()}}
    seconds = re.findall(r"\| time: ([\d.]+) s", out)
    record["train_seconds"] = float(seconds[-1]) if seconds else None
    record["weights"] = re.findall(r"weights: (\w+)", out)[-1]
    _run(commands["evaluate"], log)
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        record["evaluate"] = [json.loads(line) for line in f][-1]
    if "generate" in commands:
        _run(commands["generate"], log)
    results.write_json(done_file, record)
    return record


def _class_shares(records):
    """Adds each conditional run's per-class shares of its generate samples, and
    returns the classifier's per-class accuracy on the whole real test split."""
    import numpy as np

    from dcgan_dist.data import sources, splits
    from dcgan_dist.evaluation import classifier, metrics
    builder = sources.load(FLAGS.dataset, FLAGS.data_dir, FLAGS.tfds_data_dir).builder
    named = FLAGS.dataset if not FLAGS.data_dir or sources.is_idx_folder(FLAGS.data_dir) \
        else None
    scorer = classifier.load_or_train(builder, named)
    images, labels = splits.load_split(builder, splits.REAL_SPLIT)
    classes = classifier.class_count(builder)
    real = metrics.class_accuracy(scorer.embed(images).probabilities, labels, classes)
    for record in records:
        path = os.path.join(record["workdir"], "classes.npz")
        if record["variant"] == "none" or not os.path.exists(path):
            continue
        saved = np.load(path)
        fake = saved["images"]
        fake = fake[..., None] if fake.ndim == 3 else fake
        shares = metrics.class_accuracy(scorer.embed(fake).probabilities, saved["labels"],
                                        classes)
        record["generate_class_share"] = shares["class_accuracy_per_class"]
        record["generate_class_share_mean"] = shares["class_accuracy"]
    return real["class_accuracy_per_class"], list(sources.class_names(
        builder, FLAGS.dataset, FLAGS.data_dir) or range(classes))


def _summary(records, real, margin):
    """Per variant: FID and class shares (mean over seeds) and the acceptance check."""
    summary = {}
    for variant in FLAGS.variants:
        runs = [r for r in records if r["variant"] == variant]
        fids = [r["evaluate"]["fid"] for r in runs]
        row = {"seeds": [r["seed"] for r in runs], "fid": fids,
               "fid_mean": statistics.mean(fids), "fid_median": statistics.median(fids)}
        if variant != "none":
            shares = [r["generate_class_share"] for r in runs]
            mean = [statistics.mean(column) for column in zip(*shares)]
            row.update(
                class_share_mean=mean,
                class_accuracy=[r["evaluate"]["class_accuracy"] for r in runs],
                # Every class of every seed at least the real accuracy minus the margin.
                passes_every_seed=all(s >= a - margin for run in shares
                                      for s, a in zip(run, real)),
                passes_seed_mean=all(s >= a - margin for s, a in zip(mean, real)),
                worst_gap=min(s - a for run in shares for s, a in zip(run, real)))
        summary[variant] = row
    if "none" in summary:
        base = summary["none"]["fid_mean"]
        for row in summary.values():
            row["fid_mean_vs_unconditional"] = row["fid_mean"] / base
    return summary


def _cpu():
    with open("/proc/cpuinfo") as f:
        return next((line.split(":", 1)[1].strip() for line in f
                     if line.startswith("model name")), "unknown")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {argv[1:]}")
    logging.set_verbosity(logging.WARNING)  # tfds' INFO lines
    os.makedirs(FLAGS.out_dir, exist_ok=True)
    records = [_measure(variant, int(seed)) for variant in FLAGS.variants
               for seed in FLAGS.seeds]
    real, names = _class_shares(records)  # TensorFlow here, once the commands are done
    summary = _summary(records, real, FLAGS.margin)
    report = {"cpu": _cpu(), "cores": os.cpu_count(), "class_names": names,
              "classifier_real_accuracy": real, "margin": FLAGS.margin,
              "flags": {name: getattr(FLAGS, name) for name in (
                  "variants", "seeds", "max_steps", "batch_size", "recipe", "eval_samples",
                  "samples_per_class", "dataset")},
              "summary": summary, "runs": records}
    results.write_json(os.path.join(FLAGS.out_dir, "conditional.json"), report)
    for variant, row in summary.items():
        print(f"conditional | {variant}: " + json.dumps(
            {k: v for k, v in row.items() if k != "class_share_mean"}), flush=True)


if __name__ == "__main__":
    app.run(main)
