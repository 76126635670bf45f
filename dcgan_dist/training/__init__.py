"""Training: the config and its recipes, the settings settled once per run, the
strategy, the compiled step, the Python loop around it, and what keeps a run safe
(checkpoints, preemption). `trainer.train` is the one place that wires them together."""
