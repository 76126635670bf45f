"""Folders of image files through tfds: layouts and labels, Fashion-MNIST written out as
PNGs read back as the same images as its IDX files, real colour icons at 32 and 64
pixels, and a tfds dataset of another shape fitted to the run's."""

import json
import os
import time

import numpy as np
import pytest
from PIL import Image

from conftest import FASHION_DIR, write_icon_folder, write_idx_folder, write_png_folder
from dcgan_dist.data import folder_layout, folders, idx, sources, splits
from dcgan_dist.errors import DataError


def _save(path, picture):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(picture).save(path)


def test_layouts_give_labels_splits_and_unlabelled_images(tmp_path):
    grey = np.zeros((8, 8), np.uint8)
    for name in ("train/cat/a.png", "train/cat/deeper/b.png", "train/dog/c.png",
                 "test/dog/d.png"):
        _save(tmp_path / "labelled" / name, grey)
    (tmp_path / "labelled" / "train" / "dog" / "notes.txt").write_text("skipped")
    layout = folder_layout.Layout(str(tmp_path / "labelled"))
    assert layout.class_names == ["cat", "dog"]
    assert layout.splits == {
        "train": [("train/cat/a.png", "cat"), ("train/cat/deeper/b.png", "cat"),
                  ("train/dog/c.png", "dog")],
        "test": [("test/dog/d.png", "dog")]}
    for name in ("x.png", "y.jpg"):
        _save(tmp_path / "flat" / name, grey)
    flat = folder_layout.Layout(str(tmp_path / "flat"))
    assert flat.class_names is None and flat.splits == {"train": [("x.png", None),
                                                                  ("y.jpg", None)]}
    # A changed folder is another folder content: prepared again.
    before = flat.fingerprint()
    _save(tmp_path / "flat" / "z.png", grey)
    assert folder_layout.Layout(str(tmp_path / "flat")).fingerprint() != before
    _save(tmp_path / "bad_test" / "train" / "cat" / "a.png", grey)
    _save(tmp_path / "bad_test" / "train" / "dog" / "a.png", grey)
    _save(tmp_path / "bad_test" / "test" / "cow" / "a.png", grey)
    with pytest.raises(DataError, match="a test split needs the training split's classes"):
        folder_layout.Layout(str(tmp_path / "bad_test"))


def test_decoding_composites_transparency_onto_white_and_converts_channels(tmp_path):
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[0, 0, 3] = 255  # one opaque red pixel, the rest transparent
    _save(tmp_path / "a.png", rgba)
    picture = folders.decode(str(tmp_path / "a.png"))
    assert picture.shape == (4, 4, 3) and picture.dtype == np.uint8
    assert picture[0, 0].tolist() == [200, 0, 0]
    assert picture[1, 1].tolist() == [255, 255, 255]
    grey = folders.to_channels(picture, 1)
    assert grey[0, 0, 0] == round(0.299 * 200) and grey[1, 1, 0] == 255
    assert folders.to_channels(grey, 3)[0, 0].tolist() == [60, 60, 60]


def test_fashion_mnist_as_png_files_holds_the_same_images_as_its_idx_files(tmp_path):
    """Every 10th Fashion-MNIST image (6,000 and 1,000) written as PNGs in class
    subfolders, prepared through tfds and read back: the same images with the same
    labels, split by split, as the same images in IDX files (the order differs: tfds
    orders examples by a hash of their keys, and the folder's keys follow its classes).
    All 70,000 passed the same comparison once (docs/measurements.md#colour); a tenth
    keeps the suite short."""
    arrays = {split: tuple(a[::10] for a in idx.read_split(FASHION_DIR, split))
              for split in ("train", "test")}
    folder = write_png_folder(tmp_path / "fashion_png", arrays)
    (train_images, train_labels), (test_images, test_labels) = arrays.values()
    idx_folder = write_idx_folder(tmp_path / "fashion_idx", train_images[..., 0],
                                  train_labels, test_images[..., 0], test_labels)
    data = sources.load("fashion_mnist", folder, str(tmp_path / "tfds"))
    from_idx = sources.load("fashion_mnist", idx_folder, str(tmp_path / "tfds")).builder
    assert data.image_shape == (28, 28, 1)
    for split, (images, labels) in arrays.items():
        from_folder = splits.load_split(data.builder, split)
        reference = splits.load_split(from_idx, split)
        assert len(from_folder[0]) == len(images) == len(reference[0])

        def ordered(pair):
            images, labels = pair
            keys = [labels[i].tobytes() + images[i].tobytes() for i in range(len(labels))]
            order = np.argsort(np.array(keys, dtype=object), kind="stable")
            return images[order], labels[order]

        for got, expected in zip(ordered(from_folder), ordered(reference)):
            np.testing.assert_array_equal(got, expected)
    # Prepared once per folder content: loading again reads the prepared copy.
    prepared = data.builder.data_dir
    mtime = os.path.getmtime(os.path.join(prepared, "dataset_info.json"))
    again = sources.load("fashion_mnist", folder, str(tmp_path / "tfds"))
    assert again.builder.data_dir == prepared
    assert os.path.getmtime(os.path.join(prepared, "dataset_info.json")) == mtime


@pytest.mark.parametrize("size", [32, 64])
def test_real_colour_icons_are_prepared_at_the_size_asked_for(icon_dir, tfds_dir, size):
    data = sources.load("icons", icon_dir, tfds_dir, size, 3)
    assert data.image_shape == (size, size, 3)
    images, labels = splits.load_split(data.builder, "train")
    assert images.shape[1:] == (size, size, 3) and images.dtype == np.uint8
    assert data.builder.info.features["label"].names == ["apps", "devices", "mimetypes",
                                                         "places"]
    assert sorted(np.unique(labels)) == [0, 1, 2, 3]
    # Real colour: the channels differ, and the icons' transparent corners became white.
    assert np.mean(images[..., 0] != images[..., 2]) > 0.05
    assert np.mean(images[:, 0, 0] == 255) > 0.5
    # The oxygen theme holds a few grey icons: converted, and said so.
    assert any("converted to colour" in note for note in data.notes)


def test_a_tfds_dataset_of_another_shape_is_fitted_to_the_run(tmp_path):
    """A tfds dataset prepared here from real icons at 64x64x3 (as cifar10 or celeb_a
    would be on a machine that downloads them), loaded by its name and fitted to 32x32x1:
    the centre crop and Lanczos resize in the input pipeline, luma for grey."""
    folder = write_icon_folder(tmp_path / "icons", classes=("apps", "places"),
                               per_class=20)
    tfds_dir = str(tmp_path / "tfds")
    prepared = sources.load("x", folder, tfds_dir, 64, 3).builder
    name = f"{prepared.info.name}/{prepared.info.config_name}"
    data = sources.load(name, tfds_data_dir=tfds_dir, image_size=32, channels=1)
    assert data.image_shape == (32, 32, 1)
    fitted, _ = splits.load_split(data.builder, "train", data.image_shape)
    original, _ = splits.load_split(prepared, "train")
    assert fitted.shape == (len(original), 32, 32, 1)
    # Lanczos down by 2 keeps each 2x2 block's mean to within a few grey levels.
    luma = original.astype(np.float64) @ [0.299, 0.587, 0.114]
    blocks = luma.reshape(-1, 32, 2, 32, 2).mean(axis=(2, 4))
    assert np.mean(np.abs(fitted[..., 0] - blocks)) < 6
    with pytest.raises(DataError, match="smaller than --image_size=128"):
        sources.load(name, tfds_data_dir=tfds_dir, image_size=128)


def _tiny_folder(root, classes=("a", "b"), per_class=3, size=28):
    """root/train/CLASS/N.png: distinct grey 28x28 PNGs; returns root as a str."""
    for c, name in enumerate(classes):
        for i in range(per_class):
            _save(root / "train" / name / f"{i}.png",
                  np.full((size, size), 10 * i + 100 * c, np.uint8))
    return str(root)


def test_symlink_loops_end_and_each_image_is_listed_once(tmp_path):
    """Links are followed, inside the folder and out of it, each real folder and file
    once; links back into a folder that holds them (loops) are skipped and noted. With
    os.walk(followlinks=True) this folder lists class b's images as class a (through
    a/deeper/y -> train/) and, with two loops in one class, walks for ever."""
    import signal
    data = tmp_path / "data"
    _tiny_folder(data)
    os.symlink(".", data / "train" / "a" / "x")  # the class itself
    (data / "train" / "a" / "deeper").mkdir()
    os.symlink("../..", data / "train" / "a" / "deeper" / "y")  # train/: above the class
    os.symlink("0.png", data / "train" / "b" / "twice.png")  # one file, two names
    elsewhere = tmp_path / "elsewhere"  # outside the data folder: followed, once
    for i in range(2):
        _save(elsewhere / f"m{i}.png", np.full((28, 28), 200 + i, np.uint8))
    os.symlink(elsewhere, data / "train" / "b" / "more")
    os.symlink(elsewhere, data / "train" / "b" / "more_again")
    os.symlink(data / "train", elsewhere / "back")  # from outside back in: a loop

    def endless(*_):
        raise TimeoutError("the walk did not end")

    previous = signal.signal(signal.SIGALRM, endless)
    signal.alarm(20)
    try:
        layout = folder_layout.Layout(str(data))
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    assert layout.class_names == ["a", "b"]
    assert layout.splits == {"train": [
        ("train/a/0.png", "a"), ("train/a/1.png", "a"), ("train/a/2.png", "a"),
        ("train/b/0.png", "b"), ("train/b/1.png", "b"), ("train/b/2.png", "b"),
        ("train/b/more/m0.png", "b"), ("train/b/more/m1.png", "b")]}
    assert layout.notes == [
        "skipped the links train/a/x, train/a/deeper/y and train/b/more/back: each leads "
        "back into a folder that holds it (a loop), whose images are read once"]
    # A link in the split to the split, or to the data folder: a loop too, not a class.
    os.symlink(".", data / "train" / "c")
    os.symlink("..", data / "train" / "d")
    assert folder_layout.Layout(str(data)).splits == layout.splits


def test_file_names_that_are_not_utf8_are_prepared_and_read(tmp_path):
    """A file and a class folder whose names are bytes that are not UTF-8 (what Python
    gives as surrogates): fingerprinted by their bytes, prepared, read back; the class's
    label name shows the byte as \\xfe."""
    data = tmp_path / "data"
    _tiny_folder(data)
    odd_class = os.path.join(os.fsencode(data), b"train", b"\xfe")
    os.mkdir(odd_class)
    for path in (os.path.join(os.fsencode(data), b"train", b"a", b"\xff.png"),
                 os.path.join(odd_class, b"x.png")):
        Image.fromarray(np.full((28, 28), 255, np.uint8)).save(os.fsdecode(path),
                                                               format="PNG")
    layout = folder_layout.Layout(str(data))
    assert ("train/a/\udcff.png", "a") in layout.splits["train"]
    assert len(layout.fingerprint()) == 12
    assert layout.label_names == ["a", "b", "\\xfe"]
    data = sources.load("mine", str(tmp_path / "data"), str(tmp_path / "tfds"))
    images, labels = splits.load_split(data.builder, "train")
    assert data.builder.info.features["label"].names == ["a", "b", "\\xfe"]
    assert len(images) == 8 and sorted(np.bincount(labels).tolist()) == [1, 3, 4]
    assert images[labels == 2].min() == 255


PREPARE = """
import json, os, sys, time
from dcgan_dist.data import sources, splits
folder, tfds_dir, ready, go = sys.argv[1:]
open(ready, "w").close()
while not os.path.exists(go):
    time.sleep(0.005)
data = sources.load("mine", folder, tfds_dir)
images, labels = splits.load_split(data.builder, "train")
order = sorted(range(len(labels)), key=lambda i: (labels[i], images[i].tobytes()))
print(json.dumps({"prepared": data.builder.data_dir, "labels": labels[order].tolist(),
                  "images": images[order].tolist()}))
"""


@pytest.mark.slow
def test_two_first_preparations_of_one_folder_at_once_take_turns(tmp_path):
    """Two processes prepare one new folder at the same moment: both succeed and read
    the same images; the second waited for the first (or found it prepared) instead of
    racing it to tfds' rename (FileExistsError: '... Destination ... already exists')."""
    import subprocess
    import sys
    folder = _tiny_folder(tmp_path / "data", per_class=6)
    tfds_dir, go = tmp_path / "tfds", tmp_path / "go"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    processes = [subprocess.Popen(
        [sys.executable, "-c", PREPARE, folder, str(tfds_dir), str(tmp_path / f"ready{i}"),
         str(go)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        for i in range(2)]
    try:
        deadline = time.monotonic() + 120
        while not all((tmp_path / f"ready{i}").exists() for i in range(2)):
            assert time.monotonic() < deadline and all(p.poll() is None for p in processes)
            time.sleep(0.01)
        go.touch()  # both imported TensorFlow: they start preparing together
        outputs = [p.communicate(timeout=120) for p in processes]
    finally:
        for p in processes:
            p.kill()
    for p, (out, err) in zip(processes, outputs):
        assert p.returncode == 0, err[-3000:]
        assert "Traceback" not in err
    first, second = (json.loads(out.splitlines()[-1]) for out, _ in outputs)
    assert first == second and first["labels"] == [0] * 6 + [1] * 6
    prepared = first["prepared"]
    assert os.path.isfile(os.path.join(os.path.dirname(prepared), ".prepare.lock"))
    assert sorted(os.listdir(os.path.dirname(prepared))) == [".prepare.lock", "1.0.0"]
