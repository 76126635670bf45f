"""Files written whole, and folders held by one process: the two rules every file the
package writes follows.

    files.write_bytes(path, data)    # a temporary name beside `path`, then a rename
    files.write_json(path, value)
    with files.hold(folder / "lock", what="train"):   # one writer; dies with its process
        ...

A rename within one folder is atomic on POSIX file systems: a reader sees the old file
or the new one, never part of one, whatever kills the writer. The temporary names start
with a dot, so no glob of the package's own names (image_at_*.png, ckpt-*) sees them.

The lock is `fcntl.flock` on a file: the kernel releases it when the holding process
ends, however it ends (SIGKILL included), so a killed run never blocks the next one.
flock holds on local file systems and on NFS (Linux 2.6.12+ emulates it with POSIX
locks); a bucket mounted by FUSE may not honour it, so a workdir there is not guarded.
No TensorFlow here.
"""

import contextlib
import errno
import fcntl
import json
import os
import socket
import time

from dcgan_dist.errors import BusyError


def _temporary(path):
    folder, name = os.path.split(os.path.abspath(path))
    return os.path.join(folder, f".{name}.{os.getpid()}.tmp")


def write_bytes(path, data):
    """Writes `data` to `path` whole: another process sees the old file or the new one.

    Raises OSError (a full disk, a read-only folder) with `path` unchanged and no
    temporary file left behind.
    """
    temporary = _temporary(path)
    try:
        with open(temporary, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())  # the data is on disk before the name points at it
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(temporary)
        raise


def write_json(path, value):
    write_bytes(path, (json.dumps(value, indent=2) + "\n").encode())


def append_line(path, text):
    """Appends one line, in one write. A kill can tear only that line, which
    `read_json_lines` drops; a line torn before is ended first, so this one stays whole."""
    with open(path, "ab+") as f:
        torn = f.tell() > 0 and (f.seek(-1, os.SEEK_END), f.read(1))[1] != b"\n"
        f.write((("\n" if torn else "") + text.rstrip("\n") + "\n").encode())


def read_json_lines(path):
    """The JSON values of `path`, one per line; a torn or garbled line (what a kill in
    `append_line` leaves) is skipped. [] when the file does not exist."""
    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        return []
    values = []
    for line in lines:
        try:
            values.append(json.loads(line))
        except ValueError:
            continue
    return values


class Hold:
    """A held lock file (see `hold`); `release()` or the process's end lets it go."""

    def __init__(self, path, handle):
        self.path, self._handle = path, handle

    def release(self):
        if self._handle is not None:
            self._handle.close()  # closing the descriptor releases the flock
            self._handle = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()


def describe_holder(path):
    """What the lock file at `path` says of its holder ('pid P on host H since T')."""
    try:
        with open(path) as f:
            text = f.read().strip()
    except OSError:
        text = ""
    return text or "another process (it has not written its name yet)"


def hold(path, what, wait=False):
    """Takes the lock file `path` for this process; returns a `Hold`.

    Raises BusyError naming the holder (pid and host) when another live process holds
    it, unless `wait`: then blocks until it is free. Raises OSError when `path` cannot
    be created (a read-only folder).
    """
    handle = open(path, "a+")  # never truncates: the holder's name stays readable
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
    except OSError as e:
        handle.close()
        if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            raise BusyError(f"{os.path.dirname(os.path.abspath(path))} is in use by "
                            f"{describe_holder(path)}; wait for it to end or "
                            "stop it, or use another folder.") from None
        raise
    # Ours now: say who holds it, for the next process that finds it busy.
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()} on host {socket.gethostname()} since "
                 f"{time.strftime('%Y-%m-%d %H:%M:%S')} ({what})\n")
    handle.flush()
    return Hold(path, handle)
