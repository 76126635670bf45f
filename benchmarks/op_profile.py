"""Where a training step's time goes: TensorFlow's profiler, summed per op type.

The trace (an XSpace protobuf that TensorBoard's profile plugin also reads) holds one
event per op execution on the host's executor threads. Summing their durations by op
type gives a per-op breakdown without the plugin. Ops of one step can run in parallel
(inter-op threads), so the column sums to more than the step's wall time.
"""

import collections
import glob
import os
import tempfile

import tensorflow as tf
from tensorflow.tsl.profiler.protobuf import xplane_pb2

# Events that wrap other ops (the function call, the executor) rather than compute.
_WRAPPERS = ("Process", "Run", "RunWithBorrowedArgs")


def breakdown(run_steps, steps):
    """{op type: milliseconds per step} of `run_steps()`, which runs `steps` steps."""
    logdir = tempfile.mkdtemp(prefix="op_profile_")
    tf.profiler.experimental.start(logdir)
    try:
        run_steps()
    finally:
        tf.profiler.experimental.stop()
    path = sorted(glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True))[-1]
    space = xplane_pb2.XSpace()
    with open(path, "rb") as f:
        space.ParseFromString(f.read())
    totals = collections.Counter()
    for plane in space.planes:
        for line in plane.lines:
            for event in line.events:
                name = plane.event_metadata[event.metadata_id].name
                if ":" not in name or name.startswith("$"):
                    continue  # not an op (a thread or a trace annotation)
                op_type = name.rsplit(":", 1)[1].strip()
                if op_type.startswith("__inference") or op_type in _WRAPPERS:
                    continue
                totals[op_type] += event.duration_ps / 1e9 / steps
    return {op: round(ms, 2) for op, ms in totals.most_common()}


def format_table(ms_per_step, rows=20):
    total = sum(ms_per_step.values())
    lines = [f"{'op type':<40} {'ms/step':>9} {'share':>6}"]
    for op, ms in list(ms_per_step.items())[:rows]:
        lines.append(f"{op:<40} {ms:>9.1f} {100 * ms / total:>5.1f}%")
    lines.append(f"{'all ops (threads summed)':<40} {total:>9.1f}")
    return "\n".join(lines)
