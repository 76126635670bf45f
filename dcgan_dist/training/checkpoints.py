"""Saving checkpoints, restoring the latest *good* one, and keeping damaged ones as
evidence.

A checkpoint cut short by a full disk or a killed copy, or with flipped bits, fails
TensorFlow's checks (sstable magic, sizes, per-tensor CRC32C) when its tensors are read.
Each candidate is read in full before it is restored, newest first: damaged ones are
moved to `checkpoints/damaged/` (so a later save at the same step cannot overwrite them)
and the run falls back to the newest one that reads cleanly. A checkpoint that reads
cleanly but does not fit the model is a configuration mistake, not damage, and is refused.
"""

import glob
import os
import shutil

import tensorflow as tf

from dcgan_dist import workdir as layout
from dcgan_dist.errors import ConfigError, DataError, StorageError
from dcgan_dist.training import strategies


def make_manager(checkpoint, workdir, strategy, keep):
    """TensorFlow's multi-worker rule: every worker saves (the save is collective), but
    only the chief's files are kept; the others write to a folder removed afterwards."""
    if strategies.is_chief(strategy):
        directory = layout.checkpoint_dir(workdir)
    else:
        directory = layout.worker_checkpoint_dir(workdir, *strategies.task_info(strategy))
    return tf.train.CheckpointManager(checkpoint, directory, max_to_keep=keep,
                                      checkpoint_name=layout.CHECKPOINT_NAME)


def save(manager, step, chief):
    """Saves checkpoint `step`; a failure leaves the previous ones intact and says so."""
    try:
        manager.save(checkpoint_number=step)
    except (tf.errors.OpError, OSError) as e:
        # TensorFlow writes into ckpt-N_temp and renames only when complete, so the
        # previous checkpoint and the list of checkpoints are untouched: drop the debris.
        shutil.rmtree(os.path.join(manager.directory,
                                   f"{layout.CHECKPOINT_NAME}-{step}_temp"),
                      ignore_errors=True)
        raise StorageError(
            f"could not save the checkpoint of step {step} in {manager.directory} "
            f"({str(e).splitlines()[0][-200:]}); free some space or use another "
            f"--workdir. The last saved checkpoint, {manager.latest_checkpoint}, is intact "
            "and the next start resumes from it.") from None
    if not chief:
        shutil.rmtree(manager.directory, ignore_errors=True)
        try:  # tmp_checkpoints/ itself, once the last worker's folder is gone
            os.rmdir(os.path.dirname(manager.directory))
        except OSError:
            pass



def _quarantine(path, directory):
    """Moves the files of checkpoint `path` into directory/damaged/, never overwriting."""
    target = os.path.join(directory, layout.DAMAGED_FOLDER)
    os.makedirs(target, exist_ok=True)
    moved = []
    for file in sorted(glob.glob(glob.escape(path) + ".*")):
        destination = os.path.join(target, os.path.basename(file))
        suffix = 1
        while os.path.exists(destination):
            destination = os.path.join(target, f"{os.path.basename(file)}.{suffix}")
            suffix += 1
        shutil.move(file, destination)
        moved.append(destination)
    return moved


def restore_latest_good(checkpoint, directory, may_move=True):
    """Restores the newest intact checkpoint in `directory` into `checkpoint`.

    Returns its path, or None when there is none yet. Damaged newer ones are reported
    and, when `may_move` (the chief), moved aside. Raises DataError when every
    checkpoint is damaged (nothing is moved then) and ConfigError when an intact one
    does not fit the model.
    """
    state = tf.train.get_checkpoint_state(directory)
    paths = list(state.all_model_checkpoint_paths) if state else []
    damaged = []
    for path in reversed(paths):
        error = layout.checkpoint_read_error(path)
        if error:
            damaged.append((path, error))
            continue
        try:
            checkpoint.restore(path).assert_existing_objects_matched()
        except (AssertionError, ValueError, tf.errors.OpError) as e:
            raise ConfigError(f"Checkpoint {path} does not fit this model configuration "
                              f"({str(e).splitlines()[0][:300]}); resume with the flags "
                              "it was written with or use a new --workdir.") from None
        if damaged:
            _report_and_move(damaged, path, directory, paths, may_move)
        return path
    if damaged:
        raise DataError(
            f"Every checkpoint in {directory} is damaged ("
            + "; ".join(f"{os.path.basename(p)}: {e}" for p, e in damaged)
            + "); nothing was changed. Move that folder away to train from scratch.")
    return None


def _report_and_move(damaged, good, directory, paths, may_move):
    for path, error in damaged:
        where = ""
        if may_move:
            where = "; moved to " + ", ".join(_quarantine(path, directory))
        print(f"train | warning: checkpoint {path} is damaged ({error}){where}",
              flush=True)
    print(f"train | warning: falling back to {good}", flush=True)
    if may_move:
        bad = {path for path, _ in damaged}
        tf.compat.v1.train.update_checkpoint_state(
            directory, good, all_model_checkpoint_paths=[p for p in paths if p not in bad])
