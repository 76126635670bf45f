"""The training configuration: one frozen dataclass, checked when it is built."""

import dataclasses
import os
from typing import Optional

from dcgan_dist import shapes
from dcgan_dist.errors import ConfigError
from dcgan_dist.options import (
    AUTO,
    COMPUTE_DTYPES,
    CONDITIONINGS,
    DEFAULT_DATASET,
    DIFFAUGMENT_POLICIES,
    GENERATORS,
    ON_NAN,
    PRECISIONS,
    STRATEGIES,
)
from dcgan_dist.training import recipes


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """What to train and where to write it. Defaults are the article's.

    The hyper-parameters of `recipes.FIELDS` default to None, "the recipe's value":
    construction fills them in from `recipe` (and `learning_rate`, which sets both
    networks' rates unless a network's own rate is given), so every built config holds
    concrete values.
    """

    workdir: str
    strategy: str = "mirrored"           # one of STRATEGIES (strategies.make_strategy)
    cpu_replicas: int = 1                # without GPUs: logical CPU devices to mirror over
    tpu: str = ""                        # TPU name or address for strategy "tpu"
    deterministic: bool = False          # TensorFlow op determinism, process-wide
    recipe: str = recipes.ARTICLE
    generator: str = "dcgan"             # options.GENERATORS: dcgan (the article's), ...
    diffaugment: str = ""                # DiffAugment policy of D's inputs; "": off
    conditional: bool = False            # both networks take the image's class
    conditioning: str = CONDITIONINGS[0]  # how the generator takes it (models.py)
    class_loss: Optional[float] = None   # its classification loss's weight; None: 1
                                         # for a conditional run, else 0 (train_step)
    class_names: Optional[tuple] = None  # a conditional run's classes; None: the data's
    dataset: str = DEFAULT_DATASET
    data_dir: Optional[str] = None       # folder of image files or MNIST-format IDX files
    image_size: Optional[int] = None     # square side the networks build for; None: data's
    channels: Optional[int] = None       # 1 (grey) or 3 (colour); None: the data's
    tfds_data_dir: Optional[str] = None  # where tfds keeps prepared data (tfds default)
    split: str = "train"                 # any tfds split spec, e.g. "train[:10%]"
    epochs: int = 50
    batch_size: Optional[int] = None     # global: summed over all replicas
    max_steps: int = 0                   # stop at this global step; 0 = no limit
    seed: int = 0
    learning_rate: Optional[float] = None   # both networks' Adam rate
    g_learning_rate: Optional[float] = None
    d_learning_rate: Optional[float] = None
    beta1: Optional[float] = None           # Adam's, both networks
    beta2: Optional[float] = None
    ema_decay: Optional[float] = None       # generator averaging: a fixed decay per step
    ema_halflife_images: Optional[float] = None  # ... or a half-life in images seen
    ema_rampup: Optional[float] = None      # half-life at most this share of images seen
    checkpoint_every_epochs: int = 5
    keep_checkpoints: int = 5
    save_every_steps: int = 0            # also save every N global steps; 0 = off
    steps_per_loop: Optional[int] = None  # steps per tf.function call; None: by batch
    sync_batch_norm: Optional[bool] = None  # None: on when there are several replicas
    precision: str = AUTO                # fp32, bf16, fp16, or auto (per platform)
    jit_compile: Optional[bool] = None   # XLA for the step's math; None: per platform
    on_nan: str = "stop"                 # non-finite loss: "stop", or "rollback"
    progress_bar: Optional[bool] = None  # None: when stdout is a terminal
    eval_every_epochs: int = 0           # evaluate (eval_lib) every N epochs; 0 = off
    eval_samples: int = 10000            # generated and real images per evaluation
    eval_every_images: int = 0           # ... and/or every N images (whole steps)
    eval_earlier: bool = True            # also score D against earlier checkpoints' G

    def __post_init__(self):
        self._check_and_fill_recipe()
        if self.class_loss is None:  # filled once, here (as the recipe's values)
            object.__setattr__(self, "class_loss", 1.0 if self.conditional else 0.0)
        checks = [
            (self.epochs >= 0, f"--epochs={self.epochs} must be 0 or more."),
            (self.batch_size >= 1, f"--batch_size={self.batch_size} must be at least 1."),
            (self.max_steps >= 0, f"--max_steps={self.max_steps} must be 0 (no limit) or "
                                  "more."),
            (0 <= self.seed < 2**31, f"--seed={self.seed} must be in [0, 2**31)."),
            (self.checkpoint_every_epochs >= 1, "--checkpoint_every_epochs="
             f"{self.checkpoint_every_epochs} must be at least 1."),
            (self.keep_checkpoints >= 1, f"--keep_checkpoints={self.keep_checkpoints} "
                                         "must be at least 1."),
            (self.save_every_steps >= 0, f"--save_every_steps={self.save_every_steps} "
                                         "must be 0 (off) or more."),
            (self.steps_per_loop is None or self.steps_per_loop >= 1,
             f"--steps_per_loop={self.steps_per_loop} must be "
                                       "at least 1."),
            (self.precision in (*PRECISIONS, AUTO), f"--precision={self.precision} is "
             f"unknown; use one of {', '.join(PRECISIONS)} or {AUTO}."),
            (self.generator in GENERATORS, f"--generator={self.generator} is unknown; "
             f"use one of {', '.join(GENERATORS)}."),
            (self._policy_ok(), f"--diffaugment={self.diffaugment} is unknown; use a "
             f"comma-separated list of each of {', '.join(DIFFAUGMENT_POLICIES)}, or nothing for "
             "no augmentation."),
            (self.class_loss >= 0, f"--class_loss={self.class_loss} must be 0 (none) or "
             "more."),
            (self.conditional or not self.class_loss, f"--class_loss={self.class_loss} "
             "weighs a loss on the classes; pass --conditional as well, or drop it."),
            (self.conditioning in CONDITIONINGS, f"--conditioning={self.conditioning} is "
             f"unknown; use one of {', '.join(CONDITIONINGS)}."),
            (self.strategy in STRATEGIES, f"--strategy={self.strategy} is unknown; use "
             f"one of {', '.join(STRATEGIES)}."),
            (self.cpu_replicas >= 1, f"--cpu_replicas={self.cpu_replicas} must be at "
                                     "least 1."),
            (self.on_nan in ON_NAN, f"--on_nan={self.on_nan} is unknown; use one of "
                                    f"{', '.join(ON_NAN)}."),
            (self.eval_every_epochs >= 0, "--eval_every_epochs="
             f"{self.eval_every_epochs} must be 0 (off) or more."),
            (self.eval_every_images >= 0, "--eval_every_images="
             f"{self.eval_every_images} must be 0 (off) or more."),
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
                              "that holds the image files or MNIST-format IDX files.")
        shapes.check(self.image_size, self.channels)

    def _policy_ok(self):
        """Whether --diffaugment names known policies; if so it is rewritten in their
        canonical order, so "cutout,color" and "color,cutout" record as one run."""
        names = [name.strip() for name in (self.diffaugment or "").split(",")
                 if name.strip()]
        if (not all(name in DIFFAUGMENT_POLICIES for name in names)
                or len(set(names)) != len(names)):
            return False
        object.__setattr__(self, "diffaugment", ",".join(
            name for name in DIFFAUGMENT_POLICIES if name in names))
        return True

    @property
    def augmentations(self):
        """The DiffAugment policies on, as a tuple (empty: off)."""
        return tuple(self.diffaugment.split(",")) if self.diffaugment else ()

    def _check_and_fill_recipe(self):
        if self.recipe not in recipes.RECIPES:
            raise ConfigError(f"--recipe={self.recipe} is unknown; use one of "
                              f"{', '.join(recipes.RECIPES)}.")
        for name in ("learning_rate", "g_learning_rate", "d_learning_rate"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ConfigError(f"--{name}={value} must be positive.")
        for name in ("beta1", "beta2"):
            value = getattr(self, name)
            if value is not None and not 0 <= value < 1:
                raise ConfigError(f"--{name}={value} must be in [0, 1).")
        if self.ema_decay is not None and not 0 <= self.ema_decay < 1:
            raise ConfigError(f"--ema_decay={self.ema_decay} must be in [0, 1) (0: no "
                              "averaging).")
        if self.ema_halflife_images is not None and not self.ema_halflife_images > 0:
            raise ConfigError(f"--ema_halflife_images={self.ema_halflife_images} must be "
                              "positive; to turn averaging off pass --ema_decay=0.")
        if self.ema_decay is not None and self.ema_halflife_images is not None:
            raise ConfigError("--ema_decay and --ema_halflife_images both set the "
                              "averaging rate; pass one of them.")
        if self.ema_rampup is not None and not 0 <= self.ema_rampup <= 1:
            raise ConfigError(f"--ema_rampup={self.ema_rampup} must be in [0, 1] (0: no "
                              "ramp-up).")
        values = dict(recipes.RECIPES[self.recipe])
        if self.learning_rate is not None:
            values.update(g_learning_rate=self.learning_rate,
                          d_learning_rate=self.learning_rate)
        if self.ema_decay is not None or self.ema_halflife_images is not None:
            values.update(ema_decay=None, ema_halflife_images=None)  # given: replaces
        values.update({name: getattr(self, name) for name in recipes.FIELDS
                       if getattr(self, name) is not None})
        for name, value in values.items():
            object.__setattr__(self, name, value)  # frozen: filled once, here

    @property
    def ema(self):
        """Whether the generator's weights are averaged (and the average is shown)."""
        # --ema_decay=0 stays 0 (not None): a config rebuilt from these values (as
        # dataclasses.replace does) must not fall back to the recipe's half-life.
        return bool(self.ema_decay) or self.ema_halflife_images is not None

    @property
    def settled(self):
        """Whether every open choice is made (settings.resolve does it, once per run)."""
        return (self.precision != AUTO and self.jit_compile is not None
                and self.sync_batch_norm is not None and self.progress_bar is not None
                and self.steps_per_loop is not None and self.image_size is not None
                and self.channels is not None
                and (not self.conditional or self.class_names is not None))

    def total_steps(self, steps_per_epoch):
        """The global step this run trains to: its epochs, or --max_steps if sooner."""
        total = self.epochs * steps_per_epoch
        return min(total, self.max_steps) if self.max_steps else total

    @property
    def image_shape(self):
        """(H, W, C) of the images the networks make and judge (once settled)."""
        if self.image_size is None or self.channels is None:
            raise ValueError("settle the image shape first (settings.resolve)")
        return (self.image_size, self.image_size, self.channels)

    @property
    def num_classes(self):
        """The classes a conditional run's networks take (once settled); 0 otherwise."""
        if not self.conditional:
            return 0
        if self.class_names is None:
            raise ValueError("settle the classes first (settings.resolve)")
        return len(self.class_names)

    @property
    def compute_dtype(self):
        """The dtype the networks compute in (and the input pipeline delivers)."""
        if self.precision == AUTO:
            raise ValueError("resolve --precision=auto first (settings.resolve)")
        return COMPUTE_DTYPES[self.precision]

    def check_replicas(self, num_replicas):
        if self.batch_size % num_replicas:
            raise ConfigError(
                f"--batch_size={self.batch_size} does not divide across {num_replicas} "
                f"replicas; use a multiple of {num_replicas}, e.g. "
                f"{max(1, round(self.batch_size / num_replicas)) * num_replicas}.")

    # Values that shape the training trajectory: a workdir resumes only with the same ones.
    RESUME_KEYS = ("recipe", "generator", "dataset", "split", "seed", "precision",
                   "image_size", "channels", "diffaugment", "conditional") + recipes.FIELDS

    def resume_fields(self):
        fields = {key: getattr(self, key) for key in self.RESUME_KEYS}
        if self.conditional:  # its classes, in order: a label means the same class
            fields.update(conditioning=self.conditioning, class_loss=self.class_loss,
                          class_names=list(self.class_names or ()))
        return fields

    def recorded_fields(self):
        """What a new workdir's config.json records: the resume fields, a conditional
        run's number of classes (the tools build its networks from the record), and
        where the data came from, so that `evaluate` finds it again without the flag (a
        resume may read the same images from a moved folder, so data_dir is not
        compared)."""
        data_dir = os.path.abspath(self.data_dir) if self.data_dir else None
        classes = {"num_classes": self.num_classes} if self.conditional else {}
        return {**self.resume_fields(), **classes, "data_dir": data_dir}
