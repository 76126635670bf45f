"""The training loop: the one place that wires models, data, losses, summaries and
checkpoints together.

    state = create_state(config, strategy, sync_bn)  # models, optimizers, RNG, counters
    train_steps = make_train_steps(...)              # tf.function: N steps, all replicas
    train(config, strategy)                          # epochs, images, summaries, saves

Orbit's shape: the inner loop is a compiled `tf.range` loop over `strategy.run`; the outer
Python loop owns progress, summaries, images and checkpoints.
"""

import contextlib
import dataclasses
import functools
import hashlib
import json
import math
import os
import shutil
import sys
import time

import keras
import numpy as np
import tensorflow as tf

from dcgan_dist import (checkpoints, ema, eval_lib, hardware, images, losses, models,
                        preemption, rng, strategies, trained)
from dcgan_dist.config import AUTO, PRECISIONS
from dcgan_dist.data import pipeline, sources
from dcgan_dist.errors import (ConfigError, DataError, NonFiniteError, Preempted,
                               StorageError, UserError)
from dcgan_dist.trained import CHECKPOINT_FOLDER, CONFIG_FILE  # what the tools read

NUM_GRID_IMAGES = 16
METRICS = ("g_loss", "d_loss", "d_real", "d_fake")  # D(x) and D(G(z)) are means of sigmoid
CHECKPOINT_NAME = "ckpt"  # files checkpoints/ckpt-STEP.*
MAX_ROLLBACKS = 3  # --on_nan=rollback: halve the learning rates at most this many times


class _NonFinite(Exception):
    """Raised by the loop, inside train(), when a step's metrics are not finite."""

    def __init__(self, step, metrics):
        super().__init__(f"non-finite metrics at step {step}")
        self.step, self.metrics = step, metrics


@dataclasses.dataclass
class TrainState:
    """Everything a checkpoint holds: what shapes the next step."""

    generator: keras.Model
    discriminator: keras.Model
    generator_optimizer: keras.optimizers.Optimizer
    discriminator_optimizer: keras.optimizers.Optimizer
    noise_rng: tf.random.Generator  # one seed per step for the generator's noise
    step: tf.Variable               # global steps trained
    epoch: tf.Variable              # epochs completed
    generator_ema: keras.Model = None  # the averaged generator, with averaging on

    def checkpoint(self):
        # Not dataclasses.asdict: that deep-copies the models.
        return tf.train.Checkpoint(**{field.name: getattr(self, field.name)
                                      for field in dataclasses.fields(self)
                                      if getattr(self, field.name) is not None})

    @property
    def shown_generator(self):
        """The generator users see: the averaged one when there is one."""
        return self.generator if self.generator_ema is None else self.generator_ema


def create_state(config, strategy, sync_batch_norm):
    """Models, optimizers and counters, created (and built) inside the strategy's scope.

    With fp16 each network's Adam is wrapped in a Keras `LossScaleOptimizer`, whose
    dynamic loss scale and its step counter are checkpointed with the rest. With
    averaging on (`config.ema`), a second generator starts as a copy of the first.
    """
    dtype = PRECISIONS[config.precision]
    with strategy.scope():
        generator = models.make_generator(config.generator, dtype=dtype, seed=config.seed,
                                          sync_batch_norm=sync_batch_norm)
        discriminator = models.make_discriminator_model(seed=config.seed, dtype=dtype)
        # Keras 3 creates optimizer slots lazily; under a strategy that must happen here,
        # in the scope, not inside the first tf.function call.
        optimizers = []
        for model, rate in ((generator, config.g_learning_rate),
                            (discriminator, config.d_learning_rate)):
            optimizer = keras.optimizers.Adam(rate, beta_1=config.beta1,
                                              beta_2=config.beta2)
            if config.precision == "fp16":
                optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
            optimizer.build(model.trainable_variables)
            optimizers.append(optimizer)
        averaged = None
        if config.ema:
            averaged = models.make_generator(config.generator, dtype=dtype,
                                             seed=config.seed)
            ema.copy(averaged, generator)
        return TrainState(
            generator=generator, discriminator=discriminator,
            generator_optimizer=optimizers[0], discriminator_optimizer=optimizers[1],
            noise_rng=tf.random.Generator.from_seed(config.seed, alg="philox"),
            step=tf.Variable(0, dtype=tf.int64, trainable=False, name="step"),
            epoch=tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch"),
            generator_ema=averaged)


def _skip_together(gen_grads, disc_grads):
    """fp16: makes every replica's gradients of both networks non-finite when any is.

    Each LossScaleOptimizer skips its step (and halves its scale) when its own local
    gradients are not finite. That alone would let one network step while the other
    skips, or one replica's overflow go unseen by another. One all-reduced flag, folded
    into all the gradients, makes both optimizers on every replica decide the same way;
    multiplying by 1.0 changes nothing otherwise.
    """
    local_ok = tf.reduce_all([tf.reduce_all(tf.math.is_finite(g))
                              for g in gen_grads + disc_grads])
    bad = tf.distribute.get_replica_context().all_reduce(
        tf.distribute.ReduceOp.SUM, 1.0 - tf.cast(local_ok, tf.float32))
    factor = tf.where(bad > 0.0, float("nan"), 1.0)
    return ([g * tf.cast(factor, g.dtype) for g in gen_grads],
            [g * tf.cast(factor, g.dtype) for g in disc_grads])


def make_train_steps(state, strategy, global_batch_size, jit_compile=False,
                     ema_decay=None):
    """A tf.function `train_steps(iterator, num_steps)` returning mean metrics.

    jit_compile: compile each replica's forward and backward pass with XLA. The
    optimizer updates stay outside XLA: their gradient all-reduce is a cross-replica
    call that XLA cannot hold under every strategy.
    ema_decay: with `state.generator_ema`, a function of the images seen giving the
    averaging decay of that step (`ema.decay`).
    """
    generator, discriminator = state.generator, state.discriminator
    if state.generator_ema is not None and ema_decay is None:
        raise ValueError("the state averages its generator: pass ema_decay")
    loss_scaling = isinstance(state.generator_optimizer,
                              keras.optimizers.LossScaleOptimizer)

    def gradients(real_images, noise_seed):
        batch = tf.shape(real_images)[0]
        # This replica's rows of the global batch's noise: the same numbers whatever the
        # replica count (see rng.py).
        noise = rng.normal_rows([batch, models.NOISE_DIM], noise_seed,
                                rng.replica_row_offset(batch))
        with tf.GradientTape() as gen_tape, tf.GradientTape() as disc_tape:
            fake_images = generator(noise, training=True)
            real_logits = discriminator(real_images, training=True)
            fake_logits = discriminator(fake_images, training=True)
            gen_loss = losses.generator_loss(fake_logits, global_batch_size)
            disc_loss = losses.discriminator_loss(real_logits, fake_logits,
                                                  global_batch_size)
            if loss_scaling:  # fp16: scaled up so small gradients survive float16
                gen_target = state.generator_optimizer.scale_loss(gen_loss)
                disc_target = state.discriminator_optimizer.scale_loss(disc_loss)
            else:
                gen_target, disc_target = gen_loss, disc_loss
        gen_grads = gen_tape.gradient(gen_target, generator.trainable_variables)
        disc_grads = disc_tape.gradient(disc_target, discriminator.trainable_variables)
        # Each value is this replica's share of a global-batch mean: summing the replicas
        # gives the mean.
        metrics = {"g_loss": gen_loss, "d_loss": disc_loss,
                   "d_real": tf.reduce_sum(tf.sigmoid(real_logits)) / global_batch_size,
                   "d_fake": tf.reduce_sum(tf.sigmoid(fake_logits)) / global_batch_size}
        return gen_grads, disc_grads, metrics

    if jit_compile:
        gradients = tf.function(gradients, jit_compile=True)

    def replica_step(real_images, noise_seed):
        gen_grads, disc_grads, metrics = gradients(real_images, noise_seed)
        if loss_scaling:
            gen_grads, disc_grads = _skip_together(gen_grads, disc_grads)
        # apply_gradients in replica context sums the gradients over replicas (and,
        # with loss scaling, unscales them or skips the step).
        state.generator_optimizer.apply_gradients(
            zip(gen_grads, generator.trainable_variables))
        state.discriminator_optimizer.apply_gradients(
            zip(disc_grads, discriminator.trainable_variables))
        return metrics

    @tf.function
    def train_steps(iterator, num_steps):
        totals = {name: tf.constant(0.0) for name in METRICS}
        for _ in tf.range(num_steps):
            noise_seed = state.noise_rng.make_seeds(1)[:, 0]
            per_replica = strategy.run(replica_step, args=(next(iterator), noise_seed))
            # Rebuilt, not updated in place: autograph tracks loop variables by name.
            totals = {name: totals[name] + strategy.reduce(
                tf.distribute.ReduceOp.SUM, per_replica[name], axis=None)
                for name in METRICS}
            state.step.assign_add(1)
            if state.generator_ema is not None:  # cross-replica: see ema.py
                ema.update(state.generator_ema, generator,
                           ema_decay(state.step * global_batch_size))
        return {name: total / tf.cast(num_steps, tf.float32)
                for name, total in totals.items()}

    return train_steps


def _check_workdir_config(config, saved):
    """Refuses to resume a workdir (its recorded flags: `saved`) with flags that would
    change the trajectory."""
    wanted = config.resume_fields()
    diffs = [f"--{k}={saved[k]} (this run: {wanted[k]})" for k in wanted
             if k in saved and saved[k] != wanted[k]]
    if diffs:
        raise ConfigError(f"--workdir={config.workdir} was trained with " + ", ".join(diffs)
                          + "; resume with the same flags or use a new --workdir.")


def _write_workdir_config(config):
    path = os.path.join(config.workdir, CONFIG_FILE)
    if os.path.exists(path):
        return
    try:
        os.makedirs(config.workdir, exist_ok=True)
        with open(path + ".tmp", "w") as f:
            json.dump(config.resume_fields(), f, indent=2)
        os.replace(path + ".tmp", path)  # atomic: never a half-written config
    except OSError as e:
        raise ConfigError(f"--workdir={config.workdir} cannot be written ({e}); choose a "
                          "folder you can write to.") from None


def _checkpoint_manager(checkpoint, workdir, strategy, keep):
    """TensorFlow's multi-worker rule: every worker saves (the save is collective), but
    only the chief's files are kept; the others write to a folder removed afterwards."""
    if strategies.is_chief(strategy):
        directory = os.path.join(workdir, CHECKPOINT_FOLDER)
    else:
        task_type, task_id = strategies.task_info(strategy)
        directory = os.path.join(workdir, "tmp_checkpoints", f"{task_type}_{task_id}")
    return tf.train.CheckpointManager(checkpoint, directory, max_to_keep=keep,
                                      checkpoint_name=CHECKPOINT_NAME)


def _save(manager, step, chief):
    try:
        manager.save(checkpoint_number=step)
    except (tf.errors.OpError, OSError) as e:
        # TensorFlow writes into ckpt-N_temp and renames only when complete, so the
        # previous checkpoint and the list of checkpoints are untouched: drop the debris.
        shutil.rmtree(os.path.join(manager.directory, f"{CHECKPOINT_NAME}-{step}_temp"),
                      ignore_errors=True)
        raise StorageError(
            f"could not save the checkpoint of step {step} in {manager.directory} "
            f"({str(e).splitlines()[0][-200:]}); free some space or use another "
            f"--workdir. The last saved checkpoint, {manager.latest_checkpoint}, is intact "
            "and the next start resumes from it.") from None
    if not chief:
        shutil.rmtree(manager.directory, ignore_errors=True)
        try:  # tmp_checkpoints/ itself, once the last worker's folder is gone
            os.rmdir(os.path.dirname(manager.directory))
        except OSError:
            pass


def weights_fingerprint(state):
    """A short hash of the networks' weights (batch-norm statistics and the averaged
    generator included).

    Every replica and every worker must hold the same weights; each worker prints this
    at the end so that can be checked from the logs alone.
    """
    digest = hashlib.sha256()
    averaged = state.generator_ema.weights if state.generator_ema is not None else []
    for variable in state.generator.weights + state.discriminator.weights + averaged:
        digest.update(np.ascontiguousarray(variable.numpy()).tobytes())
    return digest.hexdigest()[:16]


def _format_line(epoch, epochs, step, seconds, images_per_sec, metrics):
    values = " | ".join(f"{name}: {metrics[name]:.4f}" for name in METRICS)
    return (f"train | epoch: {epoch}/{epochs} | step: {step} | time: {seconds:.1f} s | "
            f"images/sec: {images_per_sec:.1f} | {values}")


def _load_images(config):
    """(tfds builder, function returning the split's uint8 images, their number)."""
    builder = sources.load_builder(config.dataset, config.data_dir, config.tfds_data_dir)
    try:
        images_fn, num_examples = pipeline.tfds_images(builder, config.split)
    except (ValueError, KeyError, AssertionError) as e:
        raise ConfigError(f"--split={config.split} is not a split of '{config.dataset}' "
                          f"({e}); use e.g. train or train[:10%].") from None
    if num_examples < config.batch_size:
        raise DataError(f"--split={config.split} holds {num_examples} images, fewer than "
                        f"one batch of --batch_size={config.batch_size}.")
    return builder, images_fn, num_examples


def _write_epoch_outputs(state, grid_noise, workdir, writer, epoch, step):
    """The article's per-epoch image grid, on disk and in TensorBoard (chief only)."""
    samples = state.shown_generator(grid_noise, training=False)
    _, picture = images.save_grid(samples, workdir, epoch)
    with writer.as_default(step=step):
        tf.summary.image("samples", picture[None, :, :, None])


def train(config, strategy):
    """Trains the article's DCGAN under `strategy`; returns the last epoch's metrics.

    Resumes from the latest checkpoint in `config.workdir` when there is one.
    """
    chief = strategies.is_chief(strategy)
    num_replicas = strategy.num_replicas_in_sync
    config.check_replicas(num_replicas)
    saved = trained.read_workdir_config(config.workdir)
    recorded = saved.get("precision")
    if config.precision == AUTO and recorded:
        # A resumed run keeps its precision, whatever this machine would choose.
        config = dataclasses.replace(config, precision=recorded)
        print(f"train | auto: precision {recorded} (the workdir was trained with it)",
              flush=True)
    config, choices = hardware.resolve(config, strategy)
    for choice in choices:
        print(f"train | auto: {choice}", flush=True)
    sync_batch_norm = (num_replicas > 1 if config.sync_batch_norm is None
                       else config.sync_batch_norm)
    if config.jit_compile and sync_batch_norm:
        raise ConfigError(
            "--jit_compile=true cannot compile synchronized batch norm (it all-reduces "
            f"inside the forward pass of {num_replicas} replicas); pass "
            "--sync_batch_norm=false as well, or --jit_compile=false.")

    _check_workdir_config(config, saved)
    builder, images_fn, num_examples = _load_images(config)
    if config.eval_every_epochs or config.eval_every_images:
        # Here, before the workdir is written, rather than when the evaluator is built
        # after it; every worker checks, so a multi-worker job stops as one.
        eval_lib.require_real_split(
            builder, config.data_dir,
            "evaluation during training (--eval_every_epochs, --eval_every_images)",
            ConfigError, ", or train without those flags")
    per_epoch = pipeline.steps_per_epoch(num_examples, config.batch_size)
    total_steps = config.epochs * per_epoch
    if config.max_steps:
        total_steps = min(total_steps, config.max_steps)

    if chief:
        _write_workdir_config(config)
    state = create_state(config, strategy, sync_batch_norm)
    checkpoint = state.checkpoint()
    # Before the manager exists: it reads the list of checkpoints that this may change.
    restored = checkpoints.restore_latest_good(
        checkpoint, os.path.join(config.workdir, CHECKPOINT_FOLDER), may_move=chief)
    manager = _checkpoint_manager(checkpoint, config.workdir, strategy,
                                  config.keep_checkpoints)
    start_step = int(state.step.numpy())
    print(f"train | dataset: {builder.info.full_name} {config.split} ({num_examples} "
          f"images) | replicas: {num_replicas} | global batch: {config.batch_size} | "
          f"steps/epoch: {per_epoch} | precision: {config.precision} | jit_compile: "
          f"{config.jit_compile} | sync batch norm: {sync_batch_norm}"
          + (f" | resumed from {restored} at step {start_step}" if restored else ""),
          flush=True)

    def iterator_from(step):
        return iter(strategy.distribute_datasets_from_function(pipeline.make_dataset_fn(
            images_fn, num_examples, config.batch_size, config.seed, step,
            config.compute_dtype)))

    iterator = iterator_from(start_step)
    train_steps = make_train_steps(state, strategy, config.batch_size, config.jit_compile,
                                   functools.partial(ema.decay, config))
    grid_noise = rng.normal_rows([NUM_GRID_IMAGES, models.NOISE_DIM], [config.seed, 1])
    writer = (tf.summary.create_file_writer(os.path.join(config.workdir, "train"))
              if chief else tf.summary.create_noop_writer())
    show_progress = (sys.stdout.isatty() if config.progress_bar is None
                     else config.progress_bar)

    loop = _EpochLoop(config, state, iterator, train_steps, manager, writer, grid_noise,
                      per_epoch, show_progress, chief)
    with contextlib.ExitStack() as cleanup:  # closed on every way out, errors included
        cleanup.callback(writer.close)
        if chief and (config.eval_every_epochs or config.eval_every_images):
            loop.evaluator = eval_lib.Evaluator(
                config.dataset, config.data_dir, config.tfds_data_dir, config.workdir,
                num_samples=config.eval_samples, seed=config.seed,
                compare_earlier=config.eval_earlier)
            cleanup.callback(loop.evaluator.close)
        signalled = cleanup.enter_context(preemption.stop_on_signals())
        stop = signalled
        if strategies.num_workers(strategy) > 1:
            # A signal on one worker of several cannot start the collective save alone:
            # the workers agree on a step and all save there (preemption.py).
            loop.cluster_watch = preemption.ClusterWatch(strategy, checkpoint, loop.save,
                                                         signalled)
            stop = preemption.NEVER
        step = start_step
        for rollbacks in range(MAX_ROLLBACKS + 1):
            try:
                epoch_metrics, step, saved_step = loop.run(step, total_steps, stop)
                break
            except _NonFinite as failure:
                step = _roll_back(config, state, checkpoint, failure, rollbacks, chief)
                loop.iterator = iterator_from(step)
            except preemption.ClusterPreempted as preempted:
                kept = os.path.join(config.workdir, CHECKPOINT_FOLDER)
                raise Preempted(
                    "a stop signal (SIGTERM or Ctrl-C) on a worker of this job: every "
                    f"worker saved the checkpoint of step {preempted.step} (kept in "
                    f"{kept}); run the same command to resume.") from None
        if stop:
            if step != saved_step:
                _save(manager, step, chief)
            raise Preempted(f"{stop.signal_name} at step {step}: checkpoint saved in "
                            f"{manager.directory}; run the same command to resume.")
        if step != saved_step or (restored is None and step == 0):
            _save(manager, step, chief)
        if chief:
            images.save_gif(config.workdir)
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
    directory = os.path.join(config.workdir, CHECKPOINT_FOLDER)
    restored = checkpoints.restore_latest_good(checkpoint, directory, may_move=chief)
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


@dataclasses.dataclass
class _EpochLoop:
    """The outer Python loop: epochs of compiled calls, with the per-epoch outputs."""

    config: object
    state: TrainState
    iterator: object
    train_steps: object
    manager: tf.train.CheckpointManager
    writer: object
    grid_noise: tf.Tensor
    per_epoch: int
    show_progress: bool
    chief: bool
    saved_step: int = 0
    started: float = None         # when this process's loop started (perf_counter)
    eval_seconds: float = 0.0     # ... and the time it spent evaluating since
    evaluated_step: int = -1      # the step of the last evaluation
    cluster_watch: object = None  # preemption.ClusterWatch of a multi-worker job
    evaluator: object = None      # eval_lib.Evaluator, on the chief, with --eval_every_*

    def run(self, step, total_steps, stop):
        """Trains from global `step` to `total_steps`, or until `stop` becomes true.

        Returns (the last epoch's mean metrics, the step reached, the last saved step).
        """
        self.saved_step, epoch_metrics, first = step, None, step
        if self.started is None:  # a rollback runs the loop again: one clock
            self.started = time.perf_counter()
        while step < total_steps and not stop:
            epoch = step // self.per_epoch + 1
            started, evaluating = time.perf_counter(), self.eval_seconds
            sums, steps_run = self._steps(step, min(epoch * self.per_epoch, total_steps),
                                          epoch, stop)
            if not steps_run:
                break
            step += steps_run
            # Evaluations within the epoch (--eval_every_images) are not training time.
            seconds = time.perf_counter() - started - (self.eval_seconds - evaluating)
            images_per_sec = steps_run * self.config.batch_size / seconds
            epoch_metrics = {name: total / steps_run for name, total in sums.items()}
            with self.writer.as_default(step=step):
                tf.summary.scalar("epoch_time_sec", seconds)
                tf.summary.scalar("images_per_sec", images_per_sec)
            if step == epoch * self.per_epoch:  # a whole epoch: the article's outputs
                self.state.epoch.assign(epoch)
                if self.chief:
                    _write_epoch_outputs(self.state, self.grid_noise, self.config.workdir,
                                         self.writer, epoch, step)
                if (epoch % self.config.checkpoint_every_epochs == 0
                        or self._periodic_save_due(step)):
                    self.save(step)
            print(_format_line(epoch, self.config.epochs, step, seconds, images_per_sec,
                               epoch_metrics), flush=True)
            self.writer.flush()
            if step == epoch * self.per_epoch and self._eval_due(step, epoch):
                self._evaluate(epoch, step)  # within an epoch, _steps() evaluates
            if self.cluster_watch:  # after the epoch's outputs, so a resume skips none
                self.cluster_watch.check(step)
        if (self.evaluator and step == total_steps and step > first
                and self.evaluated_step != step):
            self._evaluate(epoch, step)  # where the run ends, whatever the period
        return epoch_metrics, step, self.saved_step

    def _eval_steps(self):
        """--eval_every_images in whole steps (0: off)."""
        return -(-self.config.eval_every_images // self.config.batch_size)

    def _eval_due(self, step, epoch):
        if not self.evaluator:
            return False
        every_epochs = self.config.eval_every_epochs
        at_epoch_end = step == epoch * self.per_epoch
        return ((every_epochs and at_epoch_end and epoch % every_epochs == 0)
                or (self._eval_steps() and step % self._eval_steps() == 0))

    def _evaluate(self, epoch, step):
        started = time.perf_counter()
        # Training time: this process's loop so far (grids and checkpoints included),
        # less its evaluations.
        train_seconds = started - self.started - self.eval_seconds
        try:
            results = self.evaluator(
                self.state.shown_generator, self.state.discriminator, step,
                checkpoint=(self.manager.latest_checkpoint
                            if self.saved_step == step else None),
                context={"train_seconds": round(train_seconds, 2),
                         "images_seen": step * self.config.batch_size})
        except (OSError, UserError) as e:
            # Measuring must not end the training it measures (a full disk is caught by
            # the next checkpoint save, which does stop the run).
            print(f"eval | warning: skipped at step {step} ({e})", flush=True)
            return
        finally:
            self.eval_seconds += time.perf_counter() - started
            self.evaluated_step = step
        print(f"eval | epoch: {epoch} | step: {step} | "
              + eval_lib.format_results(results), flush=True)

    def _periodic_save_due(self, step):
        every = self.config.save_every_steps
        return bool(every) and step % every == 0

    def save(self, step):
        if step == self.saved_step:  # already on disk (a preemption at a save point)
            return
        _save(self.manager, step, self.chief)
        self.saved_step = step

    def _steps(self, step, epoch_end, epoch, stop):
        """Compiled calls up to `epoch_end`; returns (metric sums, steps run)."""
        progress = (keras.utils.Progbar(self.per_epoch, stateful_metrics=METRICS)
                    if self.show_progress else None)
        sums, first = dict.fromkeys(METRICS, 0.0), step
        every = self.config.save_every_steps
        # From the config, not from whether this worker evaluates (the chief alone
        # does): every worker splits its calls at the same steps.
        evals = self._eval_steps()
        while step < epoch_end and not stop:
            # A call never runs past a periodic save point or evaluation.
            next_save = (step // every + 1) * every if every else epoch_end
            next_eval = (step // evals + 1) * evals if evals else epoch_end
            num_steps = min(self.config.steps_per_loop, epoch_end - step, next_save - step,
                            next_eval - step)
            metrics = {k: float(v) for k, v in  # float(): waits for the device
                       self.train_steps(self.iterator, tf.constant(num_steps)).items()}
            step += num_steps
            if not all(math.isfinite(v) for v in metrics.values()):
                raise _NonFinite(step, metrics)  # before any summary or checkpoint
            for name in METRICS:
                sums[name] += metrics[name] * num_steps
            with self.writer.as_default(step=step):
                for name, value in metrics.items():
                    tf.summary.scalar(name, value)
            if progress:
                progress.update(step - (epoch - 1) * self.per_epoch, list(metrics.items()))
            if self.cluster_watch and step != epoch_end:  # run() checks at epoch ends
                self.cluster_watch.check(step)
            if step != epoch * self.per_epoch:  # else run() does, after the epoch's outputs
                if self._periodic_save_due(step):
                    self.save(step)
                if self._eval_due(step, epoch):
                    self._evaluate(epoch, step)
        return sums, step - first
