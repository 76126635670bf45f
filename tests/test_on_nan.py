"""--on_nan=rollback in the real loop, with a divergence injected on purpose (the test
wraps the compiled step; the library has no switch for it): the restore, the data stream
at the restored step, the halved rates (also after a restart), the run going on, and the
end after three rollbacks. A real divergence (a learning rate of 1e30) through the
command line: exit 5. Also the grid a run writes where it stops mid-epoch, and the
partial epoch's line."""

import dataclasses
import glob
import os

import imageio.v3 as iio
import numpy as np
import pytest
import tensorflow as tf

from conftest import checkpoint_values, mirrored, run_cli
from dcgan_dist.training import trainer, train_step
from dcgan_dist import workdir as layout
from dcgan_dist.errors import NonFiniteError
from dcgan_dist.training.config import TrainConfig

BATCH = 32  # train[:320]: 10 steps per epoch


def _config(tfds_dir, workdir, **overrides):
    return TrainConfig(workdir=str(workdir), dataset="fashion_mnist", tfds_data_dir=tfds_dir,
                       split="train[:320]", batch_size=BATCH, epochs=1, precision="fp32",
                       save_every_steps=4, on_nan="rollback", progress_bar=False,
                       steps_per_loop=1,  # a divergence is reported at its own step
                       **overrides)


def _diverge_at(monkeypatch, *steps):
    """Makes the training call that trains each of global `steps` diverge, once per entry
    (6, 6: twice at step 6): before that call the generator's first kernel becomes NaN,
    so its losses are really non-finite, as a diverging run's are."""
    pending = sorted(steps)
    real_build = train_step.build

    def build(*args, **kwargs):
        built = real_build(*args, **kwargs)
        compiled = built.train_steps

        def train_steps(iterator, num_steps):
            step = int(built.state.step.numpy())
            if pending and step < pending[0] <= step + int(num_steps):
                pending.pop(0)
                kernel = built.state.generator.trainable_variables[0]
                kernel.assign(tf.fill(kernel.shape, float("nan")))
            return compiled(iterator, num_steps)

        built.train_steps = train_steps
        return built

    monkeypatch.setattr(train_step, "build", build)


def _learning_rates(workdir):
    values = checkpoint_values(str(workdir))
    rates = [v for k, v in values.items() if "optimizer" in k and "learning_rate" in k]
    assert len(rates) == 2, sorted(values)
    return [float(r) for r in rates]


def _halve_rates_in_checkpoint(config):
    """What a rollback does, done by hand on a run's checkpoint (for the expected run)."""
    config = dataclasses.replace(config, sync_batch_norm=False, precision="fp32",
                                 image_size=28, channels=1)
    state = train_step.create_state(config, tf.distribute.get_strategy())
    checkpoint = state.checkpoint()
    directory = layout.checkpoint_dir(config.workdir)
    checkpoint.restore(tf.train.latest_checkpoint(directory)).assert_consumed()
    for optimizer in (state.generator_optimizer, state.discriminator_optimizer):
        optimizer.learning_rate.assign(optimizer.learning_rate * 0.5)
    tf.train.CheckpointManager(checkpoint, directory, max_to_keep=5,
                               checkpoint_name=layout.CHECKPOINT_NAME).save(
        checkpoint_number=int(state.step.numpy()))


@pytest.mark.slow
def test_rollback_restores_the_step_and_its_data_and_halves_the_rates(
        fashion_builder, tfds_dir, tmp_path, capsys, monkeypatch):
    # Diverges at step 6: rolls back to checkpoint 4 (--save_every_steps=4) with both
    # rates halved, and trains steps 5-8 again.
    rolled = tmp_path / "rolled"
    with monkeypatch.context() as patch:
        _diverge_at(patch, 6)
        trainer.train(_config(tfds_dir, rolled, max_steps=8), mirrored(1))
    out = capsys.readouterr().out
    assert "non-finite g_loss=nan" in out and "at step 6; rolled back to" in out, out
    assert out.count("rolled back to") == 1
    assert "(step 4) with the learning rates x0.5" in out, out

    # Expected: the same run stopped at 4, its rates halved by hand, resumed to 8. Equal
    # only if the rollback restored every variable and restarted the data (and noise)
    # stream at step 4, not where the diverged call left it.
    expected = tmp_path / "expected"
    trainer.train(_config(tfds_dir, expected, max_steps=4), mirrored(1))
    _halve_rates_in_checkpoint(_config(tfds_dir, expected))
    trainer.train(_config(tfds_dir, expected, max_steps=8), mirrored(1))
    got, want = checkpoint_values(str(rolled)), checkpoint_values(str(expected))
    assert got.keys() == want.keys()
    for name in want:
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)
    np.testing.assert_allclose(_learning_rates(rolled), [0.5e-4, 0.5e-4], rtol=1e-6)

    # The halved rates survive a restart: the resumed run trains on with them.
    capsys.readouterr()
    trainer.train(_config(tfds_dir, rolled, max_steps=10), mirrored(1))
    np.testing.assert_allclose(_learning_rates(rolled), [0.5e-4, 0.5e-4], rtol=1e-6)
    # The resumed process ran 2 of the epoch's 10 steps: its line says so.
    assert "train | epoch: 1/1 (partial: 2 of 10 steps) | step: 10" in capsys.readouterr().out


@pytest.mark.slow
def test_a_run_stopping_mid_epoch_writes_a_grid_the_gif_shows(fashion_builder, tfds_dir,
                                                            tmp_path):
    workdir = tmp_path / "w"
    config = _config(tfds_dir, workdir, max_steps=3)
    trainer.train(config, mirrored(1))
    assert [os.path.basename(p) for p in glob.glob(str(workdir / "image_at_*.png"))] == [
        "image_at_step_00000003.png"]
    assert iio.imread(workdir / layout.GIF_FILE, index=None).shape[0] == 1
    trainer.train(dataclasses.replace(config, max_steps=0, epochs=2), mirrored(1))
    frames = iio.imread(workdir / layout.GIF_FILE, index=None)
    paths = layout.grids(str(workdir), steps_per_epoch=10)
    assert [os.path.basename(p) for p in paths] == [
        "image_at_step_00000003.png", "image_at_epoch_0001.png", "image_at_epoch_0002.png"]
    for frame, path in zip(frames, paths):  # in training order
        np.testing.assert_array_equal(frame[..., 0] if frame.ndim == 3 else frame,
                                      iio.imread(path))


def test_rollback_gives_up_after_three_rollbacks(fashion_builder, tfds_dir, tmp_path,
                                                monkeypatch):
    _diverge_at(monkeypatch, 6, 6, 6, 6)
    workdir = tmp_path / "w"
    with pytest.raises(NonFiniteError, match="non-finite g_loss=nan, .* at step 6, again "
                       "after 3 rollbacks that each halved the learning rates"):
        trainer.train(_config(tfds_dir, workdir), mirrored(1))
    # What was saved before the divergence is intact, and nothing after it was saved.
    assert [step for step, _ in layout.list_checkpoints(str(workdir))] == [4]


@pytest.mark.slow
def test_the_command_line_stops_a_real_divergence_with_exit_5(fashion_builder, tfds_dir,
                                                               tmp_path):
    """Adam at a learning rate of 1e30: the first update sends the weights to inf, the
    second step's losses are NaN. --on_nan=stop (the default) exits 5, saving nothing."""
    workdir = tmp_path / "w"
    result = run_cli("dcgan_dist.train", f"--workdir={workdir}", "--dataset=fashion_mnist",
                     f"--tfds_data_dir={tfds_dir}", "--split=train[:320]",
                     f"--batch_size={BATCH}", "--epochs=1", "--precision=fp32",
                     "--save_every_steps=4", "--learning_rate=1e30")
    assert result.returncode == 5, result.stderr[-2000:]
    assert "non-finite" in result.stderr and \
        "nothing after the last checkpoint was saved" in result.stderr, result.stderr[-2000:]
    assert layout.list_checkpoints(str(workdir)) == []
