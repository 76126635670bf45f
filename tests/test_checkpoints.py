"""Damaged checkpoints: detected before restoring, fallen back from, kept as evidence."""

import os

import keras
import pytest
import tensorflow as tf

from dcgan_dist.training import checkpoints, train_step
from dcgan_dist import workdir as layout
from dcgan_dist.training.config import TrainConfig
from dcgan_dist.errors import ConfigError, DataError


def _state():
    return train_step.create_state(TrainConfig(workdir="unused", batch_size=32,
                                               precision="fp32", sync_batch_norm=False,
                                               image_size=28, channels=1),
                                   tf.distribute.get_strategy())


@pytest.fixture
def directory(tmp_path):
    """A checkpoint folder with ckpt-1 and ckpt-2 (step variable 1 and 2)."""
    state = _state()
    manager = tf.train.CheckpointManager(state.checkpoint(), str(tmp_path), max_to_keep=5,
                                         checkpoint_name="ckpt")
    for step in (1, 2):
        state.step.assign(step)
        manager.save(checkpoint_number=step)
    return str(tmp_path)


def _truncate(path):
    data = open(path, "rb").read()
    open(path, "wb").write(data[:len(data) // 2])


def _flip_bit(path):
    data = bytearray(open(path, "rb").read())
    data[len(data) // 3] ^= 0x10
    open(path, "wb").write(bytes(data))


@pytest.mark.parametrize("damage, file", [
    (_truncate, "ckpt-2.data-00000-of-00001"),
    (_flip_bit, "ckpt-2.data-00000-of-00001"),
    (_truncate, "ckpt-2.index"),
])
def test_damaged_latest_falls_back_and_is_kept(directory, damage, file, capsys):
    damage(os.path.join(directory, file))
    damaged_bytes = open(os.path.join(directory, file), "rb").read()
    state = _state()
    restored = checkpoints.restore_latest_good(state.checkpoint(), directory)
    assert restored.endswith("ckpt-1") and int(state.step.numpy()) == 1
    out = capsys.readouterr().out
    assert "ckpt-2 is damaged" in out and "falling back to" in out
    # The evidence is moved aside, byte for byte, and no longer listed.
    kept = os.path.join(directory, layout.DAMAGED_FOLDER, file)
    assert open(kept, "rb").read() == damaged_bytes
    assert not os.path.exists(os.path.join(directory, file))
    assert tf.train.latest_checkpoint(directory).endswith("ckpt-1")
    # A new save at step 2 cannot overwrite it.
    manager = tf.train.CheckpointManager(state.checkpoint(), directory, max_to_keep=5,
                                         checkpoint_name="ckpt")
    manager.save(checkpoint_number=2)
    assert open(kept, "rb").read() == damaged_bytes
    assert layout.checkpoint_read_error(os.path.join(directory, "ckpt-2")) is None


def test_intact_checkpoints_read_clean(directory):
    for step in (1, 2):
        assert layout.checkpoint_read_error(os.path.join(directory, f"ckpt-{step}")) is None


def test_all_damaged_is_an_error_that_changes_nothing(directory):
    for step in (1, 2):
        _truncate(os.path.join(directory, f"ckpt-{step}.data-00000-of-00001"))
    before = sorted(os.listdir(directory))
    with pytest.raises(DataError, match="Every checkpoint .* is damaged"):
        checkpoints.restore_latest_good(_state().checkpoint(), directory)
    assert sorted(os.listdir(directory)) == before


def test_a_checkpoint_of_another_model_is_refused(tmp_path):
    other = keras.Sequential([keras.Input((100,)), keras.layers.Dense(3)])
    tf.train.CheckpointManager(tf.train.Checkpoint(generator=other), str(tmp_path),
                               max_to_keep=1).save()
    with pytest.raises(ConfigError, match="does not fit this model configuration"):
        checkpoints.restore_latest_good(_state().checkpoint(), str(tmp_path))


def test_no_checkpoint_yet(tmp_path):
    assert checkpoints.restore_latest_good(_state().checkpoint(), str(tmp_path)) is None
