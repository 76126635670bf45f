"""process_setup: glibc's malloc keeps large buffers instead of faulting them in again.

Each check runs in a fresh Python process (malloc settings are process-wide) and counts
the page faults of allocating, touching and freeing a 6 MiB buffer 50 times: 1,536
faults each time when glibc serves it with mmap, about none when it reuses heap memory
(a size TensorFlow's start-up leaves no free block of, so the first one is new).
"""

import json
import os
import subprocess
import sys

import pytest

from dcgan_dist import process_setup

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

PROBE = r"""
import ctypes, json, os, resource, sys
sys.path.insert(0, {repo!r})
from dcgan_dist import process_setup
libc = ctypes.CDLL(None)
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]

def faults_per_buffer(size=6 << 20, times=50):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(times):
        buffer = libc.malloc(size)
        ctypes.memset(buffer, 1, size)
        libc.free(buffer)
    return (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / times

def tensorflow_like_mallopt():
    # What TensorFlow's GeneratorDataset kernel does (ApplyPython311MemoryPatch).
    assert libc.mallopt(-3, 128 * 1024) == 1

def give_back_free_heap():
    # So that a buffer must come from the OS (brk or mmap), not from freed heap space.
    libc.malloc_trim(0)

result = {{}}
{body}
print(json.dumps(result))
"""


def _probe(body, env=None):
    environ = {k: v for k, v in os.environ.items()
               if not k.startswith(("MALLOC_", "GLIBC_TUNABLES", "LD_PRELOAD",
                                    process_setup.OPT_OUT))}
    environ.update(env or {})
    out = subprocess.run([sys.executable, "-c", PROBE.format(repo=REPO, body=body)],
                         env=environ, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


pytestmark = pytest.mark.skipif(
    process_setup._glibc_mallopt() is None, reason="glibc's mallopt only")


def test_setup_keeps_large_buffers_and_restore_undoes_tensorflows_threshold():
    result = _probe("""
result["notes"] = process_setup.setup()
result["after_setup"] = faults_per_buffer()
tensorflow_like_mallopt()
give_back_free_heap()
result["pinned"] = faults_per_buffer()
process_setup.restore_malloc()
result["restored"] = faults_per_buffer()
""")
    assert any("mmap threshold 32 MiB" in note for note in result["notes"]), result
    assert result["after_setup"] < 100, result
    assert result["pinned"] > 1000, result  # the problem restore_malloc is there for
    assert result["restored"] < 100, result


def test_opt_out_sets_nothing():
    result = _probe("""
result["notes"] = process_setup.setup()
tensorflow_like_mallopt()
process_setup.restore_malloc()
result["faults"] = faults_per_buffer()
""", env={process_setup.OPT_OUT: "0"})
    assert result["notes"] == [f"process setup: off ({process_setup.OPT_OUT}=0)"]
    assert result["faults"] > 1000, result


def test_the_users_threshold_is_kept_and_restored():
    # A user who asks for a 128 KiB threshold keeps it, also after restore_malloc.
    result = _probe("""
result["notes"] = process_setup.setup()
result["faults"] = faults_per_buffer()
libc.mallopt(-3, 64 * 1024 * 1024)
process_setup.restore_malloc()
result["restored"] = faults_per_buffer()
""", env={"MALLOC_MMAP_THRESHOLD_": "131072"})
    assert any("kept the user's MALLOC_MMAP_THRESHOLD_" in n for n in result["notes"])
    assert result["faults"] > 1000 and result["restored"] > 1000, result


def test_a_tunables_value_counts_as_the_users():
    environ = {"GLIBC_TUNABLES": "glibc.malloc.trim_threshold=1048576"}
    assert process_setup._user_value(environ, "MALLOC_TRIM_THRESHOLD_",
                                     "glibc.malloc.trim_threshold") == 1 << 20
    assert process_setup._user_value({}, "MALLOC_TRIM_THRESHOLD_",
                                     "glibc.malloc.trim_threshold") is None


def test_restore_does_nothing_without_setup():
    """A library caller who never asked for the process setup gets none of it."""
    result = _probe("""
tensorflow_like_mallopt()
give_back_free_heap()
process_setup.restore_malloc()
result["faults"] = faults_per_buffer()
""")
    assert result["faults"] > 1000, result


def test_setup_twice_is_harmless():
    result = _probe("""
result["first"] = process_setup.setup()
result["second"] = process_setup.setup()
result["faults"] = faults_per_buffer()
""")
    assert result["first"] == result["second"] and result["faults"] < 100, result


def test_a_distributed_iterator_no_longer_pins_the_threshold(tmp_path):
    """The training path itself: OneDeviceStrategy's iterator (a MultiDeviceIterator,
    whose GeneratorDataset kernel calls mallopt) then Built.iterator's restore."""
    result = _probe("""
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
process_setup.setup()
import tensorflow as tf
strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
dataset_fn = lambda context: tf.data.Dataset.range(10).batch(2)
iterator = iter(strategy.distribute_datasets_from_function(dataset_fn))
next(iterator)
give_back_free_heap()
result["pinned"] = faults_per_buffer()
process_setup.restore_malloc()
result["restored"] = faults_per_buffer()
""")
    # If TensorFlow stops pinning the threshold, "pinned" drops and this can go.
    assert result["pinned"] > 1000, result
    assert result["restored"] < 100, result
