"""Errors a user can act on, and the exit status of each: the one list of them.

Library code raises these with a sentence that says what was wrong and what to do; the
command-line entry points turn them into one line on stderr and a non-zero exit status
instead of a traceback. Every command exits with:

    0    done
    1    anything unexpected (a traceback)
    2    a bad flag or value, or a workdir that doesn't fit the flags    ConfigError
    3    missing or malformed data (or checkpoints)                      DataError
    4    a worker of a multi-worker job was lost: restart the job        WorkerLostError
    5    a NaN or infinite loss; nothing after it was saved              NonFiniteError
    6    a file of the run could not be written (a full disk, a          StorageError
         read-only folder); the checkpoints already saved are intact
    7    the workdir (or --out_dir) is held by another live process      BusyError
    75   stopped by SIGTERM or Ctrl-C: in training after saving a
         checkpoint, before or after it with nothing half written; run
         the same command to resume                                      Preempted
    130  Ctrl-C outside training, or a second Ctrl-C in it: stopped at
         once, nothing half written (the checkpoints already saved are
         intact; cli.py, training/preemption.py)
"""


# 128 + SIGINT: what a shell reports for a process Ctrl-C ended (cli.py, preemption.py).
INTERRUPTED_STATUS = 130


class UserError(Exception):
    """Base class: the message is meant for the person running the command."""

    exit_code = 1
    label = "error"  # how the command line introduces the message


class ConfigError(UserError, ValueError):
    """A flag or configuration value is invalid (exit status 2, like a usage error)."""

    exit_code = 2


class DataError(UserError):
    """The dataset cannot be found, read or used (exit status 3)."""

    exit_code = 3


class WorkerLostError(UserError):
    """A worker of a multi-worker job died or became unreachable (exit status 4)."""

    exit_code = 4


class NonFiniteError(UserError):
    """A loss or metric became NaN or infinite (exit status 5); nothing was saved."""

    exit_code = 5


class StorageError(UserError):
    """A checkpoint, grid, GIF or record could not be written (exit status 6): a full
    disk or a read-only folder. Every file is written whole, so the checkpoints already
    saved are intact."""

    exit_code = 6


class BusyError(UserError):
    """Another live process holds the folder this command would write (exit status 7):
    one writer per run. The message names the holder (pid and host)."""

    exit_code = 7


class Preempted(UserError):
    """SIGTERM or SIGINT stopped the run after a step; a checkpoint was saved there.

    Exit status 75 (EX_TEMPFAIL in sysexits.h): a temporary stop, start the same command
    again to resume.
    """

    exit_code = 75
    label = "stopped"
