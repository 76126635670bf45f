"""Stopping cleanly on SIGTERM (a preempted VM, a scheduler) or SIGINT (Ctrl-C).

The first signal only sets a flag: the loop finishes the step in flight, saves a
checkpoint and exits with status 75, and the next start resumes there. A second SIGINT
stops at once (KeyboardInterrupt), for a user who does not want to wait.
"""

import contextlib
import signal
import sys
import threading


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
