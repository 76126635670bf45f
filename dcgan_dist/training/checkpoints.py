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
import typing

import tensorflow as tf

from dcgan_dist import workdir as layout
from dcgan_dist.errors import BusyError, ConfigError, DataError, StorageError
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


class Restored(typing.NamedTuple):
    """What `restore_latest_good` found: the checkpoint restored (None: none yet), the
    damaged newer ones [(path, error)], and every checkpoint on disk then."""

    path: typing.Optional[str]
    damaged: list
    listed: list


def restore_latest_good(checkpoint, workdir):
    """Restores the newest whole checkpoint of `workdir` (workdir.latest_whole_checkpoint,
    the rule every tool follows) into `checkpoint`, whatever its list of checkpoints
    (`checkpoints/checkpoint`) says: garbled, empty or missing, or silent about one a
    kill left unlisted. Reads only: `tidy` then writes, under the run's lock.

    Returns a Restored. Raises DataError when every checkpoint is damaged and
    ConfigError when a whole one does not fit the model.
    """
    listed = layout.list_checkpoints(workdir)
    path, damaged = layout.latest_whole_checkpoint(workdir)
    if path is None:
        if damaged:
            raise DataError(
                f"Every checkpoint in {layout.checkpoint_dir(workdir)} is damaged ("
                + "; ".join(f"{os.path.basename(p)}: {e}" for p, e in damaged)
                + "); nothing was changed. Move that folder away to train from scratch.")
        return Restored(None, [], listed)
    try:
        checkpoint.restore(path).assert_existing_objects_matched()
    except (AssertionError, ValueError, tf.errors.OpError) as e:
        raise ConfigError(f"Checkpoint {path} does not fit this model configuration "
                          f"({str(e).splitlines()[0][:300]}); resume with the flags "
                          "it was written with or use a new --workdir.") from None
    return Restored(path, damaged, listed)


def tidy(workdir, restored, may_move=True):
    """After `restore_latest_good`, under the run's lock (the chief, `may_move`): drops
    what a save cut short left, moves the damaged checkpoints aside and makes the list
    of checkpoints name the files. Says what it did. Raises BusyError when another
    process wrote checkpoints since the restore (it must not be overwritten)."""
    directory = layout.checkpoint_dir(workdir)
    if may_move and layout.list_checkpoints(workdir) != restored.listed:
        raise BusyError(f"{directory} changed while this process started (another "
                        "process saved checkpoints there); run the same command again to "
                        "resume from them.")
    for bad, error in restored.damaged:
        where = f"; moved to {', '.join(_quarantine(bad, directory))}" if may_move else ""
        print(f"train | warning: checkpoint {bad} is damaged ({error}){where}", flush=True)
    if restored.damaged:
        print(f"train | warning: falling back to {restored.path}", flush=True)
    if not may_move:
        return
    for debris in glob.glob(os.path.join(glob.escape(directory),
                                         f"{layout.CHECKPOINT_NAME}-*_temp")):
        shutil.rmtree(debris, ignore_errors=True)  # no process writes here but this one
        print(f"train | warning: removed {debris}, left by a save cut short", flush=True)
    if restored.path:
        _relist(directory, restored.path)


def _relist(directory, latest):
    """Makes the list of checkpoints (what CheckpointManager reads, keeps and deletes
    by) name the files on disk up to `latest`, if it does not already. Names relative
    to `directory`, as CheckpointManager writes them, so a moved workdir still reads."""
    on_disk = [os.path.abspath(p)
               for _, p in layout.list_checkpoints(os.path.dirname(directory))]
    on_disk = on_disk[:on_disk.index(os.path.abspath(latest)) + 1]
    state = None
    try:
        state = tf.train.get_checkpoint_state(directory)
    except (tf.errors.OpError, ValueError):  # a garbled list: rewritten below
        pass
    listed = [os.path.abspath(p) for p in state.all_model_checkpoint_paths] if state else []
    if listed == on_disk and os.path.abspath(state.model_checkpoint_path) == on_disk[-1]:
        return
    names = [os.path.basename(p) for p in on_disk]
    tf.compat.v1.train.update_checkpoint_state(directory, names[-1],
                                               all_model_checkpoint_paths=names)
    print(f"train | warning: the list of checkpoints in {directory} named "
          f"{[os.path.basename(p) for p in listed] or 'none'}; rewritten from the files: "
          f"{names}", flush=True)
