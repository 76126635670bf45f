"""What a run is, owned here: every file and folder name of a training workdir, its
record (config.json), its lock, and which of its checkpoints is the latest whole one.
Training and every tool (generate, evaluate, export, detect, forensics) ask this module.

    WORKDIR/config.json                  the run's record: the flags that shape training
                                         (a resume must match), written whole, and only
                                         after the restore check passed
    WORKDIR/lock                         held by the one process that writes the run
                                         (its pid and host inside; files.hold)
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
import numbers
import os
import re
import sys

from dcgan_dist import files, shapes
from dcgan_dist.errors import ConfigError, DataError, StorageError
from dcgan_dist.options import DEFAULT_DATASET

CONFIG_FILE = "config.json"
CHECKPOINT_FOLDER = "checkpoints"
CHECKPOINT_NAME = "ckpt"
LOCK_FILE = "lock"
# The averaged generator's name in a checkpoint: train_step.TrainState saves its field
# under this key, and the tools restore it by the same name.
AVERAGED_KEY = "generator_ema"
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


# The record's fields and the types they must hold; fields not named here (from a later
# version) are kept as they are. None: not recorded, or (image_size, channels) "the
# data's own" in a record from before shapes were recorded.
_TEXT, _INT, _NUMBER = (str,), (numbers.Integral,), (numbers.Real,)
_BOOL, _TEXTS = (bool,), (list,)  # true or false; a list of texts
_RECORD_TYPES = {
    "recipe": _TEXT, "generator": _TEXT, "dataset": _TEXT, "split": _TEXT,
    "precision": _TEXT, "data_dir": _TEXT, "diffaugment": _TEXT, "seed": _INT, "image_size": _INT,
    "channels": _INT, "batch_size": _INT, "g_learning_rate": _NUMBER,
    "d_learning_rate": _NUMBER, "beta1": _NUMBER, "beta2": _NUMBER, "ema_decay": _NUMBER,
    "ema_halflife_images": _NUMBER, "ema_rampup": _NUMBER, "conditional": _BOOL,
    "conditioning": _TEXT, "class_loss": _NUMBER, "num_classes": _INT,
    "class_names": _TEXTS,
}
_TYPE_NAMES = {_TEXT: "text", _INT: "number", _NUMBER: "number", _BOOL: "true or false",
               _TEXTS: "list of texts"}


def _of_type(value, types):
    if types is _BOOL:
        return isinstance(value, bool)
    if types is _TEXTS:
        return isinstance(value, list) and all(isinstance(v, str) for v in value)
    return not isinstance(value, bool) and isinstance(value, types)


def _check_record(path, record):
    if not isinstance(record, dict):
        raise ConfigError(f"{path} holds {type(record).__name__} {str(record)[:40]}, "
                          "not a run's record (a JSON object of flags); restore the file "
                          "training wrote or use a new --workdir.")
    for key, types in _RECORD_TYPES.items():
        value = record.get(key)
        if value is not None and not _of_type(value, types):
            raise ConfigError(f"{path} records {key} as {json.dumps(value)[:60]}, not a "
                              f"{_TYPE_NAMES[types]}; restore the file training wrote or "
                              "use a new --workdir.")
    if record.get("num_classes") is not None and record.get("class_names") is not None \
            and record["num_classes"] != len(record["class_names"]):
        raise ConfigError(f"{path} records {record['num_classes']} classes but names "
                          f"{len(record['class_names'])}; restore the file training wrote "
                          "or use a new --workdir.")
    return record


def read_config(workdir):
    """The run's record, WORKDIR/config.json ({} for a new workdir).

    Raises ConfigError when the file exists but cannot be read, is not JSON, or holds
    something other than a record with values of the right types.
    """
    path = os.path.join(workdir, CONFIG_FILE)
    if not os.path.exists(path):
        return {}
    try:
        with open(path) as f:
            record = json.load(f)
    except (OSError, ValueError) as e:
        raise ConfigError(f"{path} is unreadable ({e}); restore it or use a new "
                          "--workdir.") from None
    return _check_record(path, record)


def record_shape(record):
    """(H, W, C) of a run's images from its record: 28x28x1, the article's, for a run
    recorded before shapes were (the one place that fallback is made)."""
    return (record.get("image_size") or shapes.DEFAULT_SHAPE[0],
            record.get("image_size") or shapes.DEFAULT_SHAPE[1],
            record.get("channels") or shapes.DEFAULT_SHAPE[-1])


def record_classes(record):
    """A conditional run's class names, in label order; None for an unconditional run
    (or one recorded before conditioning existed)."""
    if not record.get("conditional"):
        return None
    return record.get("class_names") or [str(k) for k in range(record.get("num_classes")
                                                               or 0)]


def record_data(record, dataset=None, data_dir=None):
    """(dataset, data_dir) of a tool's real images: the flags given, else the data the
    run trained on (its --data_dir too, unless another --dataset is given)."""
    if dataset or data_dir:
        return dataset or record.get("dataset", DEFAULT_DATASET), data_dir
    return record.get("dataset", DEFAULT_DATASET), record.get("data_dir")


def checkpoint_record(path):
    """The record of the run that wrote checkpoint `path`. A checkpoint inside a
    workdir whose config.json is gone is refused: its shape and architecture are not
    known, and guessing the article's would misread it."""
    workdir = of_checkpoint(path)
    record = read_config(workdir)
    if not record and os.path.basename(os.path.dirname(os.path.abspath(path))) \
            == CHECKPOINT_FOLDER:
        raise ConfigError(f"{os.path.join(workdir, CONFIG_FILE)} is missing, so the "
                          f"networks of {path} are unknown; restore that file (a copy "
                          "of the run's record) or pass a workdir that has one.")
    return record


def check_config(workdir, saved, wanted):
    """Refuses to resume `workdir` (recorded flags: `saved`) with flags (`wanted`) that
    would change the trajectory."""
    diffs = [f"--{k}={saved[k]} (this run: {wanted[k]})" for k in wanted
             if k in saved and saved[k] != wanted[k]]
    if diffs:
        raise ConfigError(f"--workdir={workdir} was trained with " + ", ".join(diffs)
                          + "; resume with the same flags or use a new --workdir.")


def write_config(workdir, fields):
    """Records `fields` once, when the workdir is new; written whole."""
    path = os.path.join(workdir, CONFIG_FILE)
    if os.path.exists(path):
        return
    try:
        files.write_json(path, fields)
    except OSError as e:
        raise StorageError(f"--workdir={workdir} cannot be written ({e}); free some "
                           "space or choose a folder you can write to.") from None


def hold(workdir, what):
    """Takes the run's lock for this process (see files.hold), creating the workdir:
    the one writer of a run. Raises BusyError naming a live holder, StorageError when
    the workdir cannot be written."""
    try:
        os.makedirs(workdir, exist_ok=True)
        return files.hold(os.path.join(workdir, LOCK_FILE), what)
    except OSError as e:
        raise StorageError(f"--workdir={workdir} cannot be written ({e}); choose a "
                           "folder you can write to.") from None


def of_checkpoint(path):
    """The workdir of checkpoint `path` (WORKDIR/checkpoints/ckpt-STEP)."""
    return os.path.dirname(os.path.dirname(os.path.abspath(path)))


_STEP = re.compile(rf"{CHECKPOINT_NAME}-(\d+)\.index$")


def list_checkpoints(workdir):
    """[(step, checkpoint path)] of the checkpoint files in WORKDIR/checkpoints, oldest
    first, whether or not the list file (`checkpoints/checkpoint`) names them: the list
    can be garbled, and a kill between a save and its listing leaves one unnamed.
    Damaged checkpoints moved to checkpoints/damaged/ are not listed."""
    found = []
    for index in glob.glob(os.path.join(glob.escape(checkpoint_dir(workdir)),
                                        f"{CHECKPOINT_NAME}-*.index")):
        match = _STEP.search(index)
        if match:
            found.append((int(match.group(1)), index[:-len(".index")]))
    return sorted(found)


def latest_whole_checkpoint(workdir):
    """(the newest checkpoint of `workdir` that reads back whole, or None;
    [(path, error)] of the damaged ones newer than it, newest first).

    The one decision of which checkpoint is "the latest", for training and every tool.
    """
    damaged = []
    for _, path in reversed(list_checkpoints(workdir)):
        error = checkpoint_read_error(path)
        if not error:
            return path, damaged
        damaged.append((path, error))
    return None, damaged


def resolve_checkpoint(workdir, name=None, whole=True):
    """The checkpoint path of `name` in `workdir`; by default the latest whole one (a
    warning on stderr names each damaged newer one it skipped). whole=False: the newest
    file without reading it, for what needs only the run's record (checkpoint_record),
    so that a command can check its other inputs before it imports TensorFlow.

    `name` may be a path, a checkpoint file prefix in WORKDIR/checkpoints (ckpt-640) or a
    step (640). Raises ConfigError for a missing workdir, DataError for a missing or
    damaged checkpoint, each with a sentence that says what to pass instead.
    """
    if not os.path.isdir(workdir):
        raise ConfigError(f"--workdir={workdir} is not a folder; pass the --workdir that "
                          "training wrote.")
    available = list_checkpoints(workdir)
    if not available:
        raise DataError(f"{workdir} holds no checkpoint (no "
                        f"{os.path.join(checkpoint_dir(workdir), 'ckpt-STEP.index')}); "
                        "train first or pass the --workdir that training wrote.")
    if not name and not whole:
        return available[-1][1]
    if not name:
        path, damaged = latest_whole_checkpoint(workdir)
        if path is None:
            raise DataError(f"every checkpoint of {workdir} is damaged ("
                            + "; ".join(f"{os.path.basename(p)}: {e}" for p, e in damaged)
                            + "); resume training to move them aside, or retrain.")
        for bad, error in damaged:
            print(f"warning: checkpoint {bad} is damaged ({error}); using {path}.",
                  file=sys.stderr, flush=True)
        return path
    for step, path in available:
        if name in (path, str(step), os.path.basename(path)):
            return path
    if os.path.isfile(name + ".index"):
        return name
    steps = ", ".join(str(step) for step, _ in available)
    raise DataError(f"--checkpoint={name} is not a checkpoint of {workdir}; it holds the "
                    f"steps {steps} (pass one of them, or a checkpoint path).")


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
