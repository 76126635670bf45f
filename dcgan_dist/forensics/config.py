"""How a detector is trained: one frozen dataclass, checked when it is built.

No TensorFlow here: `python -m dcgan_dist.forensics` refuses a bad flag before paying
for importing it.
"""

import dataclasses

from dcgan_dist.errors import ConfigError

ARCHITECTURES = ("cnn", "spectral", "spectral_residual")  # detectors.make_detector
AUGMENTATIONS = ("blur", "jpeg", "noise", "resize")       # detectors.augment
LR_SCHEDULES = ("constant", "cosine")


@dataclasses.dataclass(frozen=True)
class DetectorConfig:
    """How to train a detector, checked when built. Defaults are the detector that
    measured best on held-out generators (docs/forensics.md): the residual spectrum,
    augmented with every perturbation, 15 epochs on a cosine schedule."""

    architecture: str = "spectral_residual"   # detectors.make_detector
    augment: tuple = ("blur", "jpeg", "noise", "resize")  # each on half the images
    epochs: int = 15
    batch_size: int = 256                     # global
    learning_rate: float = 1e-3               # Adam's, before the schedule
    lr_schedule: str = "cosine"               # or "constant"
    per_generator: int = 5000                 # images drawn from each generator
    val_fraction: float = 0.1                 # held out to set the threshold
    seed: int = 0

    def __post_init__(self):
        object.__setattr__(self, "augment", tuple(self.augment))
        unknown = set(self.augment) - set(AUGMENTATIONS)
        checks = [
            (self.architecture in ARCHITECTURES, f"--detector="
             f"{self.architecture} is unknown; use one of "
             f"{', '.join(ARCHITECTURES)}."),
            (not unknown, f"--augment={','.join(sorted(unknown))} is unknown; use "
                          f"{', '.join(AUGMENTATIONS)}."),
            (self.lr_schedule in LR_SCHEDULES, f"--lr_schedule={self.lr_schedule} is "
             f"unknown; use {' or '.join(LR_SCHEDULES)}."),
            (self.epochs >= 1, f"--epochs={self.epochs} must be at least 1."),
            (self.batch_size >= 1, f"--batch_size={self.batch_size} must be at least 1."),
            (self.learning_rate > 0, f"--learning_rate={self.learning_rate} must be "
                                     "positive."),
            (self.per_generator >= 1, f"--samples_per_generator={self.per_generator} "
                                      "must be at least 1."),
            (0 < self.val_fraction < 1, f"val_fraction={self.val_fraction} must be in "
                                        "(0, 1)."),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)
