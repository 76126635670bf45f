"""benchmarks/time_to_quality.py end to end on a small split: real training processes,
one stopped at its target (SIGTERM), the curves read back from metrics.jsonl, the JSON,
the plot and the TensorBoard HParams written; and the curve reader on a resumed run."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))

import curves  # noqa: E402


def _line(step, seconds, fid, **extra):
    return json.dumps({"step": step, "images_seen": step * 64, "train_seconds": seconds,
                       "fid": fid, "kid": 1.0, "classes_covered": 10,
                       "max_class_share": 0.1, "detector_auc": 0.9, **extra}) + "\n"


def test_a_resumed_run_continues_its_clock(tmp_path):
    (tmp_path / "metrics.jsonl").write_text(
        _line(10, 5.0, 90) + _line(20, 10.0, 70)
        + json.dumps({"step": 20, "fid": 69.0}) + "\n"  # evaluate's line: no clock
        + _line(30, 4.0, 50) + _line(40, 9.0, 40))  # a new process, from 0 s again
    curve = curves.read_curve(str(tmp_path))
    assert [p["train_seconds"] for p in curve] == [5.0, 10.0, 14.0, 19.0]
    assert curves.first_at_or_below(curve, 60)["step"] == 30
    assert curves.at_images(curve, 25 * 64)["step"] == 30
    assert curves.at_images(curve, 41 * 64) is None


def test_summary_counts_seeds_that_miss_the_target():
    runs = [{"label": "fast", "seed": s, "curve": [{"train_seconds": t, "images_seen": 1,
                                                    "fid": f}],
             "to_target": {"train_seconds": t, "images_seen": 1} if f <= 10 else None}
            for s, (t, f) in enumerate([(30.0, 9.0), (10.0, 8.0), (20.0, 12.0)])]
    row = curves.summarize(runs, 10.0)["fast"]
    assert row["reached_target"] == "2/3"
    assert row["median_train_seconds_to_target"] == 30.0  # 10, 30 and one miss (inf)
    assert row["train_seconds_to_target"] == {"median": 20.0, "min": 10.0, "max": 30.0,
                                              "n": 2}


@pytest.mark.slow
def test_time_to_quality_trains_stops_at_the_target_and_reports(tfds_dir, fashion_builder,
                                                                tmp_path):
    out = tmp_path / "ttq"
    common = ["--split=train[:1280]", f"--tfds_data_dir={tfds_dir}", "--eval_samples=100",
              "--eval_every_images=640", f"--out_dir={out}"]
    script = os.path.join(ROOT, "benchmarks", "time_to_quality.py")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    # The reference (article) trains its whole budget: 2 epochs of 5 steps at batch 256.
    # fast (batch 64: 20 steps an epoch) has an easy target: it stops at its first
    # evaluation (10 steps), though its budget is 2 epochs too.
    result = subprocess.run([sys.executable, script, "--recipes=article,fast",
                             "--epochs=2", "--target_fid=1000", *common],
                            capture_output=True, text=True, env=env, timeout=900, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((out / "time_to_quality.json").read_text())
    runs = {run["label"]: run for run in report["runs"]}
    # Every ceil(640 / 256) = 3 steps, and where the run ends.
    assert [p["step"] for p in runs["article"]["curve"]] == [3, 6, 9, 10]
    fast = runs["fast"]
    assert fast["curve"][0]["step"] == 10 and fast["to_target"]["step"] == 10
    stopped = open(out / "fast-s0.log").read()
    assert "stopped: SIGTERM" in stopped  # stopped by the benchmark, then saved
    assert fast["hparams"]["recipe"] == "fast" and fast["hparams"]["batch_size"] == 64
    assert all(p["train_seconds"] > 0 and "eval_seconds" in p for p in fast["curve"])
    assert report["summary"]["fast"]["reached_target"] == "1/1"
    assert report["reference_images"] == 10 * 256
    import imageio.v3 as iio
    assert iio.imread(out / "time_to_quality.png").shape[-1] in (3, 4)

    import tensorflow as tf
    tags = set()
    for root, _, files in os.walk(out / "tensorboard"):
        for name in files:
            for event in tf.compat.v1.train.summary_iterator(os.path.join(root, name)):
                tags.update(value.tag for value in event.summary.value)
    assert "_hparams_/session_start_info" in tags and "ttq/fid_by_train_second" in tags
    assert np.isfinite(fast["curve"][0]["fid"])
