"""What the package's command lines share: flag errors and user errors as one line on
stderr with an exit status, never a traceback.

    cli.run(body)                   # body() reads absl's FLAGS; no positional arguments
    cli.run(body, positional=True)  # body(paths) gets the positional arguments

TensorFlow is not imported here: a command can refuse a bad flag or a missing file in
about a second, before it pays for importing TensorFlow.
"""

import os
import signal
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ INFO and WARNING lines

from dcgan_dist import process_setup  # noqa: E402

# Every command, before TensorFlow loads: malloc settings that keep CPU training from
# faulting its buffers in again every step (process_setup.py). train prints them.
PROCESS_NOTES = process_setup.setup()

from absl import app, flags, logging  # noqa: E402

from dcgan_dist.errors import (  # noqa: E402
    INTERRUPTED_STATUS,
    ConfigError,
    Preempted,
    UserError,
)
from dcgan_dist.options import AUTO, DEFAULT_DATASET, PRECISIONS, STRATEGIES  # noqa: E402

USAGE_STATUS = 2
# An auto|true|false flag's value as the library takes it (None: decide per platform).
TRISTATE = {"auto": None, "true": True, "false": False}


def parse_flags(argv):
    """absl's parser, but a bad flag exits with status 2 like any other usage error."""
    try:
        return flags.FLAGS(argv)
    except flags.Error as e:
        print(f"error: {e}\nSee --helpfull for the flags.", file=sys.stderr)
        sys.exit(USAGE_STATUS)


def define_checkpoint_flags(workdir_required=True):
    """--workdir and --checkpoint, for the commands that read a training run."""
    flags.DEFINE_string("workdir", None, "The --workdir of a training run.",
                        required=workdir_required)
    flags.DEFINE_string("checkpoint", "", "A step, or a checkpoint path (default: the "
                        "latest checkpoint of --workdir).")
    flags.DEFINE_bool("raw_generator", False, "Use the raw generator, not the averaged "
                      "one that a run with generator averaging (--recipe=fast) keeps.")


def define_data_flags(of_run=False, dataset=DEFAULT_DATASET, data_dir=None, what=""):
    """--dataset, --data_dir and --tfds_data_dir: where images come from
    (data/sources.py), with these defaults. of_run: a command that reads a training
    run, whose data is the default (workdir.record_data); `what`: a prefix for the
    help."""
    default = (" (default: the one the run trained on, from its config.json)"
               if of_run else "")
    flags.DEFINE_string("dataset", None if of_run else dataset,
                        f"{what}tfds image dataset (mnist, fashion_mnist, cifar10, "
                        f"celeb_a with --image_size=64, ...){default}.")
    flags.DEFINE_string("data_dir", data_dir, f"{what}a folder of images instead of "
                        "downloading: image files (PNG, JPEG, ...), in one subfolder per "
                        "class for labels, with an optional test/ beside train/ for "
                        "evaluation (docs/usage.md); or MNIST-format IDX files (e.g. "
                        "/usr/share/datasets/fashion-mnist): the train-* images and "
                        f"labels, and the t10k-* pair to evaluate{default}.")
    flags.DEFINE_string("tfds_data_dir", None, f"{what}where tensorflow-datasets keeps "
                        "prepared data.")


def define_strategy_flags(what=""):
    """--strategy, --cpu_replicas and --tpu, for the commands that train (`what`: a
    prefix for the help, e.g. "train: ")."""
    flags.DEFINE_enum("strategy", "mirrored", list(STRATEGIES),
                      f"{what}tf.distribute strategy: default, one_device, mirrored (all "
                      "GPUs, or --cpu_replicas CPU devices), multi_worker (reads TF_CONFIG), "
                      "tpu.")
    flags.DEFINE_integer("cpu_replicas", 1, f"{what}without GPUs, split the CPU into this "
                         "many logical devices and mirror over them.")
    flags.DEFINE_string("tpu", "", f"{what}TPU name or address for --strategy=tpu.")


def steps_per_loop(text):
    """--steps_per_loop's value as the config takes it: None for auto, else an int."""
    if text == AUTO:
        return None
    try:
        return int(text)
    except ValueError:
        raise ConfigError(f"--steps_per_loop={text} must be auto or a number of steps, "
                          "e.g. 50.") from None


def define_precision_flag(help_text):
    flags.DEFINE_enum("precision", AUTO, [AUTO, *PRECISIONS], help_text)


def fail(message, status, label="error"):
    print(f"{label}: {message}", file=sys.stderr)
    sys.exit(status)


_NOTHING_HALF_WRITTEN = ("nothing was half written (every file is written whole); run "
                         "the same command to go on")


def _stop_on_sigterm(signum, frame):
    """SIGTERM outside training's own handling (training/preemption.py), e.g. during
    start-up: stop like a preemption, exit 75."""
    raise Preempted(f"SIGTERM before training began or after it ended; "
                    f"{_NOTHING_HALF_WRITTEN}.")


class Interrupted(KeyboardInterrupt):
    """Ctrl-C, as `run`'s own SIGINT handler raises it.

    Not Python's plain KeyboardInterrupt on purpose: when that exact type passes out of
    code run through PyRun_String (pybind11's eval, which TensorFlow and optree call while
    importing and loading), CPython marks the process, and under `python -m` it ends it
    with SIGINT after finalising, even though the exception was caught here and status 130
    asked for. It checks the exact type, so a subclass keeps 130."""


def _interrupt(signum, frame):
    raise Interrupted


def run(body, positional=False):
    """Parses the flags and runs `body`, turning a UserError into its exit status, and
    SIGTERM and Ctrl-C at any time into 75 and 130 with one line."""
    def main(argv):
        logging.set_verbosity(logging.WARNING)  # TensorFlow's and tfds' INFO lines
        if not positional and len(argv) > 1:
            fail(f"unexpected arguments {argv[1:]}; all options are --flags.", USAGE_STATUS)
        signal.signal(signal.SIGTERM, _stop_on_sigterm)
        if signal.getsignal(signal.SIGINT) is signal.default_int_handler:  # not if ignored
            signal.signal(signal.SIGINT, _interrupt)
        try:
            body(argv[1:]) if positional else body()
        except UserError as e:
            fail(e, e.exit_code, e.label)
        except KeyboardInterrupt:
            fail(f"Ctrl-C; {_NOTHING_HALF_WRITTEN}.", INTERRUPTED_STATUS, "stopped")

    app.run(main, flags_parser=parse_flags)
