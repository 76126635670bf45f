"""How a detector is trained: one frozen dataclass, checked when it is built, and the
--out_dir that a run of `forensics train` holds (its lock and the flags it started with).

No TensorFlow here: `python -m dcgan_dist.forensics` refuses a bad flag (or a folder
trained with other flags, or held by another process) before paying for importing it.
"""

import dataclasses
import json
import os

from dcgan_dist import files
from dcgan_dist.errors import ConfigError

ARCHITECTURES = ("cnn", "spectral", "spectral_residual", "npr",  # detectors.make_detector
                 "npr_spectral")
AUGMENTATIONS = ("blur", "jpeg", "noise", "resize", "chain")  # perturbations.augment
LR_SCHEDULES = ("constant", "cosine")
VALIDATIONS = ("samples", "generators")  # what the validation split holds (training.py)

# The held-out protocol's perturbations: name -> the steps applied in order, each
# (kind, strength) of perturbations.perturb. "chain" is what sharing does to an image (a smaller
# copy enlarged again, then re-encoded twice); "downup0.5" alone is its first step.
PERTURBATIONS = {
    "none": (),
    "blur0.5": (("blur", 0.5),), "blur1": (("blur", 1.0),), "blur2": (("blur", 2.0),),
    "downup0.5": (("downup", 0.5),),
    "jpeg50": (("jpeg", 50),), "jpeg75": (("jpeg", 75),), "jpeg90": (("jpeg", 90),),
    "noise5": (("noise", 5.0),),
    "chain": (("downup", 0.5), ("jpeg", 75), ("jpeg", 90)),
}
# What `forensics evaluate` reports unless asked otherwise (docs/forensics.md).
DEFAULT_PERTURBATIONS = ("none", "blur0.5", "blur1", "blur2", "downup0.5", "jpeg50",
                         "jpeg90", "chain")


@dataclasses.dataclass(frozen=True)
class DetectorConfig:
    """How to train a detector, checked when built. Defaults are the detector that
    measured best on held-out generators (docs/forensics.md): the residual spectrum,
    augmented with every perturbation and the chain, 12 epochs on a cosine schedule,
    validated on generators it does not train on."""

    architecture: str = "spectral_residual"   # detectors.make_detector
    augment: tuple = ("blur", "jpeg", "noise", "resize", "chain")  # each on half the images
    augment_probability: float = 0.5          # of each augmentation, per image
    epochs: int = 12
    batch_size: int = 256                     # global
    learning_rate: float = 1e-3               # Adam's, before the schedule
    lr_schedule: str = "cosine"               # or "constant"
    per_generator: int = 5000                 # images drawn from each generator
    val_fraction: float = 0.1                 # held out to set the threshold
    validation: str = "generators"            # or "samples" (training.py)
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
            (0 <= self.augment_probability <= 1, f"--augment_probability="
             f"{self.augment_probability} must be in [0, 1]."),
            (self.lr_schedule in LR_SCHEDULES, f"--lr_schedule={self.lr_schedule} is "
             f"unknown; use {' or '.join(LR_SCHEDULES)}."),
            (self.epochs >= 1, f"--epochs={self.epochs} must be at least 1."),
            (self.batch_size >= 1, f"--batch_size={self.batch_size} must be at least 1."),
            (self.learning_rate > 0, f"--learning_rate={self.learning_rate} must be "
                                     "positive."),
            (self.per_generator >= 1, f"--samples_per_generator={self.per_generator} "
                                      "must be at least 1."),
            (self.validation in VALIDATIONS, f"--validation={self.validation} is "
             f"unknown; use {' or '.join(VALIDATIONS)}."),
            (0 < self.val_fraction < 1, f"val_fraction={self.val_fraction} must be in "
                                        "(0, 1)."),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)


# The files of a detector's --out_dir that `forensics train` writes (training.py: the
# rest): the flags it started with, written whole before training, and its lock.
RECORD_FILE = "detector.json"  # the trained detector's record, written last
FLAGS_FILE = "flags.json"
LOCK_FILE = "lock"
_BACKUP = "backup"  # Keras BackupAndRestore's: an interrupted run resumes from it


def run_flags(config, entries, generators, dataset, data_dir):
    """{flag: value} of a `forensics train` run: what its --out_dir records, and what a
    second command on that folder must repeat to resume it. `generators`: the pool's
    checkpoints as its entries resolved them (a workdir that gained checkpoints since
    is another pool)."""
    return {"--detector": config.architecture, "--augment": ",".join(config.augment),
            "--augment_probability": config.augment_probability,
            "--epochs": config.epochs, "--batch_size": config.batch_size,
            "--learning_rate": config.learning_rate, "--lr_schedule": config.lr_schedule,
            "--samples_per_generator": config.per_generator, "--seed": config.seed,
            "--validation": config.validation,
            "--workdirs": ",".join(entries), "--dataset": dataset,
            "--data_dir": data_dir or "", "generators": [g.name for g in generators]}


def _differences(recorded, flags):
    """'--epochs=6 (this run: 4)' for each flag that differs, at most three."""
    def shown(name, value):
        text = (f"{len(value)} generators {', '.join(value)}" if name == "generators"
                else f"{name}={value}")
        return text if len(text) <= 120 else text[:117] + "..."
    names = [name for name in flags if recorded.get(name) != flags[name]]
    names += [name for name in recorded if name not in flags]
    return [f"{shown(name, recorded.get(name))} (this run: {shown(name, flags.get(name))})"
            for name in names[:3]]


def claim_out_dir(out_dir, flags):
    """Makes `out_dir` this process's: holds its lock (one writer), then records `flags`
    (a new folder) or checks them against the record (an interrupted run, resumed only
    by the same flags). Returns the `files.Hold`; the lock goes with the process.

    Raises BusyError (exit 7) when another live process trains there, ConfigError when
    the folder holds a finished detector, a run started with other flags, or an
    interrupted run from before flags were recorded.
    """
    try:
        os.makedirs(out_dir, exist_ok=True)
        hold = files.hold(os.path.join(out_dir, LOCK_FILE), what="forensics train")
    except OSError as e:
        raise ConfigError(f"--out_dir={out_dir} cannot be written ({e.strerror or e}); "
                          "choose a folder you can write to.") from None
    try:
        _check_or_record(out_dir, json.loads(json.dumps(flags)))
    except BaseException:
        hold.release()
        raise
    return hold


def _check_or_record(out_dir, flags):
    if os.path.exists(os.path.join(out_dir, RECORD_FILE)):
        raise ConfigError(f"--out_dir={out_dir} already holds a trained detector; name a "
                          "new folder.")
    path = os.path.join(out_dir, FLAGS_FILE)
    try:
        with open(path) as f:
            recorded = json.load(f)
    except FileNotFoundError:
        recorded = None
    except (OSError, ValueError) as e:
        raise ConfigError(f"{path} is unreadable ({type(e).__name__}); name a new "
                          "--out_dir (or delete this one to start over).") from None
    if recorded is None:
        if os.path.exists(os.path.join(out_dir, _BACKUP)):
            raise ConfigError(f"--out_dir={out_dir} holds an interrupted run whose flags "
                              f"were not recorded ({FLAGS_FILE} is missing); name a new "
                              f"--out_dir (or delete {os.path.join(out_dir, _BACKUP)} to "
                              "start this one over).")
        try:
            files.write_json(path, flags)
        except OSError as e:
            raise ConfigError(f"--out_dir={out_dir} cannot be written "
                              f"({e.strerror or e}); choose a folder you can write "
                              "to.") from None
        return
    if not isinstance(recorded, dict):
        raise ConfigError(f"{path} is not a record of flags (a JSON object); name a new "
                          "--out_dir (or delete this one to start over).")
    differences = _differences(recorded, flags)
    if differences:
        raise ConfigError(f"--out_dir={out_dir} holds a run started with other flags: "
                          + "; ".join(differences) + "; pass the same flags to resume "
                          "it, or name a new --out_dir.")
