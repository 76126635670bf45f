"""Quality-over-time curves of training runs, read back from what training recorded, and
what time_to_quality.py makes of them: time to a target FID, a summary over seeds, a
PNG plot and TensorBoard (scalars against training seconds, and HParams).

A curve is read from a workdir's metrics.jsonl: one line per evaluation, written by
`dcgan_dist.train --eval_every_images/--eval_every_epochs`, each with the training
seconds of its process (evaluation excluded). A run stopped and resumed (e.g. at its
target, then continued) has one segment per process: each segment's seconds continue
from the previous segment's last evaluation.
"""

import os
import signal
import statistics
import subprocess
import time

from dcgan_dist import files
from dcgan_dist import workdir as layout

CURVE_KEYS = ("fid", "kid", "classes_covered", "max_class_share", "detector_auc",
              "precision", "recall", "eval_seconds")


def read_curve(workdir):
    """[{step, images_seen, train_seconds, fid, ...}] of the workdir's evaluations that
    carry training time, in step order ([] when there are none)."""
    points, offset, last_process_seconds, last_step = [], 0.0, 0.0, -1
    # A line a kill tore is skipped (files.read_json_lines).
    for record in files.read_json_lines(os.path.join(workdir, layout.METRICS_FILE)):
        if "train_seconds" not in record or record["step"] <= last_step:
            continue  # evaluate's lines (no training time); a repeat after a resume
        if record["train_seconds"] < last_process_seconds:  # a new process
            offset += last_process_seconds
        last_process_seconds, last_step = record["train_seconds"], record["step"]
        points.append({"step": record["step"], "images_seen": record["images_seen"],
                       "train_seconds": round(offset + record["train_seconds"], 2),
                       **{k: record[k] for k in CURVE_KEYS if k in record}})
    return points


def train_until(command, workdir, should_stop, label):
    """Runs the training `command` (which evaluates into `workdir`), its output in
    WORKDIR.log, printing each new point of its curve, and stops it (SIGTERM: it saves
    and exits 75) once `should_stop(curve)`; raises with the log's end if it fails."""
    log_path = workdir + ".log"
    print(f"{label}: training in {workdir} (log: {log_path})", flush=True)
    with open(log_path, "a") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        seen, stopping = 0, False
        while process.poll() is None:
            time.sleep(1)
            curve = read_curve(workdir)
            if len(curve) > seen:
                seen = len(curve)
                point = curve[-1]
                print(f"{label} | images: {point['images_seen']} | train: "
                      f"{point['train_seconds']:.0f} s | fid: {point['fid']:.1f}",
                      flush=True)
                if should_stop(curve) and not stopping:
                    # Once: it saves, then exits 75. A second SIGTERM could arrive after
                    # the run restored the default handler on its way out, and kill it.
                    process.send_signal(signal.SIGTERM)
                    stopping = True
    if process.returncode not in (0, 75):
        with open(log_path) as f:
            tail = f.read()[-2000:]
        raise RuntimeError(f"{label} failed (exit {process.returncode}); the end of "
                           f"{log_path}:\n{tail}")


def first_at_or_below(curve, target_fid):
    """The first point whose FID is at most `target_fid` (None if none is)."""
    return next((p for p in curve if p["fid"] <= target_fid), None)


def at_images(curve, images):
    """The first point at or past `images` images seen (None if the curve stops short)."""
    return next((p for p in curve if p["images_seen"] >= images), None)


def _spread(values):
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "n": len(values)} if values else None


def summarize(runs, target_fid):
    """{label: median and spread over seeds of the time and images to the target FID,
    and of the last and best FID}; runs that never reach it are counted, not timed."""
    labels = sorted({run["label"] for run in runs}, key=[r["label"] for r in runs].index)
    summary = {}
    for label in labels:
        of_label = [run for run in runs if run["label"] == label and run["curve"]]
        reached = [run["to_target"] for run in of_label if run["to_target"]]
        summary[label] = {
            "seeds": [run["seed"] for run in of_label],
            "reached_target": f"{len(reached)}/{len(of_label)}",
            # A seed that never reached the target counts as infinitely slow, so the
            # median is only a number when most seeds reached it.
            "median_train_seconds_to_target": (
                statistics.median([r["train_seconds"] for r in reached]
                                  + [float("inf")] * (len(of_label) - len(reached)))
                if of_label and target_fid else None),
            "train_seconds_to_target": _spread([r["train_seconds"] for r in reached]),
            "images_to_target": _spread([r["images_seen"] for r in reached]),
            "last_fid": _spread([run["curve"][-1]["fid"] for run in of_label]),
            "best_fid": _spread([min(p["fid"] for p in run["curve"]) for run in of_label]),
            "train_seconds": _spread([run["curve"][-1]["train_seconds"]
                                      for run in of_label]),
        }
    return summary


def plot(runs, target_fid, path):
    """FID against training minutes, one colour per label, one line per seed."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    figure, axes = plt.subplots(figsize=(8, 5), dpi=120)
    labels = sorted({run["label"] for run in runs}, key=[r["label"] for r in runs].index)
    for index, label in enumerate(labels):
        colour = f"C{index}"
        for number, run in enumerate(r for r in runs if r["label"] == label and r["curve"]):
            axes.plot([p["train_seconds"] / 60 for p in run["curve"]],
                      [p["fid"] for p in run["curve"]], color=colour, alpha=0.8,
                      linewidth=1.2, label=label if number == 0 else None)
    if target_fid:
        axes.axhline(target_fid, color="grey", linestyle="--", linewidth=1,
                     label=f"target FID {target_fid:.1f}")
    axes.set_yscale("log")
    axes.set_xscale("log")  # minutes > 0: the first evaluation comes after training
    axes.set_xlabel("training minutes (evaluation excluded)")
    axes.set_ylabel("FID (package's classifier features, 10,000 samples)")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def write_tensorboard(runs, target_fid, log_dir):
    """Each run's curve against training seconds, and its hyper-parameters and results
    in TensorBoard's HParams table (one trial per label and seed)."""
    import tensorflow as tf
    from tensorboard.plugins.hparams import api as hp
    names = sorted({k for run in runs for k in run["hparams"]})
    with tf.summary.create_file_writer(log_dir).as_default():
        hp.hparams_config(
            hparams=[hp.HParam(name) for name in names] + [hp.HParam("seed")],
            metrics=[hp.Metric("ttq/last_fid"), hp.Metric("ttq/best_fid"),
                     hp.Metric("ttq/train_seconds_to_target")])
    for run in runs:
        if not run["curve"]:
            continue
        with tf.summary.create_file_writer(
                os.path.join(log_dir, os.path.basename(run["workdir"]))).as_default():
            hp.hparams({**{k: "none" if v is None else v for k, v in run["hparams"].items()},
                        "seed": run["seed"]},
                       trial_id=os.path.basename(run["workdir"]))
            for point in run["curve"]:
                seconds = int(round(point["train_seconds"]))
                for key in ("fid", "kid", "classes_covered", "max_class_share",
                            "detector_auc"):
                    if key in point:
                        tf.summary.scalar(f"ttq/{key}_by_train_second", point[key],
                                          step=seconds)
            tf.summary.scalar("ttq/last_fid", run["curve"][-1]["fid"], step=0)
            tf.summary.scalar("ttq/best_fid", min(p["fid"] for p in run["curve"]), step=0)
            if run["to_target"]:
                tf.summary.scalar("ttq/train_seconds_to_target",
                                  run["to_target"]["train_seconds"], step=0)
