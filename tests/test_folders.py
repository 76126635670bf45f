"""Folders of image files through tfds: layouts and labels, Fashion-MNIST written out as
PNGs read back as the same images as its IDX files, real colour icons at 32 and 64
pixels, and a tfds dataset of another shape fitted to the run's."""

import json
import os

import numpy as np
import pytest
from PIL import Image

from conftest import FASHION_DIR, write_icon_folder, write_idx_folder, write_png_folder
from dcgan_dist.data import folders, idx, sources, splits
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
    layout = folders.Layout(str(tmp_path / "labelled"))
    assert layout.class_names == ["cat", "dog"]
    assert layout.splits == {
        "train": [("train/cat/a.png", "cat"), ("train/cat/deeper/b.png", "cat"),
                  ("train/dog/c.png", "dog")],
        "test": [("test/dog/d.png", "dog")]}
    for name in ("x.png", "y.jpg"):
        _save(tmp_path / "flat" / name, grey)
    flat = folders.Layout(str(tmp_path / "flat"))
    assert flat.class_names is None and flat.splits == {"train": [("x.png", None),
                                                                  ("y.jpg", None)]}
    # A changed folder is another folder content: prepared again.
    before = flat.fingerprint()
    _save(tmp_path / "flat" / "z.png", grey)
    assert folders.Layout(str(tmp_path / "flat")).fingerprint() != before
    _save(tmp_path / "bad_test" / "train" / "cat" / "a.png", grey)
    _save(tmp_path / "bad_test" / "train" / "dog" / "a.png", grey)
    _save(tmp_path / "bad_test" / "test" / "cow" / "a.png", grey)
    with pytest.raises(DataError, match="a test split needs the training split's classes"):
        folders.Layout(str(tmp_path / "bad_test"))


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
