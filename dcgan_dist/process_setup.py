"""Process-wide settings that make training fast on CPUs, applied before TensorFlow loads.

    from dcgan_dist import process_setup
    notes = process_setup.setup()   # first thing, before `import tensorflow`
    ...
    process_setup.restore_malloc()  # after creating a distributed dataset iterator

What it sets, and why:

- glibc malloc's mmap threshold, fixed at 32 MiB, and its trim threshold at 64 MiB.
  TensorFlow's CPU kernels (oneDNN's weight reorders above all) allocate and free
  buffers of 0.2 to 3 MiB many times per step. glibc serves an allocation above the mmap
  threshold with a fresh mmap and returns it with munmap on free, so each such buffer is
  page-faulted in again, zeroed by the kernel, on every use: 4,500 faults (18 MB) a step
  here, and on a small VM faults are slow. glibc normally avoids this by raising the
  threshold each time it frees a large mmapped block (its "dynamic threshold", up to
  32 MiB); but any mallopt(M_MMAP_THRESHOLD) call switches that off for good, and
  TensorFlow makes one: every GeneratorDataset kernel it constructs calls
  mallopt(M_MMAP_THRESHOLD, 128 KiB) (tensorflow::data::ApplyPython311MemoryPatch, a
  workaround for a from_generator leak under Python 3.11). tf.distribute's input
  iterators build such kernels (MultiDeviceIterator's per-device generator datasets),
  so under MirroredStrategy or OneDeviceStrategy the threshold is pinned at 128 KiB
  from the first iterator on, while the default strategy keeps the dynamic one. Fixing
  the threshold where the dynamic one would have ended gives every strategy the
  default strategy's behaviour; `restore_malloc` sets it again after TensorFlow's call.
  The trim threshold is twice the mmap threshold, the ratio glibc's own dynamic rule
  keeps, so freed heap tops are not handed back and faulted in again either.

Nothing else is changed. TensorFlow's thread pools keep their defaults: on 2 cores,
TF_NUM_INTRAOP_THREADS/TF_NUM_INTEROP_THREADS of 2/2 and 1/2 measured within noise of
them and 2/1 slower. TF_CPU_ALLOCATOR_USE_BFC=1 does not help here: the re-faulted
buffers are oneDNN's own (dnnl::impl::malloc -> posix_memalign), not TensorFlow's
allocator's.

The commands call `setup` when they start (cli.py); importing the package sets nothing.
A notebook or a script that trains through the library calls it itself, first:

    from dcgan_dist import process_setup
    process_setup.setup()

Opt out with DCGAN_DIST_PROCESS_SETUP=0 (nothing is set). `restore_malloc` does nothing
unless `setup` set something in this process. A value the user set
(MALLOC_MMAP_THRESHOLD_, MALLOC_TRIM_THRESHOLD_, or the same in GLIBC_TUNABLES) is kept:
glibc applied it at start-up, and `restore_malloc` applies the user's mmap threshold
again rather than ours. Calling either function twice does no harm.
"""

import ctypes
import os

OPT_OUT = "DCGAN_DIST_PROCESS_SETUP"
_set_up = False  # whether setup() ran (and was not opted out of) in this process

MiB = 1024 * 1024
# glibc's dynamic threshold never rises above DEFAULT_MMAP_THRESHOLD_MAX:
# 4 * 1024 * 1024 * sizeof(long) = 32 MiB on 64-bit.
MMAP_THRESHOLD = 32 * MiB
TRIM_THRESHOLD = 2 * MMAP_THRESHOLD

# mallopt parameter numbers, from glibc's malloc.h.
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3

# (mallopt parameter, environment variable, GLIBC_TUNABLES name, our value)
_MALLOC_SETTINGS = (
    (M_MMAP_THRESHOLD, "MALLOC_MMAP_THRESHOLD_", "glibc.malloc.mmap_threshold",
     MMAP_THRESHOLD),
    (M_TRIM_THRESHOLD, "MALLOC_TRIM_THRESHOLD_", "glibc.malloc.trim_threshold",
     TRIM_THRESHOLD),
)


def _opted_out(environ):
    return environ.get(OPT_OUT, "").strip().lower() in ("0", "false", "no", "off")


def _glibc_mallopt():
    """glibc's mallopt, or None where the C library is not glibc (macOS, musl) or an
    LD_PRELOADed allocator (tcmalloc, jemalloc) replaces it."""
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # glibc only  # noqa: B018
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return None
    if any(name in os.environ.get("LD_PRELOAD", "") for name in ("tcmalloc", "jemalloc",
                                                                 "mimalloc")):
        return None
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return mallopt


def _user_value(environ, variable, tunable):
    """The value the user gave this malloc setting (an int), None if none, or "" if one
    was given that is not a plain number of bytes."""
    text = environ.get(variable)
    for item in environ.get("GLIBC_TUNABLES", "").split(":"):
        name, _, value = item.partition("=")
        if name == tunable:
            text = value
    if text is None:
        return None
    try:
        return int(text, 0)
    except ValueError:
        return ""


def _apply_malloc(environ, after_tensorflow):
    """Sets the malloc settings; returns (what was set, what the user had set)."""
    mallopt = _glibc_mallopt()
    if mallopt is None:
        return None, []
    chosen, kept = [], []
    for param, variable, tunable, ours in _MALLOC_SETTINGS:
        user = _user_value(environ, variable, tunable)
        if user is not None:
            kept.append(variable)
            # glibc applied the user's value at start-up; only TensorFlow's mallopt
            # (of the mmap threshold) can have replaced it since.
            if after_tensorflow and param == M_MMAP_THRESHOLD and user != "":
                mallopt(param, user)
            continue
        # mallopt returns 1 when it took the value, 0 when it refused it.
        if mallopt(param, ours) == 1:
            chosen.append(param)
    return chosen, kept


def setup(environ=os.environ):
    """Applies the process settings (call before TensorFlow is imported); returns one
    line per choice, for the log."""
    global _set_up
    if _opted_out(environ):
        return [f"process setup: off ({OPT_OUT}={environ[OPT_OUT]})"]
    _set_up = True
    chosen, kept = _apply_malloc(environ, after_tensorflow=False)
    if chosen is None:
        return ["malloc: left as it is (not glibc, or another allocator is preloaded)"]
    notes = []
    if chosen:
        parts = {M_MMAP_THRESHOLD: f"mmap threshold {MMAP_THRESHOLD // MiB} MiB",
                 M_TRIM_THRESHOLD: f"trim threshold {TRIM_THRESHOLD // MiB} MiB"}
        notes.append("malloc: glibc " + ", ".join(parts[p] for p in chosen)
                     + " (mallopt; large CPU buffers are reused, not re-faulted)")
    if kept:
        notes.append("malloc: kept the user's " + ", ".join(kept))
    return notes


def restore_malloc(environ=os.environ):
    """Sets the malloc settings again after TensorFlow replaced them: call it after
    creating a tf.distribute dataset iterator (see the module docstring)."""
    if _set_up and not _opted_out(environ):
        _apply_malloc(environ, after_tensorflow=True)
