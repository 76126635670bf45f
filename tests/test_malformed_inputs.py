"""Malformed flags, data and checkpoints, each given to the real CLI beside a workdir a
previous run wrote: each must end with its own one-line reason and a non-zero status,
and leave every file already written (workdir and prepared data) exactly as it was."""

import json
import os
import shutil

import keras
import numpy as np
import pytest
import tensorflow as tf

from conftest import common_flags, run_cli, snapshot, write_idx_folder
from dcgan_dist.errors import ConfigError, DataError

IMAGES = (np.arange(100 * 28 * 28).reshape(100, 28, 28) * 7) % 256
LABELS = np.arange(100) % 10


def _data_dir(tmp_path, images=IMAGES, labels=LABELS):
    return ["--data_dir=" + write_idx_folder(tmp_path / "data", images, labels)]


def _corrupt_config(tmp_path, workdir):
    (workdir / "config.json").write_text("{not json")
    return []


def _damage_every_checkpoint(tmp_path, workdir):
    for name in os.listdir(workdir / "checkpoints"):
        if name.endswith(".data-00000-of-00001"):
            path = workdir / "checkpoints" / name
            path.write_bytes(path.read_bytes()[:1000])
    return []


def _checkpoint_of_another_model(tmp_path, workdir):
    shutil.rmtree(workdir / "checkpoints")
    other = keras.Sequential([keras.Input((100,)), keras.layers.Dense(3)])
    tf.train.CheckpointManager(tf.train.Checkpoint(generator=other),
                               str(workdir / "checkpoints"), max_to_keep=1,
                               checkpoint_name="ckpt").save(checkpoint_number=192)
    return []


def _empty_data_folder(tmp_path, workdir):
    (tmp_path / "empty").mkdir()
    return [f"--data_dir={tmp_path / 'empty'}"]


def _image_folder(tmp_path, files):
    """--data_dir of a folder of image files: {relative path: uint8 array, or bytes}."""
    from PIL import Image
    folder = tmp_path / "images"
    for name, content in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            (folder / name).write_bytes(content)
        else:
            Image.fromarray(content).save(folder / name)
    return [f"--data_dir={folder}"]


def _unrecorded_shape(workdir):
    """The workdir's config.json without the image shape (as runs recorded before shapes
    were), which a resumed run would otherwise keep."""
    recorded = json.loads((workdir / "config.json").read_text())
    del recorded["image_size"], recorded["channels"]
    (workdir / "config.json").write_text(json.dumps(recorded))
    return []


def _pictures(count, shape, prefix="", seed=0):
    pictures = np.random.default_rng(seed).integers(0, 256, (count, *shape), np.uint8)
    return {f"{prefix}{i:03d}.png": picture for i, picture in enumerate(pictures)}


def _workdir_is_a_file(tmp_path, workdir):
    path = tmp_path / "a_file"
    path.write_text("keep me")
    return [f"--workdir={path}"]


def _flags(*flags):
    return lambda tmp_path, workdir: list(flags)


# (name, makes the input and returns extra flags, exit status, part of the message)
CASES = [
    # Flags and configuration: exit 2.
    ("negative epochs", _flags("--epochs=-1"), 2, "--epochs=-1 must be 0 or more"),
    ("zero batch", _flags("--batch_size=0"), 2, "--batch_size=0 must be at least 1"),
    ("zero learning rate", _flags("--learning_rate=0"), 2, "must be positive"),
    ("not a number", _flags("--epochs=ten"), 2, "--epochs=ten"),
    ("unknown strategy", _flags("--strategy=horovod"), 2, "--strategy"),
    ("unknown precision", _flags("--precision=fp8"), 2, "--precision"),
    ("positional argument", _flags("extra_argument"), 2, "unexpected arguments"),
    ("batch not divisible", _flags("--cpu_replicas=3"), 2,
     "does not divide across 3 replicas"),
    ("XLA with synchronized batch norm", _flags("--jit_compile=true"), 2,
     "cannot compile synchronized batch norm"),
    ("other batch size on resume", _flags("--batch_size=32"), 2,
     "--batch_size=64 (this run: 32)"),
    ("other precision on resume", _flags("--precision=fp16"), 2, "(this run: fp16)"),
    ("other recipe on resume", _flags("--recipe=fast"), 2, "--recipe=article (this run: fast)"),
    ("negative averaging decay", _flags("--ema_decay=-0.1"), 2,
     "--ema_decay=-0.1 must be in [0, 1)"),
    ("beta outside [0, 1)", _flags("--beta1=1.0"), 2, "--beta1=1.0 must be in [0, 1)"),
    ("zero half-life", _flags("--ema_halflife_images=0"), 2,
     "--ema_halflife_images=0.0 must be positive"),
    ("two averaging rates", _flags("--ema_decay=0.99", "--ema_halflife_images=1000"), 2,
     "pass one of them"),
    ("unknown recipe", _flags("--recipe=slow"), 2, "--recipe"),
    ("workdir is a file", _workdir_is_a_file, 2, "is a file"),
    ("unreadable config.json", _corrupt_config, 2, "config.json is unreadable"),
    ("data_dir is not a folder", _flags("--data_dir=/nonexistent/idx"), 2,
     "is not a folder"),
    # Data: exit 3, before anything is trained or prepared.
    ("empty data folder", _empty_data_folder, 3, "holds no image files"),
    ("a corrupt image", lambda tmp_path, workdir: _image_folder(
        tmp_path, {**_pictures(8, (32, 32, 3)), "broken.png": b"\x89PNG\r\n\x1a\n" +
                   bytes(40)}), 3, "broken.png is not an image that can be decoded"),
    ("images smaller than --image_size", lambda tmp_path, workdir: _image_folder(
        tmp_path, _pictures(8, (24, 24, 3))) + ["--image_size=32"], 3,
     "is 24x24 pixels, smaller than --image_size=32"),
    ("grey and colour mixed", lambda tmp_path, workdir: _unrecorded_shape(workdir) +
     _image_folder(tmp_path, {**_pictures(4, (32, 32, 3)),
                              **_pictures(4, (32, 32), "grey")}), 3,
     "mixes 4 greyscale images"),
    ("a size the networks cannot build", _flags("--image_size=30"), 2,
     "--image_size=30 cannot be built"),
    ("neither grey nor colour", _flags("--channels=2"), 2, "--channels=2 is not supported"),
    ("wrong magic number", lambda tmp_path, workdir: _data_dir(
        tmp_path, images=b"\x00\x00\x09\x03" + bytes(100)), 3, "magic number"),
    ("truncated images", lambda tmp_path, workdir: _data_dir(
        tmp_path, images=bytes([0, 0, 8, 3]) + np.array([100, 28, 28], ">i4").tobytes()
        + bytes(5000)), 3, "is truncated"),
    ("images of another size", lambda tmp_path, workdir: _data_dir(
        tmp_path, images=np.zeros((100, 32, 32))), 3, "needs [N, 28, 28] images"),
    ("labels that don't match the images", lambda tmp_path, workdir: _data_dir(
        tmp_path, labels=LABELS[:90]), 3, "must match"),
    # Checkpoints.
    ("every checkpoint damaged", _damage_every_checkpoint, 3, "is damaged"),
    ("checkpoint of another model", _checkpoint_of_another_model, 2,
     "does not fit this model configuration"),
]


@pytest.mark.parametrize("make_input, status, message", [case[1:] for case in CASES],
                         ids=[case[0] for case in CASES])
def test_malformed_input_is_refused_and_changes_nothing(make_input, status, message,
                                                       trained_run, tfds_dir, tmp_path):
    workdir = tmp_path / "workdir"
    shutil.copytree(trained_run[0], workdir)
    extra = make_input(tmp_path, workdir)
    before = snapshot(workdir, tfds_dir, tmp_path / "a_file")
    result = run_cli("dcgan_dist.train", *common_flags(tfds_dir), "--epochs=4",
                     f"--workdir={workdir}", *extra)
    assert result.returncode == status, result.stderr[-3000:]
    assert message in result.stderr, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    # The reason is one line (TensorFlow's own log lines aside).
    reasons = [line for line in result.stderr.splitlines()
               if line.startswith(("error:", "stopped:"))]
    assert len(reasons) == 1 and message in reasons[0]
    assert snapshot(workdir, tfds_dir, tmp_path / "a_file") == before



# Image folders refused by the data module itself, in process (the CLI cases above show
# how its errors exit: DataError 3, ConfigError 2); tfds writes nothing for any of them.
FOLDER_CASES = [
    ("files that are not images", {"notes.txt": b"not a picture", "table.csv": b"1,2"},
     DataError, "holds no image files (it holds 2 other files, e.g. notes.txt)"),
    ("a single class", _pictures(8, (32, 32, 3), "cats/"), DataError,
     "a single class subfolder, cats/"),
    ("images beside class folders", {**_pictures(4, (32, 32, 3), "cats/"),
                                     **_pictures(4, (32, 32, 3))}, DataError,
     "beside class subfolders"),
    ("a test class training lacks", {**_pictures(4, (32, 32, 3), "train/cats/"),
                                     **_pictures(4, (32, 32, 3), "train/dogs/"),
                                     **_pictures(4, (32, 32, 3), "test/cows/")},
     DataError, "a test split needs the training split's classes"),
    ("sizes that differ", {**_pictures(4, (32, 32, 3)), **_pictures(4, (40, 32, 3), "b")},
     DataError, "not all of one square size"),
    ("a size the networks cannot build", _pictures(8, (30, 30, 3)), ConfigError,
     "images are 30x30 pixels, a size the networks cannot build; pass --image_size"),
]


@pytest.mark.parametrize("files, error, message", [case[1:] for case in FOLDER_CASES],
                         ids=[case[0] for case in FOLDER_CASES])
def test_unusable_image_folders_are_refused_before_anything_is_written(
        files, error, message, tmp_path):
    from dcgan_dist.data import sources
    folder = _image_folder(tmp_path, files)[0].split("=", 1)[1]
    tfds_dir = tmp_path / "tfds"
    with pytest.raises(error) as refused:
        sources.load("mine", folder, str(tfds_dir))
    assert message in str(refused.value) and "\n" not in str(refused.value)
    assert not tfds_dir.exists()
