"""Preparing a tfds dataset of a local folder once, whatever else runs at the same time:
two first starts on one folder (two terminals, a job's workers) take turns through a
lock beside the prepared copy; the second waits, then uses what the first prepared. A
preparation killed half way leaves tfds' `incomplete.*` folder, removed by the next.

Callers check and decode their folder before calling `prepare_once`, so bad data writes
nothing here, the lock file included.
"""

import glob
import os
import shutil
import sys

from dcgan_dist import files
from dcgan_dist.errors import BusyError, DataError

LOCK_FILE = ".prepare.lock"  # in the prepared folder's parent, beside its version folder


def is_prepared(version_dir):
    return os.path.isfile(os.path.join(version_dir, "dataset_info.json"))


def prepare_once(version_dir, what, prepare):
    """Runs `prepare()` (a tfds download_and_prepare that writes `version_dir`) unless
    another process has prepared it, or is preparing it: then waits for that one.
    what: the folder, as the log and errors name it."""
    lock = os.path.join(os.path.dirname(version_dir), LOCK_FILE)
    if is_prepared(version_dir):
        return
    with _take_turn(lock, what):
        if is_prepared(version_dir):  # another process prepared it while we waited
            return
        for debris in glob.glob(os.path.join(os.path.dirname(version_dir),
                                             "incomplete.*")):
            shutil.rmtree(debris, ignore_errors=True)  # of a preparation killed
        prepare()


def _take_turn(lock, what):
    """Holds `lock` (files.hold), waiting while another process prepares. DataError
    when the lock cannot be created (a read-only --tfds_data_dir)."""
    try:
        os.makedirs(os.path.dirname(lock), exist_ok=True)
        try:
            return files.hold(lock, f"preparing {what}")
        except BusyError:
            print(f"data | waiting for {files.describe_holder(lock)}; this process reads "
                  "what it prepares", file=sys.stderr, flush=True)
            return files.hold(lock, f"preparing {what}", wait=True)
    except OSError as e:
        raise DataError(f"{what} cannot be prepared into {os.path.dirname(lock)} "
                        f"({e.strerror or e}); pass --tfds_data_dir=FOLDER that you can "
                        "write to.") from None
