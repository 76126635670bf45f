"""Damaged checkpoints: detected before restoring, fallen back from, kept as evidence."""

import os
import shutil

import keras
import pytest
import tensorflow as tf

from dcgan_dist.training import checkpoints, train_step
from dcgan_dist import workdir as layout
from dcgan_dist.training.config import TrainConfig
from dcgan_dist.errors import BusyError, ConfigError, DataError


def _state():
    return train_step.create_state(TrainConfig(workdir="unused", batch_size=32,
                                               precision="fp32", sync_batch_norm=False,
                                               image_size=28, channels=1),
                                   tf.distribute.get_strategy())


@pytest.fixture
def directory(tmp_path):
    """WORKDIR/checkpoints with ckpt-1 and ckpt-2 (step variable 1 and 2)."""
    directory = layout.checkpoint_dir(str(tmp_path))
    state = _state()
    manager = tf.train.CheckpointManager(state.checkpoint(), directory, max_to_keep=5,
                                         checkpoint_name="ckpt")
    for step in (1, 2):
        state.step.assign(step)
        manager.save(checkpoint_number=step)
    return directory


def _restore(directory, state=None):
    """restore_latest_good then tidy (as the chief does) on the workdir of checkpoint
    folder `directory`; returns the path restored."""
    state = state or _state()
    workdir = os.path.dirname(directory)
    restored = checkpoints.restore_latest_good(state.checkpoint(), workdir)
    checkpoints.tidy(workdir, restored)
    return restored.path


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
    restored = _restore(directory, state)
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
        _restore(directory)
    assert sorted(os.listdir(directory)) == before


def test_a_checkpoint_of_another_model_is_refused(tmp_path):
    other = keras.Sequential([keras.Input((100,)), keras.layers.Dense(3)])
    directory = layout.checkpoint_dir(str(tmp_path))
    tf.train.CheckpointManager(tf.train.Checkpoint(generator=other), directory,
                               max_to_keep=1, checkpoint_name="ckpt").save()
    with pytest.raises(ConfigError, match="does not fit this model configuration"):
        _restore(directory)


def test_no_checkpoint_yet(tmp_path):
    assert _restore(layout.checkpoint_dir(str(tmp_path))) is None


@pytest.mark.parametrize("garble", [
    lambda path: open(path, "w").write("garbled: one line of text"),
    lambda path: open(path, "w").close(),
    os.remove,
])
def test_a_damaged_list_still_finds_the_latest_and_is_rewritten(directory, garble,
                                                                capsys):
    """A garbled, empty or missing checkpoints/checkpoint: the files decide, not the
    list (TensorFlow ignores such a list: a run would restart from step 0)."""
    garble(os.path.join(directory, "checkpoint"))
    state = _state()
    assert _restore(directory, state).endswith("ckpt-2")
    assert int(state.step.numpy()) == 2
    assert "rewritten from the files: ['ckpt-1', 'ckpt-2']" in capsys.readouterr().out
    listed = tf.train.get_checkpoint_state(directory)
    assert [os.path.basename(p) for p in listed.all_model_checkpoint_paths] == [
        "ckpt-1", "ckpt-2"]
    assert _restore(directory) and "rewritten" not in capsys.readouterr().out


def test_an_unlisted_whole_checkpoint_is_the_latest_and_debris_goes(directory, tmp_path):
    """A kill after a save's files and before its listing: the save is whole, so it is
    the latest, for training and the tools alike; a save's temporary folder goes."""
    state = _state()
    state.step.assign(3)
    elsewhere = str(tmp_path / "elsewhere")
    tf.train.CheckpointManager(state.checkpoint(), elsewhere, max_to_keep=1,
                               checkpoint_name="ckpt").save(checkpoint_number=3)
    for name in os.listdir(elsewhere):  # its files, not its list
        if name.startswith("ckpt-3"):
            shutil.copy(os.path.join(elsewhere, name), directory)
    os.makedirs(os.path.join(directory, "ckpt-4_temp"))
    workdir = os.path.dirname(directory)
    assert layout.resolve_checkpoint(workdir).endswith("ckpt-3")
    assert _restore(directory).endswith("ckpt-3")
    assert not os.path.exists(os.path.join(directory, "ckpt-4_temp"))
    assert tf.train.latest_checkpoint(directory).endswith("ckpt-3")


def test_the_tools_skip_a_half_written_checkpoint(directory, capsys):
    _truncate(os.path.join(directory, "ckpt-2.index"))
    assert layout.resolve_checkpoint(os.path.dirname(directory)).endswith("ckpt-1")
    assert "ckpt-2 is damaged" in capsys.readouterr().err


def test_checkpoints_saved_by_another_process_since_the_restore_are_not_overwritten(
        directory):
    """Two starts of one run: the second restored before the first saved more; it must
    not go on from its older state over the first's checkpoints."""
    workdir = os.path.dirname(directory)
    restored = checkpoints.restore_latest_good(_state().checkpoint(), workdir)
    state = _state()
    state.step.assign(3)
    tf.train.CheckpointManager(state.checkpoint(), directory, max_to_keep=5,
                               checkpoint_name="ckpt").save(checkpoint_number=3)
    with pytest.raises(BusyError, match="changed while this process started"):
        checkpoints.tidy(workdir, restored)
