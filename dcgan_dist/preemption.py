"""Stopping cleanly on SIGTERM (a preempted VM, a scheduler) or SIGINT (Ctrl-C).

One process (`stop_on_signals`): the first signal only sets a flag; the loop finishes the
step in flight, saves a checkpoint and exits with status 75, and the next start resumes
there. A second SIGINT stops at once (KeyboardInterrupt), for a user who does not want to
wait.

Several workers (`ClusterWatch`): the save is collective, so one worker cannot save
alone. TensorFlow's `PreemptionCheckpointHandler` catches SIGTERM on any worker, agrees on
a step with the others through the coordination service, and every worker saves there;
then each exits with status 75 like a single process.
"""

import contextlib
import signal
import sys
import threading

import tensorflow as tf


class StopRequest:
    """Whether a stop signal arrived, and which."""

    def __init__(self):
        self.signal_name = None

    def __bool__(self):
        return self.signal_name is not None

    def _handle(self, signum, frame):
        if self and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signal_name = signal.Signals(signum).name
        print(f"train | {self.signal_name}: stopping after this step and saving a "
              "checkpoint" + (" (Ctrl-C again to stop at once)"
                              if signum == signal.SIGINT else ""),
              file=sys.stderr, flush=True)


@contextlib.contextmanager
def stop_on_signals(enabled=True):
    """Yields a StopRequest; handles SIGTERM and SIGINT inside the block when enabled.

    Handlers can only be set in the main thread; elsewhere (and when not enabled) the
    request never becomes true and the signals keep their usual meaning.
    """
    request = StopRequest()
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield request
        return
    previous = {s: signal.signal(s, request._handle) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield request
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


class ClusterPreempted(Exception):
    """A worker of the job got SIGTERM; every worker saved a checkpoint at `step`."""

    def __init__(self, step):
        super().__init__(f"preempted at step {step}")
        self.step = step


class ClusterWatch:
    """MultiWorkerMirroredStrategy's preemption handling around our own saves.

    `check(step)` after every compiled call: when a worker of the job got SIGTERM, every
    worker reaches the same call, saves with `save(step)` and raises ClusterPreempted.
    """

    def __init__(self, strategy, manager, save):
        self._saved_step = None

        def save_fn(step):
            save(step)
            self._saved_step = step

        def exit_fn():  # instead of TensorFlow's sys.exit(42): the loop cleans up first
            raise ClusterPreempted(self._saved_step)

        self._handler = tf.distribute.experimental.PreemptionCheckpointHandler(
            strategy.cluster_resolver, manager,
            termination_config=tf.distribute.experimental.TerminationConfig(
                exit_fn=exit_fn, save_fn=save_fn))

    def check(self, step):
        self._handler.save_checkpoint_if_preempted(step)
