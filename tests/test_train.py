"""End to end: the CLI in real processes on real Fashion-MNIST (Debian's files via tfds)."""

import glob
import json
import os
import resource
import shutil
import signal
import subprocess
import sys

import imageio.v3 as iio
import numpy as np
import pytest
import tensorflow as tf

from conftest import TRAINED_STEPS_PER_EPOCH, common_flags, run_cli
from dcgan_dist import models, rng
from dcgan_dist import workdir as layout
from dcgan_dist.training import settings, train_step

pytestmark = pytest.mark.slow  # trains (the quick tier: -m "not slow")

STEPS_PER_EPOCH = TRAINED_STEPS_PER_EPOCH
# --steps_per_loop=auto at the shared run's global batch of 64: steps per compiled call.
PER_CALL = settings.IMAGES_PER_CALL // 64


def read_events(folder):
    """{tag: [(step, value)]} from the real TensorBoard event files in `folder`."""
    values = {}
    for path in sorted(glob.glob(os.path.join(folder, "events.out.tfevents.*"))):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                values.setdefault(value.tag, []).append(
                    (event.step, tf.make_ndarray(value.tensor)))
    return values


def test_run_writes_checkpoints_grids_gif_and_summaries(trained_run):
    workdir, stdout = trained_run
    epoch_lines = [line for line in stdout.splitlines() if "| epoch:" in line]
    assert [line.split("| epoch: ")[1].split(" ")[0] for line in epoch_lines] == \
        ["1/3", "2/3", "3/3"]
    assert all("images/sec:" in line and "g_loss:" in line for line in epoch_lines)

    assert tf.train.latest_checkpoint(os.path.join(workdir, "checkpoints")).endswith(
        f"ckpt-{3 * STEPS_PER_EPOCH}")
    # Every 2 epochs (as asked) and at the end.
    assert os.path.exists(os.path.join(workdir, "checkpoints",
                                       f"ckpt-{2 * STEPS_PER_EPOCH}.index"))
    assert not os.path.exists(os.path.join(workdir, "checkpoints",
                                           f"ckpt-{STEPS_PER_EPOCH}.index"))

    grids = sorted(glob.glob(os.path.join(workdir, "image_at_epoch_*.png")))
    assert [os.path.basename(g) for g in grids] == [
        f"image_at_epoch_{e:04d}.png" for e in (1, 2, 3)]
    pictures = [iio.imread(g) for g in grids]
    assert all(p.dtype == np.uint8 and p.shape == pictures[0].shape for p in pictures)
    assert pictures[0].shape[0] >= 4 * 28 and pictures[0].std() > 5
    assert not np.array_equal(pictures[0], pictures[2])  # the samples changed
    gif = iio.imread(os.path.join(workdir, "dcgan.gif"), index=None)
    assert gif.shape[0] == 3

    events = read_events(os.path.join(workdir, "train"))
    for tag in train_step.METRICS:  # one summary per compiled call, at its last step
        steps = [step for step, _ in events[tag]]
        assert steps == list(range(PER_CALL, 3 * STEPS_PER_EPOCH + 1, PER_CALL))
        assert all(np.isfinite(value) for _, value in events[tag])
    d_real = [float(v) for _, v in events["d_real"]]
    assert all(0 < v < 1 for v in d_real)
    assert [step for step, _ in events["images_per_sec"]] == [
        STEPS_PER_EPOCH, 2 * STEPS_PER_EPOCH, 3 * STEPS_PER_EPOCH]
    assert all(float(v) > 0 for _, v in events["epoch_time_sec"])
    assert len(events["samples"]) == 3


def _generator_from(checkpoint_path):
    generator = models.make_generator_model(seed=0)  # the runs' --seed
    if checkpoint_path:
        tf.train.Checkpoint(generator=generator).restore(checkpoint_path).expect_partial()
    return generator


def _distance_to_data(generator, real):
    """How far samples are from real images: the RMS gap between the mean images plus
    the 1-Wasserstein distance between the pixel-value distributions."""
    noise = rng.normal_rows([len(real), models.NOISE_DIM], [42, 0])
    fake = generator(noise, training=False).numpy()
    mean_gap = np.sqrt(np.mean((fake.mean(axis=0) - real.mean(axis=0)) ** 2))
    pixels = np.sort(fake.ravel()[::7]), np.sort(real.ravel()[::7])
    return mean_gap + np.mean(np.abs(pixels[0] - pixels[1]))


def test_short_run_learns(trained_run, fashion_builder):
    """Generated images move toward the data; the untrained generator is far from it."""
    workdir, _ = trained_run
    real = np.stack([((ex["image"].numpy().astype(np.float32) - 127.5) / 127.5)
                     for ex in fashion_builder.as_dataset(split="test[:1000]")])
    # The untrained generator is the trained one's starting point (same seed).
    untrained = _distance_to_data(_generator_from(None), real)
    trained = _distance_to_data(
        _generator_from(tf.train.latest_checkpoint(os.path.join(workdir, "checkpoints"))),
        real)
    print(f"distance to data: untrained {untrained:.3f}, trained {trained:.3f}")
    # Measured: 1.36 -> 0.83 after these 192 steps; the article's own loop (Keras
    # Dropout, one device, same steps and batch) reaches 0.95.
    assert trained < 0.75 * untrained


def test_restart_resumes_from_the_checkpoint(trained_run, tfds_dir, tmp_path):
    workdir = str(tmp_path / "resumed")
    shutil.copytree(trained_run[0], workdir)
    # With TensorFlow's log of tf.data's autotuning threads on (model.cc logs each wait).
    result = run_cli("dcgan_dist.train", *common_flags(tfds_dir), "--epochs=4",
                     f"--workdir={workdir}",
                     env={"TF_CPP_MIN_LOG_LEVEL": "0", "TF_CPP_VMODULE": "model=2"})
    assert result.returncode == 0, result.stderr[-3000:]
    # No input pipeline of the run has an autotuning thread: in TensorFlow 2.21 deleting
    # an iterator waits out its thread's optimization period, up to a minute idle at the
    # end of a run (pipeline.without_autotuning, strategies.input_options).
    waits = [line for line in result.stderr.splitlines() if "Waiting for" in line]
    assert not waits, waits[:3]
    # --precision=auto keeps the workdir's precision (settings.resolve, tested in
    # test_hardware.py with a workdir of another precision than this CPU's): bf16 or fp32,
    # as this CPU chose for the shared run.
    with open(os.path.join(workdir, layout.CONFIG_FILE)) as f:
        trained_precision = json.load(f)["precision"]
    assert trained_precision in ("bf16", "fp32")
    assert (f"auto: precision {trained_precision} (the workdir was trained with it)"
            in result.stdout)
    assert f"at step {3 * STEPS_PER_EPOCH}" in result.stdout
    epoch_lines = [line for line in result.stdout.splitlines() if "| epoch:" in line]
    assert len(epoch_lines) == 1 and "epoch: 4/4" in epoch_lines[0]
    assert tf.train.latest_checkpoint(os.path.join(workdir, "checkpoints")).endswith(
        f"ckpt-{4 * STEPS_PER_EPOCH}")
    events = read_events(os.path.join(workdir, "train"))
    steps = [step for step, _ in events["g_loss"]]
    # No call twice, none lost.
    assert steps == list(range(PER_CALL, 4 * STEPS_PER_EPOCH + 1, PER_CALL))
    assert len(glob.glob(os.path.join(workdir, "image_at_epoch_*.png"))) == 4
    assert iio.imread(os.path.join(workdir, "dcgan.gif"), index=None).shape[0] == 4




def test_divergence_exits_5_and_saves_nothing(tfds_dir, tmp_path):
    workdir = tmp_path / "w"
    result = run_cli("dcgan_dist.train", *common_flags(tfds_dir, split="train[:640]"),
                     "--learning_rate=1e30", f"--workdir={workdir}")
    assert result.returncode == 5, result.stderr[-3000:]
    assert "non-finite" in result.stderr and "--on_nan=rollback" in result.stderr
    assert "Traceback" not in result.stderr
    assert tf.train.latest_checkpoint(str(workdir / "checkpoints")) is None
    assert not glob.glob(str(workdir / "image_at_epoch_*.png"))


def _limit_file_size():
    # Files may not grow past 8 MB in the child, as on a disk that fills up mid-save
    # (a checkpoint of this model is ~30 MB); writes then fail instead of signalling.
    resource.setrlimit(resource.RLIMIT_FSIZE, (8 << 20, 8 << 20))
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)


def test_a_save_that_fails_keeps_the_previous_checkpoint(trained_run, tfds_dir, tmp_path):
    workdir = str(tmp_path / "full_disk")
    shutil.copytree(trained_run[0], workdir)
    previous = tf.train.latest_checkpoint(os.path.join(workdir, "checkpoints"))
    result = subprocess.run(
        [sys.executable, "-m", "dcgan_dist.train", *common_flags(tfds_dir), "--epochs=4",
         f"--max_steps={3 * STEPS_PER_EPOCH + 2}", f"--workdir={workdir}"],
        capture_output=True, text=True, timeout=600,
        preexec_fn=_limit_file_size)
    assert result.returncode == 6, result.stderr[-3000:]
    assert "could not save the checkpoint of step" in result.stderr
    assert f"{previous}, is intact" in result.stderr and "Traceback" not in result.stderr
    assert tf.train.latest_checkpoint(os.path.join(workdir, "checkpoints")) == previous
    assert layout.checkpoint_read_error(previous) is None
    assert not glob.glob(os.path.join(workdir, "checkpoints", "*_temp"))


def test_old_checkpoints_go_and_summaries_equal_the_printed_metrics(tfds_dir, tmp_path):
    """--keep_checkpoints=2 leaves the two newest checkpoints; each epoch line prints the
    mean of the per-step summaries TensorBoard holds for that epoch (one step per call
    here, so there is one summary per step)."""
    workdir = tmp_path / "w"
    result = run_cli("dcgan_dist.train", *common_flags(tfds_dir, split="train[:640]"),
                     "--epochs=4", "--checkpoint_every_epochs=1", "--keep_checkpoints=2",
                     "--steps_per_loop=1", f"--workdir={workdir}")
    assert result.returncode == 0, result.stderr[-3000:]
    steps = 640 // 64
    names = sorted(os.listdir(workdir / "checkpoints"))
    assert [n for n in names if n.endswith(".index")] == [
        f"ckpt-{3 * steps}.index", f"ckpt-{4 * steps}.index"]
    events = read_events(str(workdir / "train"))
    lines = [line for line in result.stdout.splitlines() if "| epoch:" in line]
    assert len(lines) == 4
    for epoch, line in enumerate(lines, start=1):
        printed = {part.split(": ")[0]: float(part.split(": ")[1])
                   for part in line.split(" | ") if part.split(": ")[0] in train_step.METRICS}
        assert set(printed) == set(train_step.METRICS)
        for name, value in printed.items():
            logged = [float(v) for step, v in events[name]
                      if (epoch - 1) * steps < step <= epoch * steps]
            assert len(logged) == steps
            assert np.mean(logged) == pytest.approx(value, abs=6e-5), (epoch, name)
