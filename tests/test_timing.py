"""benchmarks/timing.py: the steps a timed round trains are the steps its rate counts."""

import timing


def test_run_in_calls_trains_exactly_the_steps_asked():
    for steps, per_call in [(20, 8), (5, 8), (256, 256), (7, 1), (0, 4)]:
        calls = []
        last = timing.run_in_calls(lambda k: calls.append(k) or len(calls), steps, per_call)
        assert sum(calls) == steps and all(0 < k <= per_call for k in calls), calls
        assert calls == [per_call] * (steps // per_call) + (
            [steps % per_call] if steps % per_call else [])
        assert last == (len(calls) or None)  # the last call's result
