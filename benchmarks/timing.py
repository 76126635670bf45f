"""Timing a training loop in steady state, the same way for the article's loop and the
package's: warm-up first (tracing, the input pipeline's cache, oneDNN's kernels), then
rounds of timed steps, each round's images/s and its minor page faults per step."""

import resource
import statistics
import time


def _faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def run_in_calls(call, steps, per_call):
    """Runs exactly `steps` steps as calls of `call(k)` (k steps each, at most `per_call`):
    whole calls, then one of the remainder. Returns the last call's result.

    A loop that rounded up to whole calls would train more steps than the rate counts:
    at batch 256 (8 steps a call) 20 timed steps were 24, and the images/s came out 17%
    low (found 2026-12-02: every package figure at batch 256 since --steps_per_loop=auto
    was; docs/measurements.md says which).
    """
    result = None
    while steps > 0:
        result = call(min(steps, per_call))
        steps -= min(steps, per_call)
    return result


def steady_rate(run_steps, batch_size, steps, rounds, warmup_steps):
    """`run_steps(n)` trains n steps and waits for the last; returns a dict of the median
    images/s, every round's, the faults per timed step and the process's peak memory."""
    run_steps(warmup_steps)
    rates, faults = [], []
    for _ in range(rounds):
        before, started = _faults(), time.perf_counter()
        run_steps(steps)
        rates.append(steps * batch_size / (time.perf_counter() - started))
        faults.append((_faults() - before) / steps)
    return {"images_per_sec": round(statistics.median(rates), 1),
            "rounds_images_per_sec": [round(r, 1) for r in rates],
            "minor_faults_per_step": round(statistics.median(faults), 1),
            "minor_faults_process": _faults(),
            "peak_memory_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
                                     / 1024)}
