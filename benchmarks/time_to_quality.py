"""Time to quality: how many training minutes each recipe needs to reach a FID.

The article's recipe for its 50 epochs (the reference: its last FID is the target), then
the fast recipe with three seeds, each stopped at the target:
    python benchmarks/time_to_quality.py --recipes=article --epochs=50 \
        --eval_every_epochs=1 --eval_every_images=0
    python benchmarks/time_to_quality.py --recipes=article,fast --seeds=3 --epochs=50
Variants of a recipe are named with overrides, e.g. `fast+batch_size=128+beta1=0.0`.

Each run is a real `python -m dcgan_dist.train` process in OUT_DIR/LABEL-sSEED that
evaluates every --eval_every_images images (FID, KID, class coverage, detector AUC on
--eval_samples samples against the real test split). Evaluation time is excluded from
training time; both are reported. A run is stopped (SIGTERM: it saves and exits 75) once
its FID reaches the target (--stop_at_target) or its training time passes
--max_train_minutes; otherwise it trains --epochs. Runs already in OUT_DIR are resumed,
or only read when they are done, so the reference is trained once.

Writes OUT_DIR/time_to_quality.json (every curve, the time and images to the target,
median and spread over seeds), OUT_DIR/time_to_quality.png (FID against training
minutes, one colour per recipe) and TensorBoard logs in OUT_DIR/tensorboard (curves
against training seconds, and an HParams table of the runs).
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import curves  # noqa: E402
import results  # noqa: E402
from absl import app, flags  # noqa: E402

from dcgan_dist import cli  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_list("recipes", ["article", "fast"], "Recipes, each optionally with "
                  "+flag=value overrides (e.g. fast+batch_size=128).")
flags.DEFINE_integer("seeds", 1, "Seeds 0..N-1 of each recipe but the reference.")
flags.DEFINE_integer("reference_seeds", 1, "Seeds 0..N-1 of the reference (its 50 epochs "
                     "are the long run).")
flags.DEFINE_string("reference", "article", "The label whose last FID (median over its "
                    "seeds) is the target when --target_fid is 0; it trains its full "
                    "budget.")
flags.DEFINE_float("target_fid", 0.0, "The FID to reach (0: the reference's last FID).")
flags.DEFINE_bool("stop_at_target", True, "Stop a run (not the reference's) once its FID "
                  "is at most the target.")
flags.DEFINE_integer("epochs", 50, "Epoch budget of each run.")
flags.DEFINE_float("max_train_minutes", 0, "Training-time budget of each run (0: none).")
flags.DEFINE_integer("eval_every_images", 15000, "Evaluate every N images (a quarter "
                     "of a 60,000-image epoch; 0: never), and at the end of each run.")
flags.DEFINE_integer("eval_every_epochs", 0, "Also evaluate at the end of every N epochs.")
flags.DEFINE_integer("eval_samples", 10000, "Generated and real images per evaluation.")
cli.define_data_flags(dataset="fashion_mnist", what="As dcgan_dist.train: ")
flags.DEFINE_string("split", "train", "Training split (a smaller one for a smoke run).")
flags.DEFINE_string("out_dir", "runs/time_to_quality", "Workdirs, logs and results.")


def _parse(spec):
    """'fast+batch_size=128' -> ('fast', ['--batch_size=128'])."""
    recipe, *overrides = spec.split("+")
    for override in overrides:
        if "=" not in override:
            raise app.UsageError(f"--recipes: {override!r} in {spec!r} is not flag=value.")
    return recipe, [f"--{override}" for override in overrides]


def _workdir(label, seed):
    name = label.replace("+", "_").replace("=", "").replace("/", "_")
    return os.path.join(FLAGS.out_dir, f"{name}-s{seed}")


def _train_command(recipe, overrides, seed, workdir):
    command = [sys.executable, "-m", "dcgan_dist.train", f"--recipe={recipe}",
               f"--seed={seed}", f"--workdir={workdir}", f"--epochs={FLAGS.epochs}",
               f"--dataset={FLAGS.dataset}", f"--eval_every_images={FLAGS.eval_every_images}",
               f"--eval_every_epochs={FLAGS.eval_every_epochs}",
               f"--eval_samples={FLAGS.eval_samples}", "--noeval_earlier",
               "--progress_bar=false", "--keep_checkpoints=20", *overrides]
    command += [f"--{name}={getattr(FLAGS, name)}" for name in ("split", "data_dir",
                                                                  "tfds_data_dir")
                if getattr(FLAGS, name)]
    return command


def _should_stop(curve, target_fid):
    if not curve:
        return False
    if target_fid and curve[-1]["fid"] <= target_fid:
        return True
    limit = FLAGS.max_train_minutes * 60
    return bool(limit) and curve[-1]["train_seconds"] >= limit


def _train(label, recipe, overrides, seed, stop_fid):
    """Trains (or resumes) one run until its budget or `stop_fid`; returns its curve."""
    workdir = _workdir(label, seed)
    if _should_stop(curves.read_curve(workdir), stop_fid):
        print(f"time_to_quality | {label} seed {seed}: done before, read from {workdir}",
              flush=True)
        return
    os.makedirs(FLAGS.out_dir, exist_ok=True)
    curves.train_until(_train_command(recipe, overrides, seed, workdir), workdir,
                       lambda curve: _should_stop(curve, stop_fid),
                       f"time_to_quality | {label} seed {seed}")


def _run_record(label, recipe, seed, target_fid):
    from dcgan_dist.training import recipes
    workdir = _workdir(label, seed)
    curve = curves.read_curve(workdir)
    with open(os.path.join(workdir, "config.json")) as f:
        # What the run recorded; a workdir from before a value was recorded has the
        # recipe's.
        hparams = {**recipes.RECIPES[recipe], "recipe": recipe, **json.load(f)}
    return {"label": label, "seed": seed, "workdir": workdir, "hparams": hparams,
            "curve": curve,
            "to_target": curves.first_at_or_below(curve, target_fid) if target_fid else None}


def _seeds(label):
    return range(FLAGS.reference_seeds if label == FLAGS.reference else FLAGS.seeds)


def _target_from_reference():
    import statistics
    last = [curves.read_curve(_workdir(FLAGS.reference, seed))
            for seed in _seeds(FLAGS.reference)]
    last = [curve[-1]["fid"] for curve in last if curve]
    return statistics.median(last) if last else 0.0


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {argv[1:]}")
    specs = {label: _parse(label) for label in FLAGS.recipes}
    order = sorted(specs, key=lambda label: label != FLAGS.reference)  # reference first
    for label in order:
        for seed in _seeds(label):
            if label == FLAGS.reference:
                _train(label, *specs[label], seed, stop_fid=0.0)
            else:
                target = FLAGS.target_fid or _target_from_reference()
                _train(label, *specs[label], seed,
                       stop_fid=target if FLAGS.stop_at_target else 0.0)
    target_fid = FLAGS.target_fid or _target_from_reference()
    runs = [_run_record(label, specs[label][0], seed, target_fid) for label in order
            for seed in _seeds(label)]
    reference_images = max((run["curve"][-1]["images_seen"] for run in runs
                            if run["label"] == FLAGS.reference and run["curve"]), default=0)
    summary = curves.summarize(runs, target_fid)
    for label, row in summary.items():
        # Quality at equal budget: each seed's first evaluation at or past the images
        # the reference trained on.
        row["at_reference_images"] = [
            {"seed": run["seed"], **point} for run in runs if run["label"] == label
            for point in [curves.at_images(run["curve"], reference_images)] if point]
    report = {"target_fid": target_fid, "reference": FLAGS.reference,
              "reference_images": reference_images,
              "flags": {name: getattr(FLAGS, name) for name in (
                  "recipes", "seeds", "reference_seeds", "epochs", "max_train_minutes", "eval_every_images",
                  "eval_every_epochs",
                  "eval_samples", "dataset", "stop_at_target")},
              "summary": summary, "runs": runs}
    results.write_json(os.path.join(FLAGS.out_dir, "time_to_quality.json"), report)
    curves.plot(runs, target_fid, os.path.join(FLAGS.out_dir, "time_to_quality.png"))
    curves.write_tensorboard(runs, target_fid, os.path.join(FLAGS.out_dir, "tensorboard"))
    print(f"time_to_quality | target FID: {target_fid:.2f}", flush=True)
    for label, row in summary.items():
        print(f"time_to_quality | {label}: "
              + json.dumps({k: v for k, v in row.items() if k != "at_reference_images"}),
              flush=True)


if __name__ == "__main__":
    app.run(main)
