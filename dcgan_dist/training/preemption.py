"""Stopping cleanly on SIGTERM (a preempted VM, a scheduler) or SIGINT (Ctrl-C).

One process (`stop_on_signals`): the first signal only sets a flag; the loop finishes the
step in flight, saves a checkpoint and exits with status 75, and the next start resumes
there. A second SIGINT stops at once with status 130, saving nothing, for a user who does
not want to wait (the checkpoints already saved stay intact, as after a SIGKILL).

Both are acted on by a thread that reads the signal module's wakeup fd, not by the Python
signal handler: that handler runs only when the main thread next executes Python, that is
after the compiled call in flight (--steps_per_loop steps, possibly minutes), and two
signals that arrive during one call run it once. The wakeup fd gets a byte per signal, at
once, so the first is acknowledged immediately and the second is never lost.

Several workers (`ClusterWatch`): the save is collective, so one worker cannot save
alone. The same watcher sets the flag, and TensorFlow's
`PreemptionCheckpointHandler` passes it to the other workers through the coordination
service and agrees on a step at which every worker saves; then each exits with status 75
like a single process. (TensorFlow turns that handler off on Google Cloud CPU and TPU
VMs, GKE CPU nodes included; there a job relies on --save_every_steps.)
"""

import contextlib
import os
import shutil
import signal
import sys
import tempfile
import threading

import tensorflow as tf

from dcgan_dist.errors import INTERRUPTED_STATUS



class StopRequest:
    """Whether a stop signal arrived, and which."""

    def __init__(self):
        self.signal_name = None

    def __bool__(self):
        return self.signal_name is not None

    def _receive(self, signum):
        """Acts on one SIGTERM or SIGINT, as it arrives (in the watcher thread)."""
        if self and signum == signal.SIGINT:
            # The main thread may be inside a compiled call for minutes: end the process
            # from here. Files are written to temporary names and renamed when complete,
            # so a save cut short leaves the earlier checkpoints as they were.
            print("stopped: Ctrl-C again: exiting at once, without saving; the "
                  "checkpoints already saved are intact (run the same command to resume "
                  "from the latest).", file=sys.stderr, flush=True)
            os._exit(INTERRUPTED_STATUS)
        if self:
            return  # already stopping
        self.signal_name = signal.Signals(signum).name
        print(f"train | {self.signal_name}: stopping after this step and saving a "
              "checkpoint" + (" (Ctrl-C again to stop at once)"
                              if signum == signal.SIGINT else ""),
              file=sys.stderr, flush=True)


def _ignore(signum, frame):
    """The Python-level handler: the watcher thread acts on the signal instead."""


def _watch(read_fd, request):
    """Hands each signal byte from the wakeup fd to `request`; returns when it closes."""
    while True:
        try:
            received = os.read(read_fd, 64)
        except OSError:
            return
        if not received:
            return
        for signum in received:
            if signum in (signal.SIGTERM, signal.SIGINT):
                request._receive(signum)


@contextlib.contextmanager
def stop_on_signals():
    """Yields a StopRequest; handles SIGTERM and SIGINT inside the block.

    Handlers can only be set in the main thread; elsewhere the request never becomes
    true and the signals keep their usual meaning. Inside the block this takes the
    signal module's wakeup fd (`signal.set_wakeup_fd`) and gives the previous one back
    after.
    """
    request = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield request
        return
    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)  # the signal module requires it
    previous_fd = signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
    watcher = threading.Thread(target=_watch, args=(read_fd, request), daemon=True,
                               name="stop-signal-watcher")
    watcher.start()
    previous = {s: signal.signal(s, _ignore) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield request
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        signal.set_wakeup_fd(previous_fd)
        os.close(write_fd)  # the watcher reads the end of the pipe and returns
        watcher.join()
        os.close(read_fd)


class ClusterPreempted(Exception):
    """A worker of the job got SIGTERM; every worker saved a checkpoint at `step`."""

    def __init__(self, step):
        super().__init__(f"preempted at step {step}")
        self.step = step


class ClusterWatch:
    """MultiWorkerMirroredStrategy's preemption handling around our own saves.

    `check(step)` after every compiled call: once any worker's `signalled` (a
    StopRequest) is true, the workers agree through the coordination service on a call
    at which every one of them saves with `save(step)`; then each raises
    ClusterPreempted. A worker's own signal never stops it alone.
    """

    def __init__(self, strategy, checkpoint, save, signalled):
        self._saved_step = None

        def save_fn(step):
            save(step)
            self._saved_step = step

        def exit_fn():  # instead of TensorFlow's sys.exit(42): the loop cleans up first
            raise ClusterPreempted(self._saved_step)

        # The handler counts check() calls to agree on a step, starting from the count
        # it restores from its manager's checkpoint. Given an empty folder, every worker
        # starts from 0 at every start and they agree; the training state itself was
        # restored (and checked) by checkpoints.restore_latest_good, and save_fn writes.
        scratch = tempfile.mkdtemp(prefix="dcgan_preemption_")
        try:
            self._handler = tf.distribute.experimental.PreemptionCheckpointHandler(
                strategy.cluster_resolver,
                tf.train.CheckpointManager(checkpoint, scratch, max_to_keep=1),
                termination_config=tf.distribute.experimental.TerminationConfig(
                    # Our SIGTERM/SIGINT handler, on every platform: TensorFlow's default
                    # on Google Cloud GPU VMs watches maintenance events instead.
                    termination_watcher_fn=lambda: bool(signalled),
                    exit_fn=exit_fn, grace_period=0, save_fn=save_fn))
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    def check(self, step):
        self._handler.save_checkpoint_if_preempted(step)


class _Never:
    """A StopRequest that stays false: the workers of a job stop only together."""

    signal_name = None

    def __bool__(self):
        return False


NEVER = _Never()
