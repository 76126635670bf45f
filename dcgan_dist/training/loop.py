"""The outer Python loop around the compiled step: epochs of calls, the per-epoch
outputs (the article's grid, checkpoints, evaluations), progress and summaries.

trainer.py builds one `EpochLoop` and runs it; a rollback or a resume runs it again
from another step.
"""

import math
import time

import keras
import tensorflow as tf

from dcgan_dist import images, models, rng
from dcgan_dist import workdir as layout
from dcgan_dist.errors import StorageError, UserError
from dcgan_dist.evaluation.evaluator import format_results
from dcgan_dist.training import checkpoints, preemption, strategies
from dcgan_dist.training.train_step import METRICS

NUM_GRID_IMAGES = 16
CLASS_GRID_COLUMNS = 8  # a conditional run's grid: a row per class, a noise per column


class NonFinite(Exception):
    """A step's metrics are not finite; raised before any summary or checkpoint."""

    def __init__(self, step, metrics):
        super().__init__(f"non-finite metrics at step {step}")
        self.step, self.metrics = step, metrics


def format_line(epoch, epochs, step, seconds, images_per_sec, metrics, steps_run,
                per_epoch):
    """One line per epoch. An epoch this process ran only part of (a resume, a stop,
    --max_steps) says so: its time and rate cover those steps alone."""
    part = f" (partial: {steps_run} of {per_epoch} steps)" if steps_run < per_epoch else ""
    values = " | ".join(f"{name}: {metrics[name]:.4f}" for name in METRICS)
    return (f"train | epoch: {epoch}/{epochs}{part} | step: {step} | time: {seconds:.1f} s "
            f"| images/sec: {images_per_sec:.1f} | {values}")


class EpochLoop:
    """Runs `built` (train_step.Built, of a settled config) epoch by epoch; the chief
    writes the outputs."""

    def __init__(self, built, manager, writer, chief, signalled=preemption.NEVER,
                 evaluator=None):
        """manager: the tf.train.CheckpointManager every save goes through.
        writer: the training summaries' writer (a no-op one off the chief).
        signalled: a preemption.StopRequest, true once SIGTERM or Ctrl-C arrived.
        evaluator: an evaluation.evaluator.Evaluator, on the chief, with --eval_every_*.
        """
        self.built, self.manager, self.writer, self.chief = built, manager, writer, chief
        self.evaluator = evaluator
        self.config, self.state = built.config, built.state
        self.per_epoch = built.steps_per_epoch
        self.grid_inputs, self.grid_columns = self._grid_inputs()
        self.iterator, self.saved_step = None, None
        self.started = None         # when this process's loop started (perf_counter)
        self.eval_seconds = 0.0     # ... and the time it spent evaluating since
        self.evaluated_step = -1    # the step of the last evaluation
        self.stop, self.cluster_watch = signalled, None
        if strategies.num_workers(built.strategy) > 1:
            # A signal on one worker of several cannot start the collective save alone:
            # the workers agree on a step and all save there (preemption.py).
            self.cluster_watch = preemption.ClusterWatch(
                built.strategy, manager.checkpoint, self.save, signalled)
            self.stop = preemption.NEVER

    def run(self, step, total_steps):
        """Trains from global `step` to `total_steps`, or until a stop signal.

        Returns (the last epoch's mean metrics, the step reached).
        """
        self.iterator = self.built.iterator(step)
        self.saved_step, epoch_metrics, first = step, None, step
        if self.started is None:  # a rollback runs the loop again: one clock
            self.started = time.perf_counter()
        while step < total_steps and not self.stop:
            epoch = step // self.per_epoch + 1
            started, evaluating = time.perf_counter(), self.eval_seconds
            sums, steps_run = self._steps(step, min(epoch * self.per_epoch, total_steps),
                                          epoch)
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
                    self.write_grid(step, epoch)
                if (epoch % self.config.checkpoint_every_epochs == 0
                        or self._periodic_save_due(step)):
                    self.save(step)
            print(format_line(epoch, self.config.epochs, step, seconds, images_per_sec,
                              epoch_metrics, steps_run, self.per_epoch), flush=True)
            self.writer.flush()
            if step == epoch * self.per_epoch and self._eval_due(step, epoch):
                self._evaluate(epoch, step)  # within an epoch, _steps() evaluates
            if self.cluster_watch:  # after the epoch's outputs, so a resume skips none
                self.cluster_watch.check(step)
        if (self.evaluator and step == total_steps and step > first
                and self.evaluated_step != step):
            self._evaluate(epoch, step)  # where the run ends, whatever the period
        return epoch_metrics, step

    def _grid_inputs(self):
        """(the generator's inputs for the grid, its columns): the article's 16 noise
        vectors in 4 columns; a conditional run's, a row per class of the same 8."""
        noise = rng.normal_rows([NUM_GRID_IMAGES, models.NOISE_DIM], [self.config.seed, 1])
        classes = self.config.num_classes
        if not classes:
            return noise, 4
        columns = CLASS_GRID_COLUMNS
        labels = tf.repeat(tf.range(classes, dtype=tf.int32), columns)
        return [tf.tile(noise[:columns], [classes, 1]), labels], columns

    def write_grid(self, step, epoch=None):
        """The article's grid after whole `epoch`, or one named by `step` where a run
        stops mid-epoch; on disk and in TensorBoard (chief only)."""
        samples = self.state.shown_generator(self.grid_inputs, training=False)
        path = layout.grid_path(self.config.workdir, epoch, step)
        try:
            picture = images.save_grid(samples, path, self.grid_columns)
        except OSError as e:
            raise StorageError(
                f"could not write {path} ({e}); free some space or use another "
                f"--workdir. The last saved checkpoint, {self.manager.latest_checkpoint}, "
                "is intact and the next start resumes from it.") from None
        with self.writer.as_default(step=step):
            tf.summary.image("samples", picture.reshape(1, *picture.shape[:2], -1))

    def ended_mid_epoch(self, step):
        return step % self.per_epoch != 0

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
              + format_results(results), flush=True)

    def _periodic_save_due(self, step):
        every = self.config.save_every_steps
        return bool(every) and step % every == 0

    def save(self, step, even_if_saved=False):
        """The one way a run saves: checkpoint `step`, unless it is already on disk (a
        stop or the end at a save point), or `even_if_saved`."""
        if step == self.saved_step and not even_if_saved:
            return
        checkpoints.save(self.manager, step, self.chief)
        self.saved_step = step

    def _steps(self, step, epoch_end, epoch):
        """Compiled calls up to `epoch_end`; returns (metric sums, steps run)."""
        progress = (keras.utils.Progbar(self.per_epoch, stateful_metrics=METRICS)
                    if self.config.progress_bar else None)
        sums, first = dict.fromkeys(METRICS, 0.0), step
        every = self.config.save_every_steps
        # From the config, not from whether this worker evaluates (the chief alone
        # does): every worker splits its calls at the same steps.
        evals = self._eval_steps()
        while step < epoch_end and not self.stop:
            # A call never runs past a periodic save point or evaluation.
            next_save = (step // every + 1) * every if every else epoch_end
            next_eval = (step // evals + 1) * evals if evals else epoch_end
            num_steps = min(self.config.steps_per_loop, epoch_end - step, next_save - step,
                            next_eval - step)
            metrics = {k: float(v) for k, v in  # float(): waits for the device
                       self.built.train_steps(self.iterator, tf.constant(num_steps)).items()}
            step += num_steps
            if not all(math.isfinite(v) for v in metrics.values()):
                raise NonFinite(step, metrics)  # before any summary or checkpoint
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
