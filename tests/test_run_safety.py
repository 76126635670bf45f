"""A run is never silently lost or changed: one writer per workdir, checkpoints found
however their list is damaged, the record checked before anything is written, a full
disk, a read-only folder and signals at start-up each with their status and one line.

The accidents are the ones users met (issue 24); each test runs the real command on a
copy of the shared trained run (3 epochs of 64 steps, checkpoints at 128 and 192).
"""

import glob
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import TRAINED_STEPS_PER_EPOCH, common_flags, run_cli, snapshot
from dcgan_dist import files, images
from dcgan_dist import workdir as layout
from dcgan_dist.errors import BusyError, ConfigError

LAST_STEP = 3 * TRAINED_STEPS_PER_EPOCH  # the trained run's latest checkpoint


def _copy(trained_run, tmp_path):
    workdir = tmp_path / "workdir"
    shutil.copytree(trained_run[0], workdir)
    return workdir


def _checkpoint_files(workdir):
    return {path: digest for path, digest in snapshot(workdir).items()
            if os.path.basename(path).startswith("ckpt-")}


def _one_line(stderr, prefix="error:"):
    """The command's one reason line (TensorFlow's own log lines aside)."""
    assert "Traceback" not in stderr, stderr[-3000:]
    reasons = [line for line in stderr.splitlines()
               if line.startswith(("error:", "stopped:"))]
    assert len(reasons) == 1 and reasons[0].startswith(prefix), stderr[-3000:]
    return reasons[0]


def test_a_garbled_list_of_checkpoints_resumes_from_the_newest_file(trained_run,
                                                                   tfds_dir, tmp_path):
    """TensorFlow ignores a garbled list, and the run used to restart from step 0 and
    write over the earlier checkpoints."""
    workdir = _copy(trained_run, tmp_path)
    (workdir / "checkpoints" / "checkpoint").write_text("garbled")
    before = _checkpoint_files(workdir)
    result = run_cli("dcgan_dist.train", *common_flags(tfds_dir), "--epochs=4",
                     f"--max_steps={LAST_STEP + 2}", f"--workdir={workdir}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "rewritten from the files" in result.stdout
    assert f"resumed from {workdir}/checkpoints/ckpt-{LAST_STEP} at step {LAST_STEP}" \
        in result.stdout
    after = _checkpoint_files(workdir)
    assert {path: after.get(path) for path in before} == before  # none changed
    assert any(path.endswith(f"ckpt-{LAST_STEP + 2}.index") for path in after)


def test_a_second_writer_is_refused_naming_the_holder(trained_run, tfds_dir, tmp_path):
    workdir = _copy(trained_run, tmp_path)
    with layout.hold(str(workdir), "train"):  # this process: a live run
        before = snapshot(workdir)
        result = run_cli("dcgan_dist.train", *common_flags(tfds_dir), "--epochs=4",
                         f"--workdir={workdir}")
        assert result.returncode == BusyError.exit_code, result.stderr[-3000:]
        line = _one_line(result.stderr)
        assert f"is in use by pid {os.getpid()} on host" in line
        assert snapshot(workdir) == before


@pytest.mark.slow
def test_the_lock_dies_with_its_process(tmp_path):
    """A run killed with SIGKILL leaves its lock file, but not its lock."""
    holder = subprocess.run(
        [sys.executable, "-c", "import os, signal; from dcgan_dist import workdir; "
         f"workdir.hold({str(tmp_path)!r}, 'train'); os.kill(os.getpid(), signal.SIGKILL)"],
        capture_output=True, text=True, timeout=60)
    assert holder.returncode == -signal.SIGKILL, holder.stderr
    assert "(train)" in (tmp_path / layout.LOCK_FILE).read_text()
    with layout.hold(str(tmp_path), "train"):
        assert f"pid {os.getpid()} " in (tmp_path / layout.LOCK_FILE).read_text()
        with pytest.raises(BusyError, match=f"in use by pid {os.getpid()} "):
            files.hold(str(tmp_path / layout.LOCK_FILE), "train")  # another descriptor


def test_checkpoints_without_their_record_are_refused(trained_run, tfds_dir, tmp_path):
    """Without config.json the flags that made the checkpoints are unknown: training
    with others used to restore them in part and rewrite the record; the tools assumed
    28x28x1."""
    workdir = _copy(trained_run, tmp_path)
    (workdir / layout.CONFIG_FILE).unlink()
    before = snapshot(workdir)
    generated = run_cli("dcgan_dist.generate", f"--workdir={workdir}",
                        f"--npz={tmp_path / 's.npz'}")
    assert generated.returncode == ConfigError.exit_code, generated.stderr[-3000:]
    assert "config.json is missing" in _one_line(generated.stderr)
    result = run_cli("dcgan_dist.train", *common_flags(tfds_dir), "--recipe=article",
                     "--epochs=4", f"--workdir={workdir}")
    assert result.returncode == ConfigError.exit_code, result.stderr[-3000:]
    assert "holds checkpoints but no config.json" in _one_line(result.stderr)
    assert snapshot(workdir) == before and not (tmp_path / "s.npz").exists()


@pytest.mark.parametrize("record, message", [
    ([], "holds list"), (None, "holds NoneType"),
    ({"image_size": "64"}, 'records image_size as "64", not a number'),
    ({"generator": 3}, "records generator as 3, not a text"),
    ({"conditional": "yes"}, 'records conditional as "yes", not a true or false'),
    ({"class_names": ["Coat", 3]}, "not a list of texts"),
    ({"conditional": True, "num_classes": 3, "class_names": ["a", "b"]},
     "records 3 classes but names 2"),
])
def test_a_record_of_the_wrong_type_is_refused(tmp_path, record, message):
    (tmp_path / layout.CONFIG_FILE).write_text(json.dumps(record))
    with pytest.raises(ConfigError, match=message):
        layout.read_config(str(tmp_path))


def test_a_disk_full_at_the_grid_exits_6_with_the_checkpoints_whole(trained_run,
                                                                    tfds_dir, tmp_path):
    """A full disk hits the epoch's grid before its checkpoint (the file-size limit
    stands in for it: the same failed write). It used to end in a traceback."""
    workdir = _copy(trained_run, tmp_path)
    before = _checkpoint_files(workdir)

    def small_files():  # writes past 4 KiB fail with EFBIG (Python ignores SIGXFSZ)
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))

    result = subprocess.run(
        [sys.executable, "-m", "dcgan_dist.train", *common_flags(tfds_dir), "--epochs=4",
         f"--workdir={workdir}"], capture_output=True, text=True, timeout=600,
        preexec_fn=small_files, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert result.returncode == 6, result.stderr[-3000:]
    line = _one_line(result.stderr)
    assert "image_at_epoch_0004.png" in line and f"ckpt-{LAST_STEP}" in line
    assert _checkpoint_files(workdir) == before
    assert not glob.glob(str(workdir / ".*.tmp")) and not glob.glob(
        str(workdir / "image_at_epoch_0004.png"))


@pytest.mark.slow
def test_a_read_only_workdir_exits_6_before_writing(tfds_dir):
    """/sys/kernel: a folder that exists and that nobody, root included, can write (the
    tests run as root, whom a folder's mode does not stop). The first write of a run,
    new or resumed, is its lock: it fails there, before the summary writer that used to
    fail with a traceback on an existing run, and before config.json."""
    result = run_cli("dcgan_dist.train", *common_flags(tfds_dir), "--max_steps=1",
                     "--workdir=/sys/kernel")
    assert result.returncode == 6, result.stderr[-3000:]
    line = _one_line(result.stderr)
    assert "--workdir=/sys/kernel cannot be written" in line and "/sys/kernel/lock" in line


@pytest.mark.slow
@pytest.mark.parametrize("signum, status", [(signal.SIGTERM, 75), (signal.SIGINT, 130)])
def test_a_signal_during_start_up_exits_with_its_status(tfds_dir, tmp_path, signum,
                                                        status):
    """Before training's own handling begins (imports, data, building, restoring)."""
    workdir = tmp_path / "new"

    def as_from_a_terminal():  # a shell's background job would hand SIGINT on ignored
        signal.signal(signal.SIGINT, signal.SIG_DFL)

    process = subprocess.Popen(
        [sys.executable, "-m", "dcgan_dist.train", *common_flags(tfds_dir),
         f"--workdir={workdir}"], stderr=subprocess.PIPE, text=True,
        preexec_fn=as_from_a_terminal, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    time.sleep(2)  # inside the imports: TensorFlow alone takes ~3 s
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == status, stderr[-3000:]
    assert "nothing was half written" in _one_line(stderr, "stopped:")
    assert not workdir.exists()


# A command whose Ctrl-C lands inside code run by PyRun_String, as TensorFlow's and
# optree's pybind11 eval run it while importing: CI saw -2 instead of 130 there.
_INTERRUPTED_IN_EVAL = """
import ctypes
from dcgan_dist import cli

def body():
    run = ctypes.pythonapi.PyRun_String
    run.argtypes = [ctypes.c_char_p, ctypes.c_int, ctypes.py_object, ctypes.py_object]
    run.restype = ctypes.py_object
    print("ready", flush=True)
    run(b"import time\\nwhile True: time.sleep(0.01)\\n", 257, {}, {})  # Py_file_input

cli.run(body)
"""


def test_ctrl_c_inside_evaluated_code_still_exits_130(tmp_path):
    """CPython ends a `python -m` process with SIGINT after finalising when a plain
    KeyboardInterrupt passed out of PyRun_String, even one caught and turned into
    sys.exit(130); cli.run raises its own subclass, which it lets be."""
    (tmp_path / "interrupted_in_eval.py").write_text(_INTERRUPTED_IN_EVAL)
    process = subprocess.Popen(
        [sys.executable, "-m", "interrupted_in_eval"], cwd=tmp_path, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        env={**os.environ, "PYTHONPATH": os.pathsep.join(
            [os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
             os.environ.get("PYTHONPATH", "")])})
    assert process.stdout.readline() == "ready\n"
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr[-3000:]
    assert "nothing was half written" in _one_line(stderr, "stopped:")


def test_the_gif_leaves_out_a_damaged_grid_and_names_it(tmp_path, capsys):
    """A grid cut short by a kill used to fail every later run at the GIF."""
    for epoch in (1, 2, 3):
        images.save_grid(np.zeros((16, 28, 28, 1)) + epoch / 4,
                         layout.grid_path(str(tmp_path), epoch))
    cut = layout.grid_path(str(tmp_path), 3)
    data = open(cut, "rb").read()
    open(cut, "wb").write(data[:len(data) // 2])
    path = images.save_gif(str(tmp_path), steps_per_epoch=10)
    import imageio.v3 as iio
    assert iio.imread(path, index=None).shape[0] == 2
    assert "image_at_epoch_0003.png is damaged" in capsys.readouterr().err


def test_a_torn_metrics_line_is_dropped_and_the_next_one_kept(tmp_path):
    path = str(tmp_path / layout.METRICS_FILE)
    files.append_line(path, json.dumps({"step": 1}))
    with open(path, "a") as f:
        f.write('{"step": 2, "fi')  # a kill inside the append
    files.append_line(path, json.dumps({"step": 3}))
    assert files.read_json_lines(path) == [{"step": 1}, {"step": 3}]
