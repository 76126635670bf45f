"""The layout of a training workdir, owned here: every file and folder name, and the
reading and writing of its config.json.

    WORKDIR/config.json                  the flags that shape training (a resume must match)
    WORKDIR/checkpoints/ckpt-STEP.*      tf.train.CheckpointManager's files
    WORKDIR/checkpoints/damaged/         damaged checkpoints, kept as evidence
    WORKDIR/tmp_checkpoints/WORKER/      a non-chief worker's copy, removed after each save
    WORKDIR/train/                       TensorBoard: training summaries (chief only)
    WORKDIR/eval/, WORKDIR/metrics.jsonl evaluations (TensorBoard, one JSON line each)
    WORKDIR/image_at_epoch_NNNN.png      the article's grid after each whole epoch
    WORKDIR/image_at_step_NNNNNNNN.png   the grid where a run stopped mid-epoch
    WORKDIR/dcgan.gif                    every grid, in training order

No TensorFlow at import: the commands refuse a wrong --workdir before importing it
(`checkpoint_read_error` imports it when called).
"""

import glob
import json
import os
import re

from dcgan_dist.errors import ConfigError

CONFIG_FILE = "config.json"
CHECKPOINT_FOLDER = "checkpoints"
CHECKPOINT_NAME = "ckpt"
DAMAGED_FOLDER = "damaged"
WORKER_CHECKPOINT_FOLDER = "tmp_checkpoints"
TRAIN_SUMMARIES = "train"
EVAL_SUMMARIES = "eval"
METRICS_FILE = "metrics.jsonl"
GIF_FILE = "dcgan.gif"
# {"image_shape": [H, W, C], ...} in an --export_dir (dcgan_dist.export) or in a detector's
# own folder (forensics): where `dcgan_dist.detect` reads an exported detector's shape.
EXPORT_RECORD = "export.json"
_EPOCH_GRID = "image_at_epoch_{:04d}.png"
_STEP_GRID = "image_at_step_{:08d}.png"
_GRID = re.compile(r"image_at_(epoch|step)_(\d+)\.png$")


def checkpoint_dir(workdir):
    return os.path.join(workdir, CHECKPOINT_FOLDER)


def worker_checkpoint_dir(workdir, task_type, task_id):
    """Where a non-chief worker writes its share of a collective save (then removes)."""
    return os.path.join(workdir, WORKER_CHECKPOINT_FOLDER, f"{task_type}_{task_id}")


def grid_path(workdir, epoch=None, step=None):
    """The grid after whole `epoch`, or (mid-epoch) at global `step`."""
    name = _EPOCH_GRID.format(epoch) if epoch is not None else _STEP_GRID.format(step)
    return os.path.join(workdir, name)


def grids(workdir, steps_per_epoch):
    """Every grid in `workdir` in training order (an epoch's grid at its last step)."""
    found = []
    for path in glob.glob(os.path.join(glob.escape(workdir), "image_at_*.png")):
        match = _GRID.search(path)
        if match:
            kind, number = match.group(1), int(match.group(2))
            found.append((number * steps_per_epoch if kind == "epoch" else number, path))
    return [path for _, path in sorted(found)]


def read_config(workdir):
    """The training flags recorded in WORKDIR/config.json ({} for a new workdir).

    Raises ConfigError when the file exists but cannot be read or parsed.
    """
    path = os.path.join(workdir, CONFIG_FILE)
    if not os.path.exists(path):
        return {}
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        raise ConfigError(f"{path} is unreadable ({e}); restore it or use a new "
                          "--workdir.") from None


def check_config(workdir, saved, wanted):
    """Refuses to resume `workdir` (recorded flags: `saved`) with flags (`wanted`) that
    would change the trajectory."""
    diffs = [f"--{k}={saved[k]} (this run: {wanted[k]})" for k in wanted
             if k in saved and saved[k] != wanted[k]]
    if diffs:
        raise ConfigError(f"--workdir={workdir} was trained with " + ", ".join(diffs)
                          + "; resume with the same flags or use a new --workdir.")


def write_config(workdir, fields):
    """Records `fields` once, when the workdir is new; never half-written."""
    path = os.path.join(workdir, CONFIG_FILE)
    if os.path.exists(path):
        return
    try:
        os.makedirs(workdir, exist_ok=True)
        with open(path + ".tmp", "w") as f:
            json.dump(fields, f, indent=2)
        os.replace(path + ".tmp", path)  # atomic
    except OSError as e:
        raise ConfigError(f"--workdir={workdir} cannot be written ({e}); choose a "
                          "folder you can write to.") from None


def of_checkpoint(path):
    """The workdir of checkpoint `path` (WORKDIR/checkpoints/ckpt-STEP)."""
    return os.path.dirname(os.path.dirname(os.path.abspath(path)))


def train_summaries(workdir):
    return os.path.join(workdir, TRAIN_SUMMARIES)


def checkpoint_read_error(path):
    """None if every tensor of checkpoint `path` reads back intact, else the error."""
    import tensorflow as tf
    try:
        reader = tf.train.load_checkpoint(path)
        for name in reader.get_variable_to_shape_map():
            reader.get_tensor(name)  # verifies the tensor's CRC32C
    except (tf.errors.OpError, IndexError, ValueError) as e:
        return f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"
    return None
