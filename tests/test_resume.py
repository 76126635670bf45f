"""Resuming: after SIGTERM or SIGKILL a run ends bitwise equal to an uninterrupted one;
a second Ctrl-C stops at once; a damaged latest checkpoint is survived."""

import glob
import os
import random
import shutil
import signal
import subprocess
import sys
import time

import pytest
import tensorflow as tf

from conftest import (TRAINED_STEPS_PER_EPOCH, assert_resumed_bitwise, checkpoint_values,
                      common_flags, latest_step, run_cli, snapshot)
from dcgan_dist import workdir as layout

pytestmark = pytest.mark.slow  # trains (the quick tier: -m "not slow")

STEPS_PER_EPOCH = TRAINED_STEPS_PER_EPOCH


# The runs that are interrupted and resumed below: 30 steps (3 epochs of 10), op
# determinism, a checkpoint every 4 steps, the fast recipe, whose averaged generator
# must come back bitwise too, and every DiffAugment policy, whose draws must too.
RESUMED_FLAGS = ["--epochs=3", "--deterministic", "--save_every_steps=4", "--recipe=fast",
                 "--diffaugment=color,translation,cutout"]


@pytest.fixture(scope="module")
def uninterrupted(fashion_builder, tfds_dir, tmp_path_factory):
    """The checkpoint values that every interrupted run below must end with."""
    workdir = tmp_path_factory.mktemp("uninterrupted") / "w"
    result = run_cli("dcgan_dist.train", *common_flags(tfds_dir, split="train[:640]"),
                     *RESUMED_FLAGS, f"--workdir={workdir}")
    assert result.returncode == 0, result.stderr[-3000:]
    return checkpoint_values(workdir)


def test_sigterm_saves_the_current_step_exits_75_and_resumes_bitwise(uninterrupted,
                                                                     tfds_dir, tmp_path):
    """A preempted run finishes its step, saves there, says so, and the next start
    resumes from it and ends exactly where the uninterrupted run ends."""
    workdir = tmp_path / "w"
    flags = common_flags(tfds_dir, split="train[:640]") + RESUMED_FLAGS + [
        f"--workdir={workdir}"]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    process = subprocess.Popen([sys.executable, "-m", "dcgan_dist.train", *flags],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env=env)
    try:
        deadline = time.monotonic() + 180
        while not glob.glob(str(workdir / "image_at_epoch_0001.png")):  # at step 10
            assert time.monotonic() < deadline and process.poll() is None
            time.sleep(0.05)
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 75, stderr[-3000:]
    assert "Traceback" not in stderr
    message = [line for line in stderr.splitlines() if line.startswith("stopped: SIGTERM")]
    assert message and "run the same command to resume" in message[0]
    stopped_at = int(message[0].split("at step ")[1].split(":")[0])
    assert 10 <= stopped_at < 30  # mid-run: epoch 2 or 3
    latest = tf.train.latest_checkpoint(str(workdir / "checkpoints"))
    assert latest.endswith(f"ckpt-{stopped_at}")

    resumed = run_cli("dcgan_dist.train", *flags)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"at step {stopped_at}" in resumed.stdout
    assert_resumed_bitwise(uninterrupted, workdir)


def test_a_second_ctrl_c_stops_at_once_and_keeps_the_checkpoints(trained_run, tfds_dir,
                                                                tmp_path):
    """Ctrl-C asks for a stop at the next step boundary; Ctrl-C again, while a long
    compiled call is still running, ends the process at once (status 130) without
    waiting for the call, saving nothing and leaving the saved checkpoints intact."""
    workdir = tmp_path / "w"
    shutil.copytree(trained_run[0], workdir)
    folder = str(workdir / "checkpoints")

    def saved_files():  # the checkpoints' files; the list of them ("checkpoint") grows
        return {path: digest for path, digest in snapshot(folder).items()
                if os.path.basename(path) != "checkpoint"}

    before = saved_files()
    stderr_path = tmp_path / "stderr.log"
    # Resumed at step 192: one call of 1 step, the periodic save of step 193, then one
    # call of the 63 steps up to the end of epoch 4 (tens of seconds here), during which
    # the signals arrive.
    with open(stderr_path, "w") as stderr_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "dcgan_dist.train", *common_flags(tfds_dir),
             "--epochs=4", "--steps_per_loop=64", "--save_every_steps=193",
             f"--workdir={workdir}"],
            stdout=subprocess.DEVNULL, stderr=stderr_file,
            env=dict(os.environ, PYTHONUNBUFFERED="1"))
    try:
        deadline = time.monotonic() + 180
        while not (tf.train.latest_checkpoint(folder) or "").endswith("ckpt-193"):
            assert time.monotonic() < deadline and process.poll() is None, \
                stderr_path.read_text()[-3000:]
            time.sleep(0.05)
        process.send_signal(signal.SIGINT)
        deadline = time.monotonic() + 30
        while "SIGINT: stopping after this step" not in stderr_path.read_text():
            assert time.monotonic() < deadline and process.poll() is None, \
                "no answer to the first Ctrl-C: " + stderr_path.read_text()[-3000:]
            time.sleep(0.05)
        second = time.monotonic()
        process.send_signal(signal.SIGINT)
        process.wait(timeout=60)
        seconds = time.monotonic() - second
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    stderr = stderr_path.read_text()
    assert process.returncode == 130, stderr[-3000:]
    assert seconds < 10, f"{seconds:.1f} s after the second Ctrl-C"
    assert "Traceback" not in stderr
    message = [line for line in stderr.splitlines()
               if line.startswith("stopped: Ctrl-C again")]
    assert message and "without saving" in message[0], stderr[-3000:]
    # Nothing saved after the call began; what was saved reads back whole.
    assert tf.train.latest_checkpoint(folder).endswith("ckpt-193")
    assert layout.checkpoint_read_error(tf.train.latest_checkpoint(folder)) is None
    after = saved_files()
    assert {path: after.get(path) for path in before} == before
    assert sorted(set(after) - set(before)) == sorted(
        os.path.join(folder, name) for name in
        ("ckpt-193.index", "ckpt-193.data-00000-of-00001"))


def test_damaged_latest_checkpoint_is_survived(trained_run, tfds_dir, tmp_path):
    workdir = str(tmp_path / "damaged_run")
    shutil.copytree(trained_run[0], workdir)
    latest = os.path.join(workdir, "checkpoints",
                          f"ckpt-{3 * STEPS_PER_EPOCH}.data-00000-of-00001")
    data = open(latest, "rb").read()
    open(latest, "wb").write(data[:len(data) // 3])  # a copy cut short
    # Two steps past the fallback are enough to see it train on from there.
    result = run_cli("dcgan_dist.train", *common_flags(tfds_dir), "--epochs=3",
                     f"--max_steps={2 * STEPS_PER_EPOCH + 2}", f"--workdir={workdir}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"ckpt-{3 * STEPS_PER_EPOCH} is damaged" in result.stdout
    assert f"at step {2 * STEPS_PER_EPOCH}" in result.stdout  # the previous good one
    assert tf.train.latest_checkpoint(os.path.join(workdir, "checkpoints")).endswith(
        f"ckpt-{2 * STEPS_PER_EPOCH + 2}")  # trained on from there
    evidence = os.path.join(workdir, "checkpoints", "damaged",
                            os.path.basename(latest))
    assert open(evidence, "rb").read() == data[:len(data) // 3]


def test_sigkill_at_random_steps_then_restarts_ends_bitwise_equal(uninterrupted, tfds_dir,
                                                                  tmp_path):
    """Killed hard (SIGKILL) at several random points and restarted until done, a
    --deterministic run ends with exactly the uninterrupted run's checkpoint, each
    restart saying it resumed at the newest checkpoint."""
    flags = common_flags(tfds_dir, split="train[:640]") + RESUMED_FLAGS
    pieces = tmp_path / "pieces"

    chooser = random.Random(1234)
    kills, starts, resumed_at = 0, 0, []
    while True:
        starts += 1
        assert starts <= 8, "the run never finished"
        resumed_at.append(latest_step(pieces))  # where this start must resume
        stdout = open(tmp_path / f"start{starts}.log", "w")
        process = subprocess.Popen([sys.executable, "-m", "dcgan_dist.train", *flags,
                                    f"--workdir={pieces}"], stdout=stdout,
                                   stderr=subprocess.PIPE, text=True)
        target = latest_step(pieces) + chooser.randint(1, 8)  # a kill somewhere ahead
        while process.poll() is None and latest_step(pieces) < target and kills < 3:
            time.sleep(0.05)
        if process.poll() is None and kills < 3:
            time.sleep(chooser.uniform(0, 0.5))  # land inside a step, not on a save
            process.kill()
            process.wait()
            kills += 1
            continue
        _, stderr = process.communicate(timeout=300)
        assert process.returncode == 0, stderr[-3000:]
        break
    assert kills == 3
    # Each restart after a kill said where it resumed: the newest checkpoint then.
    for number, step in enumerate(resumed_at, start=1):
        log = (tmp_path / f"start{number}.log").read_text()
        assert (f"at step {step}" in log) if step else ("resumed from" not in log), log
    assert_resumed_bitwise(uninterrupted, pieces)


# Run in the child before dcgan_dist.train: at the save of step 8, after the files of
# ckpt-8 are written and before CheckpointManager lists them, damage them as MODE says
# and SIGKILL the process: a kill inside a save.
_KILLED_IN_A_SAVE = """
import os, runpy, signal, sys
from tensorflow.python.checkpoint import checkpoint_management as management
listing = management.update_checkpoint_state_internal
def killed_while_listing(save_dir, model_checkpoint_path, *args, **kwargs):
    if model_checkpoint_path.endswith("ckpt-8") and MODE:
        if MODE == "half_written":  # what a kill within the merge of the files leaves
            index = model_checkpoint_path + ".index"
            data = open(index, "rb").read()
            open(index, "wb").write(data[:len(data) // 2])
            os.makedirs(model_checkpoint_path + "_temp")
        os.kill(os.getpid(), signal.SIGKILL)
    return listing(save_dir, model_checkpoint_path, *args, **kwargs)
management.update_checkpoint_state_internal = killed_while_listing
sys.argv = ["train", *ARGS]
runpy.run_module("dcgan_dist.train", run_name="__main__")
"""


@pytest.mark.parametrize("mode, resumed_step", [("unlisted", 8), ("half_written", 4)])
def test_a_kill_inside_a_save_then_a_restart_ends_bitwise_equal(uninterrupted, tfds_dir,
                                                                tmp_path, mode,
                                                                resumed_step):
    """SIGKILL inside the save of step 8: its files whole but unlisted (the restart
    resumes from them), or half written (the restart resumes from step 4 and keeps the
    half as evidence). The tools pick a whole checkpoint meanwhile, the restart ends
    bitwise equal to an uninterrupted run, and no save's temporary folder remains."""
    workdir = tmp_path / "w"
    args = [*common_flags(tfds_dir, split="train[:640]"), *RESUMED_FLAGS,
            f"--workdir={workdir}"]
    code = f"MODE = {mode!r}\nARGS = {args!r}\n" + _KILLED_IN_A_SAVE
    killed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=600)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    checkpoints = workdir / "checkpoints"
    assert latest_step(workdir) == 4  # the list never named ckpt-8
    assert (checkpoints / "ckpt-8.index").exists()
    assert layout.resolve_checkpoint(str(workdir)).endswith(f"ckpt-{resumed_step}")
    restarted = run_cli("dcgan_dist.train", *args)
    assert restarted.returncode == 0, restarted.stderr[-3000:]
    assert f"at step {resumed_step}" in restarted.stdout
    assert not glob.glob(str(checkpoints / "*_temp"))
    if mode == "half_written":
        assert (checkpoints / "damaged" / "ckpt-8.index").exists()
    assert_resumed_bitwise(uninterrupted, workdir)
