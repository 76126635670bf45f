"""A run's settings, settled in one place before anything is built.

`TrainConfig` leaves some choices open ("auto", None); `resolve` closes them all, for
this strategy and platform, and says why for each choice the log prints:
- precision: what the workdir was trained with when it resumes, else the platform's;
- the image shape: the data's, as `sources.load` settled it from --image_size and
  --channels (a resumed run asks for its workdir's);
- a conditional run's classes: the data's labels (unlabelled data is refused);
- jit_compile: the platform's (hardware.py);
- sync_batch_norm: on when there are several replicas, and never together with XLA,
  which cannot compile the all-reduce inside the forward pass;
- progress_bar: on when stdout is a terminal;
- steps_per_loop: enough steps per compiled call for IMAGES_PER_CALL images, so that a
  small batch does not pay the Python loop's per-call cost (dispatch, a host sync for
  the metrics, summaries) every step; measured in docs/measurements.md.
`trainer.train` resolves once per run; `train_step.build` refuses an unsettled config.
Resolving a resolved config changes nothing.
"""

import dataclasses
import sys

from dcgan_dist.errors import ConfigError
from dcgan_dist.training import hardware
from dcgan_dist.options import AUTO

IMAGES_PER_CALL = 2048  # --steps_per_loop=auto: images per compiled call


def resolve(config, strategy, recorded=None, platform=None, image_shape=None,
            class_names=None, data_name=None):
    """(`config` with every open choice made, [the reason of each choice made]).

    recorded: the workdir's config.json fields ({} or None for a new run).
    platform: a hardware.Platform; by default this process's.
    image_shape: (S, S, C) of the data (sources.Data.image_shape).
    class_names: the data's classes in label order (sources.class_names); None for
      unlabelled data; data_name: how the error names that data.
    Raises ConfigError for settings that cannot train together.
    """
    num_replicas = strategy.num_replicas_in_sync
    config.check_replicas(num_replicas)
    notes = []
    recorded_precision = (recorded or {}).get("precision")
    if config.precision == AUTO and recorded_precision:
        # A resumed run keeps its precision, whatever this machine would choose.
        config = dataclasses.replace(config, precision=recorded_precision)
        notes.append(f"precision {recorded_precision} (the workdir was trained with it)")
    if image_shape is not None:
        config = dataclasses.replace(config, image_size=image_shape[0],
                                     channels=image_shape[-1])
    if config.conditional and config.class_names is None:
        if not class_names:
            raise ConfigError(
                f"--conditional needs labelled data, but {data_name or 'the data'} has no "
                "labels; put the images in one subfolder per class, or train without "
                "--conditional.")
        config = dataclasses.replace(config, class_names=tuple(class_names))
    config, choices = hardware.resolve(config, strategy, platform)
    notes += choices
    if config.sync_batch_norm is None:
        config = dataclasses.replace(config, sync_batch_norm=num_replicas > 1)
    if config.steps_per_loop is None:
        config = dataclasses.replace(
            config, steps_per_loop=max(1, IMAGES_PER_CALL // config.batch_size))
    if config.progress_bar is None:
        config = dataclasses.replace(config, progress_bar=sys.stdout.isatty())
    if config.jit_compile and config.sync_batch_norm:
        raise ConfigError(
            "--jit_compile=true cannot compile synchronized batch norm (it all-reduces "
            f"inside the forward pass of {num_replicas} replicas); pass "
            "--sync_batch_norm=false as well, or --jit_compile=false.")
    return config, notes
