"""The IDX reader and the tfds builder over it, on Debian's real Fashion-MNIST files."""

import collections
import gzip
import hashlib
import os
import shutil

import numpy as np
import pytest
import tensorflow_datasets as tfds

from conftest import idx_bytes, write_idx_folder
from dcgan_dist.data import idx, idx_builder

# The four files as Debian's dataset-fashion-mnist ships them: train, then test.
FASHION_FILES = ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                 "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]


def test_reads_real_fashion_mnist(fashion_dir):
    images, labels = idx.read_split(fashion_dir, "train")
    assert images.shape == (60000, 28, 28, 1) and images.dtype == np.uint8
    assert labels.shape == (60000,) and labels.dtype == np.int64
    # Fashion-MNIST's published facts: 6,000 training images per class, the first is an
    # ankle boot (9), pixel values span 0..255.
    assert np.bincount(labels).tolist() == [6000] * 10
    assert labels[0] == 9 and images.min() == 0 and images.max() == 255
    test_images, test_labels = idx.read_split(fashion_dir, "test")
    assert test_images.shape == (10000, 28, 28, 1)
    assert np.bincount(test_labels).tolist() == [1000] * 10


@pytest.mark.slow
def test_builder_gives_the_same_examples_as_the_files(fashion_builder, fashion_dir):
    info = fashion_builder.info
    assert info.splits["train"].num_examples == 60000
    assert info.splits["test"].num_examples == 10000
    assert info.features["image"].shape == (28, 28, 1)
    assert info.features["label"].num_classes == 10
    for split in ("train", "test"):
        images, labels = idx.read_split(fashion_dir, split)
        from_files = collections.Counter(
            hashlib.sha1(im.tobytes() + bytes([lb])).hexdigest()
            for im, lb in zip(images, labels))
        from_tfds = collections.Counter()
        for example in tfds.as_numpy(fashion_builder.as_dataset(split=split)):
            assert example["image"].shape == (28, 28, 1)
            assert example["image"].dtype == np.uint8
            from_tfds[hashlib.sha1(example["image"].tobytes()
                                   + bytes([example["label"]])).hexdigest()] += 1
        # tfds shuffles when it writes; the multiset of (image, label) must be identical.
        assert from_tfds == from_files


def test_raw_and_gzip_files_read_alike(fashion_dir, tmp_path):
    for name in FASHION_FILES:
        with gzip.open(os.path.join(fashion_dir, name)) as f:
            (tmp_path / name[:-3]).write_bytes(f.read())
    raw_images, raw_labels = idx.read_split(str(tmp_path), "test")
    gz_images, gz_labels = idx.read_split(fashion_dir, "test")
    np.testing.assert_array_equal(raw_images, gz_images)
    np.testing.assert_array_equal(raw_labels, gz_labels)


GOOD_IMAGES = np.arange(5 * 28 * 28).reshape(5, 28, 28) % 256
GOOD_LABELS = np.array([0, 1, 2, 3, 9])


@pytest.mark.parametrize("images, labels, message", [
    (b"\x00\x00\x09\x03" + idx_bytes(GOOD_IMAGES)[4:], GOOD_LABELS, "magic number"),
    (b"PK\x03\x04" + idx_bytes(GOOD_IMAGES)[4:], GOOD_LABELS, "not an IDX file"),
    (idx_bytes(GOOD_IMAGES)[:-100], GOOD_LABELS, "is truncated"),
    (idx_bytes(GOOD_IMAGES)[:10], GOOD_LABELS, "truncated inside its header"),
    (b"\x00\x00", GOOD_LABELS, "shorter than the 4-byte IDX header"),
    (idx_bytes(GOOD_IMAGES) + b"\x00" * 7, GOOD_LABELS, "longer than its header says"),
    (np.zeros((5, 32, 32)), GOOD_LABELS, "need"),                   # wrong image size
    (np.zeros((5, 28 * 28)), GOOD_LABELS, "images of shape"),       # wrong rank
    (GOOD_IMAGES, GOOD_LABELS[:4], "must match"),                   # counts differ
    (GOOD_IMAGES, np.array([0, 1, 2, 3, 12]), "labels are 0..9"),   # label out of range
    (GOOD_IMAGES, GOOD_LABELS.reshape(5, 1), "one label per image"),
    (np.zeros((0, 28, 28)), np.zeros((0,)), "holds no images"),
])
def test_malformed_files_are_refused_with_a_reason(tmp_path, images, labels, message):
    folder = write_idx_folder(tmp_path / "data", images, labels)
    with pytest.raises(idx.IdxFormatError, match=message):
        idx.read_split(folder, "train")


def test_damaged_gzip_is_refused(tmp_path, fashion_dir):
    folder = tmp_path / "data"
    shutil.copytree(fashion_dir, folder)
    path = folder / "train-labels-idx1-ubyte.gz"
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])
    with pytest.raises(idx.IdxFormatError, match="damaged gzip"):
        idx.read_split(str(folder), "train")


def test_empty_and_missing_folders_name_the_expected_files(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(idx.IdxFormatError, match="train-images-idx3-ubyte.gz"):
        idx.read_split(str(tmp_path / "empty"), "train")
    with pytest.raises(idx.IdxFormatError, match="is not a folder"):
        idx.read_split(str(tmp_path / "nowhere"), "train")


def test_builder_refuses_a_bad_folder_before_writing(tmp_path):
    folder = write_idx_folder(tmp_path / "data", GOOD_IMAGES, GOOD_LABELS,
                           test_images=np.zeros((5, 32, 32)))
    tfds_dir = tmp_path / "tfds"
    with pytest.raises(idx.IdxFormatError, match="t10k-images"):
        idx_builder.prepared_idx_builder(folder, "tiny", str(tfds_dir))
    # Nothing prepared was left behind to be mistaken for a dataset later.
    prepared = [p for p in tfds_dir.rglob("dataset_info.json")]
    assert prepared == []


def test_builder_prepares_a_small_folder_and_reuses_it(tmp_path):
    folder = write_idx_folder(tmp_path / "data", GOOD_IMAGES, GOOD_LABELS)
    builder = idx_builder.prepared_idx_builder(folder, "tiny", str(tmp_path / "tfds"))
    labels = sorted(int(ex["label"]) for ex in tfds.as_numpy(builder.as_dataset("train")))
    assert labels == [0, 1, 2, 3, 9]
    again = idx_builder.prepared_idx_builder(folder, "tiny", str(tmp_path / "tfds"))
    assert again.data_dir == builder.data_dir
    # Other content in the same folder is a different dataset, prepared anew.
    write_idx_folder(tmp_path / "data", GOOD_IMAGES[::-1], GOOD_LABELS[::-1])
    changed = idx_builder.prepared_idx_builder(folder, "tiny", str(tmp_path / "tfds"))
    assert changed.data_dir != builder.data_dir


def test_training_files_alone_make_a_train_split_and_test_files_add_one(tmp_path):
    folder = write_idx_folder(tmp_path / "data", GOOD_IMAGES, GOOD_LABELS, with_test=False)
    assert idx.available_splits(folder) == ["train"]
    builder = idx_builder.prepared_idx_builder(folder, "tiny", str(tmp_path / "tfds"))
    assert list(builder.info.splits) == ["train"]
    # The same features as a full folder's: labels stay part of every prepared dataset.
    assert builder.info.features["label"].num_classes == idx.NUM_CLASSES
    labels = sorted(int(ex["label"]) for ex in tfds.as_numpy(builder.as_dataset("train")))
    assert labels == [0, 1, 2, 3, 9]
    # Adding the test pair later makes another dataset, with both splits.
    write_idx_folder(tmp_path / "data", GOOD_IMAGES, GOOD_LABELS,
                     test_images=GOOD_IMAGES[:3], test_labels=GOOD_LABELS[:3])
    full = idx_builder.prepared_idx_builder(folder, "tiny", str(tmp_path / "tfds"))
    assert full.data_dir != builder.data_dir
    assert full.info.splits["test"].num_examples == 3


@pytest.mark.parametrize("missing, message", [
    ("train-labels-idx1-ubyte", "has no train labels file"),
    ("train-images-idx3-ubyte", "has no train images file"),
    ("t10k-labels-idx1-ubyte", "has no test labels file"),  # t10k images alone
    ("t10k-images-idx3-ubyte", "has no test images file"),  # t10k labels alone
])
def test_half_a_split_is_refused_before_writing(tmp_path, missing, message):
    folder = write_idx_folder(tmp_path / "data", GOOD_IMAGES, GOOD_LABELS)
    os.remove(os.path.join(folder, missing))
    tfds_dir = tmp_path / "tfds"
    with pytest.raises(idx.IdxFormatError, match=message) as error:
        idx_builder.prepared_idx_builder(folder, "tiny", str(tfds_dir))
    # The sentence names the missing file and what the folder needs.
    assert missing + ".gz" in str(error.value)
    needs = ("a folder needs train-images" if missing.startswith("train")
             else "the test split is optional, but needs both t10k-images")
    assert needs in str(error.value)
    assert list(tfds_dir.rglob("dataset_info.json")) == []
