"""The training configuration: one frozen dataclass, checked when it is built."""

import dataclasses
import os
from typing import Optional

from dcgan_dist.errors import ConfigError

# --precision: the Keras dtype policy of each choice. "auto" is resolved per platform by
# `hardware.choose_precision` before anything is built.
PRECISIONS = {"fp32": "float32", "bf16": "mixed_bfloat16", "fp16": "mixed_float16"}
COMPUTE_DTYPES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}
AUTO = "auto"
ON_NAN = ("stop", "rollback")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """What to train and where to write it. Defaults are the article's."""

    workdir: str
    dataset: str = "mnist"
    data_dir: Optional[str] = None       # folder of MNIST-format IDX files
    tfds_data_dir: Optional[str] = None  # where tfds keeps prepared data (tfds default)
    split: str = "train"                 # any tfds split spec, e.g. "train[:10%]"
    epochs: int = 50
    batch_size: int = 256                # global: summed over all replicas
    max_steps: int = 0                   # stop at this global step; 0 = no limit
    seed: int = 0
    learning_rate: float = 1e-4
    checkpoint_every_epochs: int = 5
    keep_checkpoints: int = 5
    save_every_steps: int = 0            # also save every N global steps; 0 = off
    steps_per_loop: int = 1              # steps per tf.function call
    sync_batch_norm: Optional[bool] = None  # None: on when there are several replicas
    precision: str = "fp32"              # fp32, bf16, fp16, or auto (per platform)
    jit_compile: Optional[bool] = False  # XLA for the step's math; None: per platform
    on_nan: str = "stop"                 # non-finite loss: "stop", or "rollback"
    progress_bar: Optional[bool] = None  # None: when stdout is a terminal
    eval_every_epochs: int = 0           # evaluate (eval_lib) every N epochs; 0 = off
    eval_samples: int = 10000            # generated and real images per evaluation
    eval_earlier: bool = True            # also score D against earlier checkpoints' G

    def __post_init__(self):
        checks = [
            (self.epochs >= 0, f"--epochs={self.epochs} must be 0 or more."),
            (self.batch_size >= 1, f"--batch_size={self.batch_size} must be at least 1."),
            (self.max_steps >= 0, f"--max_steps={self.max_steps} must be 0 (no limit) or "
                                  "more."),
            (0 <= self.seed < 2**31, f"--seed={self.seed} must be in [0, 2**31)."),
            (self.learning_rate > 0, f"--learning_rate={self.learning_rate} must be "
                                     "positive."),
            (self.checkpoint_every_epochs >= 1, "--checkpoint_every_epochs="
             f"{self.checkpoint_every_epochs} must be at least 1."),
            (self.keep_checkpoints >= 1, f"--keep_checkpoints={self.keep_checkpoints} "
                                         "must be at least 1."),
            (self.save_every_steps >= 0, f"--save_every_steps={self.save_every_steps} "
                                         "must be 0 (off) or more."),
            (self.steps_per_loop >= 1, f"--steps_per_loop={self.steps_per_loop} must be "
                                       "at least 1."),
            (self.precision in (*PRECISIONS, AUTO), f"--precision={self.precision} is "
             f"unknown; use one of {', '.join(PRECISIONS)} or {AUTO}."),
            (self.on_nan in ON_NAN, f"--on_nan={self.on_nan} is unknown; use one of "
                                    f"{', '.join(ON_NAN)}."),
            (self.eval_every_epochs >= 0, "--eval_every_epochs="
             f"{self.eval_every_epochs} must be 0 (off) or more."),
            (self.eval_samples >= 10, f"--eval_samples={self.eval_samples} is too few; "
                                      "use at least 10 (10000 for comparable numbers)."),
            (bool(self.workdir), "--workdir must name a folder."),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)
        if os.path.exists(self.workdir) and not os.path.isdir(self.workdir):
            raise ConfigError(f"--workdir={self.workdir} is a file; name a folder (new or "
                              "one a previous run wrote) instead.")
        if self.data_dir is not None and not os.path.isdir(self.data_dir):
            raise ConfigError(f"--data_dir={self.data_dir} is not a folder; name the folder "
                              "that holds the MNIST-format IDX files.")

    @property
    def compute_dtype(self):
        """The dtype the networks compute in (and the input pipeline delivers)."""
        if self.precision == AUTO:
            raise ValueError("resolve --precision=auto first (hardware.resolve)")
        return COMPUTE_DTYPES[self.precision]

    def check_replicas(self, num_replicas):
        if self.batch_size % num_replicas:
            raise ConfigError(
                f"--batch_size={self.batch_size} does not divide across {num_replicas} "
                f"replicas; use a multiple of {num_replicas}, e.g. "
                f"{max(1, round(self.batch_size / num_replicas)) * num_replicas}.")

    # Values that shape the training trajectory: a workdir resumes only with the same ones.
    RESUME_KEYS = ("dataset", "split", "batch_size", "seed", "learning_rate", "precision")

    def resume_fields(self):
        return {key: getattr(self, key) for key in self.RESUME_KEYS}
