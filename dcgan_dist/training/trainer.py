"""Training: the one place that wires models, data, losses, summaries and checkpoints
together.

    strategies.make_strategy -> the tf.distribute strategy the config names
    settings.resolve  -> every open choice made (precision, XLA, batch norm, steps per
                         call, progress bar), with reasons; once per run
    train_step.build  -> the state and the compiled step (train_step.py)
    loop.EpochLoop    -> the Python loop of epochs around it (loop.py)
    train(config) runs them, restoring, saving and stopping on signals.
"""

import contextlib
import math

import tensorflow as tf

from dcgan_dist import images, shapes
from dcgan_dist import workdir as layout
from dcgan_dist.data import pipeline, sources, splits
from dcgan_dist.errors import (
    ConfigError,
    DataError,
    NonFiniteError,
    Preempted,
    StorageError,
)
from dcgan_dist.evaluation import evaluator
from dcgan_dist.training import (
    checkpoints,
    loop,
    preemption,
    settings,
    strategies,
    train_step,
)
from dcgan_dist.training.train_step import weights_fingerprint

MAX_ROLLBACKS = 3  # --on_nan=rollback: halve the learning rates at most this many times


def _load_data(config, recorded):
    """sources.Data of the run's images: a resumed run keeps the image shape its
    workdir recorded when --image_size and --channels are not given."""
    return sources.load(config.dataset, config.data_dir, config.tfds_data_dir,
                        config.image_size or recorded.get("image_size"),
                        config.channels or recorded.get("channels"))


def _load_images(config, builder):
    """(function returning the split's uint8 images at the run's shape, their number)."""
    try:
        images_fn, num_examples = pipeline.tfds_images(builder, config.split,
                                                       config.image_shape,
                                                       labels=config.conditional)
    except (ValueError, KeyError, AssertionError) as e:
        raise ConfigError(f"--split={config.split} is not a split of '{config.dataset}' "
                          f"({e}); use e.g. train or train[:10%].") from None
    if num_examples < config.batch_size:
        raise DataError(f"--split={config.split} holds {num_examples} images, fewer than "
                        f"one batch of --batch_size={config.batch_size}.")
    return images_fn, num_examples


def train(config, strategy=None):
    """Trains the article's DCGAN; returns the last epoch's metrics.

    Resumes from the latest checkpoint in `config.workdir` when there is one.
    strategy: by default the one `config.strategy` names; tests pass one they share,
    since a process cannot hold two strategies over the same devices.
    """
    if config.deterministic:
        # Process-wide, before any op runs; every random op here is explicitly seeded,
        # as determinism requires.
        tf.config.experimental.enable_op_determinism()
    if strategy is None:
        strategy = strategies.make_strategy(config.strategy, config.cpu_replicas,
                                            config.tpu)
    chief = strategies.is_chief(strategy)
    saved = _read_record(config.workdir)
    data = _load_data(config, saved)
    builder = data.builder
    for note in data.notes:
        print(f"train | data: {note}", flush=True)
    config, notes = settings.resolve(
        config, strategy, recorded=saved, image_shape=data.image_shape,
        class_names=sources.class_names(builder, config.dataset, config.data_dir),
        data_name=(f"--data_dir={config.data_dir}" if config.data_dir
                   else f"--dataset={config.dataset}"))
    for note in notes:
        print(f"train | auto: {note}", flush=True)
    layout.check_config(config.workdir, saved, config.resume_fields())
    images_fn, num_examples = _load_images(config, builder)
    if config.eval_every_epochs or config.eval_every_images:
        # Here, before the workdir is written, rather than when the evaluator is built
        # after it; every worker checks, so a multi-worker job stops as one.
        splits.require_real_split(
            builder, config.data_dir,
            "evaluation during training (--eval_every_epochs, --eval_every_images)",
            ConfigError, ", or train without those flags")
    built = train_step.build(config, strategy, (images_fn, num_examples))
    checkpoint = built.state.checkpoint()
    # Reads only: a run that cannot resume writes nothing, not even its lock.
    restored = checkpoints.restore_latest_good(checkpoint, config.workdir)
    with contextlib.ExitStack() as held:
        if chief:  # one writer per run: the workers write only where the chief's lock is
            held.enter_context(layout.hold(config.workdir, "train"))
        # Before the manager exists: it reads the list of checkpoints that this may
        # rewrite. Then the record, once the restore check has passed.
        checkpoints.tidy(config.workdir, restored, may_move=chief)
        restored = restored.path
        if chief:
            layout.write_config(config.workdir, config.recorded_fields())
        manager = checkpoints.make_manager(checkpoint, config.workdir, strategy,
                                           config.keep_checkpoints)
        start_step = int(built.state.step.numpy())
        print(f"train | dataset: {builder.info.full_name} {config.split} ({num_examples} "
              f"images of {shapes.name(config.image_shape)}) | replicas: "
              f"{strategy.num_replicas_in_sync} | global batch: {config.batch_size} | "
              f"steps/epoch: {built.steps_per_epoch} | precision: {config.precision} "
              f"| jit_compile: {config.jit_compile} | sync batch norm: "
              f"{config.sync_batch_norm}"
              + (f" | resumed from {restored} at step {start_step}" if restored else ""),
              flush=True)
        return _run(built, manager, restored, chief)


def _read_record(workdir):
    """The run's record; a workdir with checkpoints and no record is refused (its
    flags are unknown, and a guess could resume it under other settings)."""
    saved = layout.read_config(workdir)
    if not saved and layout.list_checkpoints(workdir):
        raise ConfigError(
            f"{workdir} holds checkpoints but no {layout.CONFIG_FILE}, the record of the "
            "flags they were trained with; copy that file back from a backup (or from "
            "another run with the same flags), or use a new --workdir.")
    return saved


def _run(built, manager, restored, chief):
    """Trains `built` (its state restored from `restored`, or new) to the end, under
    the run's lock: the rest of `train`."""
    config, state, checkpoint = built.config, built.state, manager.checkpoint
    per_epoch, start_step = built.steps_per_epoch, int(built.state.step.numpy())
    total_steps = config.total_steps(per_epoch)

    with contextlib.ExitStack() as cleanup:  # closed on every way out, errors included
        writer = (tf.summary.create_file_writer(layout.train_summaries(config.workdir))
                  if chief else tf.summary.create_noop_writer())
        cleanup.callback(writer.close)
        scorer = None
        if chief and (config.eval_every_epochs or config.eval_every_images):
            scorer = evaluator.Evaluator(
                config.dataset, config.data_dir, config.tfds_data_dir, config.workdir,
                image_shape=config.image_shape,
                num_samples=config.eval_samples, seed=config.seed,
                compare_earlier=config.eval_earlier)
            cleanup.callback(scorer.close)
            if scorer.note:
                print(f"train | evaluation: {scorer.note}.", flush=True)
        signalled = cleanup.enter_context(preemption.stop_on_signals())
        epochs = loop.EpochLoop(built, manager, writer, chief, signalled, scorer)
        step = start_step
        for rollbacks in range(MAX_ROLLBACKS + 1):
            try:
                epoch_metrics, step = epochs.run(step, total_steps)
                break
            except loop.NonFinite as failure:
                step = _roll_back(config, state, checkpoint, failure, rollbacks, chief)
            except preemption.ClusterPreempted as preempted:
                raise Preempted(
                    "a stop signal (SIGTERM or Ctrl-C) on a worker of this job: every "
                    f"worker saved the checkpoint of step {preempted.step} (kept in "
                    f"{layout.checkpoint_dir(config.workdir)}); run the same command to "
                    "resume.") from None
        if chief and step > start_step and epochs.ended_mid_epoch(step):
            epochs.write_grid(step)  # a smoke run or a stop shows something too
        # A new run that trains no step (and is not stopped) still leaves its initial
        # state, as step 0.
        epochs.save(step, even_if_saved=restored is None and step == 0 and not epochs.stop)
        if epochs.stop:
            raise Preempted(f"{epochs.stop.signal_name} at step {step}: checkpoint saved "
                            f"in {manager.directory}; run the same command to resume.")
        if chief:
            try:
                images.save_gif(config.workdir, per_epoch)
            except OSError as e:
                raise StorageError(f"could not write {layout.GIF_FILE} in {config.workdir} "
                                   f"({e}); free some space and run the same command: "
                                   f"the checkpoint of step {step} is saved.") from None
    print(f"train | done | step: {step} | weights: {weights_fingerprint(state)}",
          flush=True)
    return epoch_metrics


def _roll_back(config, state, checkpoint, failure, rollbacks, chief):
    """--on_nan: stops with a clear error, or restores the last good checkpoint with
    both learning rates halved (once per rollback); returns the step to go on from."""
    bad = ", ".join(f"{k}={v}" for k, v in failure.metrics.items() if not math.isfinite(v))
    what = f"non-finite {bad} at step {failure.step}"
    if config.on_nan == "stop":
        raise NonFiniteError(
            f"{what}; nothing after the last checkpoint was saved. Lower --learning_rate, "
            "use --precision=fp32, or pass --on_nan=rollback.")
    if rollbacks == MAX_ROLLBACKS:
        raise NonFiniteError(f"{what}, again after {MAX_ROLLBACKS} rollbacks that each "
                             "halved the learning rates; lower --learning_rate.")
    found = checkpoints.restore_latest_good(checkpoint, config.workdir)
    checkpoints.tidy(config.workdir, found, may_move=chief)  # under the run's lock
    restored = found.path
    if restored is None:
        raise NonFiniteError(f"{what} before any checkpoint was saved, so there is "
                             "nothing to roll back to; lower --learning_rate.")
    # The restore brought back the checkpoint's rates: halve those once per rollback so
    # far. The halved rates are saved with the next checkpoints and stay on resume.
    factor = 0.5 ** (rollbacks + 1)
    for optimizer in (state.generator_optimizer, state.discriminator_optimizer):
        optimizer.learning_rate.assign(optimizer.learning_rate * factor)
    step = int(state.step.numpy())
    print(f"train | warning: {what}; rolled back to {restored} (step {step}) with the "
          f"learning rates x{factor:g}, now "
          f"{float(state.generator_optimizer.learning_rate.numpy()):.3g}", flush=True)
    return step
