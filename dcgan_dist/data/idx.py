"""Reading MNIST-format IDX files (raw or gzip), refusing anything malformed.

The format (http://yann.lecun.com/exdb/mnist/): two zero bytes, a type byte (0x08 for
unsigned bytes), the number of dimensions, then each dimension as a big-endian int32,
then the values. MNIST and Fashion-MNIST ship four such files per folder; training
needs only the two `train-*` ones, so a folder of a user's own images may leave out the
`t10k-*` test pair, which only evaluation reads. Labels stay required with the images:
the MNIST format pairs them, and a prepared dataset then always has the same features.
"""

import gzip
import hashlib
import os
import zlib

import numpy as np

from dcgan_dist.errors import DataError

IMAGE_SIZE = 28
NUM_CLASSES = 10
_UBYTE = 0x08
# Split name in tfds -> file prefix in the MNIST distribution.
SPLIT_PREFIXES = {"train": "train", "test": "t10k"}
REQUIRED_SPLIT = "train"  # the test split is optional: only evaluation reads it
KINDS = ("images", "labels")


class IdxFormatError(DataError):
    """An IDX file or folder is missing, malformed or inconsistent."""


def _candidates(prefix, kind):
    ndim = 3 if kind == "images" else 1
    # Both spellings occur in the wild: "train-images-idx3-ubyte" and "...images.idx3-...".
    stems = [f"{prefix}-{kind}-idx{ndim}-ubyte", f"{prefix}-{kind}.idx{ndim}-ubyte"]
    return [stem + ext for stem in stems for ext in (".gz", "")]



def split_file_names(split):
    """`split`'s two files as a phrase: "t10k-images-idx3-ubyte[.gz] and t10k-..."."""
    return " and ".join(_candidates(SPLIT_PREFIXES[split], kind)[1] + "[.gz]"
                        for kind in KINDS)


def folder_contents():
    """What a --data_dir folder holds, as a phrase for messages and help."""
    return (f"the MNIST-format files {split_file_names(REQUIRED_SPLIT)}, plus "
            f"{split_file_names('test')} if you will evaluate")


def _present(folder, split, kind):
    return [os.path.join(folder, name) for name in _candidates(SPLIT_PREFIXES[split], kind)
            if os.path.isfile(os.path.join(folder, name))]


def find_split_files(folder, split):
    """Paths of the (images, labels) files of `split` in `folder`, or IdxFormatError."""
    if not os.path.isdir(folder):
        raise IdxFormatError(f"{folder} is not a folder; pass --data_dir=FOLDER holding "
                             f"{folder_contents()}.")
    paths = []
    for kind in KINDS:
        found = _present(folder, split, kind)
        if not found:
            need = (f"a folder needs {split_file_names(split)}" if split == REQUIRED_SPLIT
                    else f"the {split} split is optional, but needs both "
                         f"{split_file_names(split)}")
            raise IdxFormatError(
                f"{folder} has no {split} {kind} file: expected one of "
                f"{', '.join(_candidates(SPLIT_PREFIXES[split], kind))} ({need}).")
        paths.append(found[0])
    return tuple(paths)


def available_splits(folder):
    """The splits `folder` holds: train (else IdxFormatError), then test if either of its
    files is there -- and then both must be, so half a split is refused, not ignored."""
    splits = []
    for split in SPLIT_PREFIXES:
        if split == REQUIRED_SPLIT or any(_present(folder, split, kind) for kind in KINDS):
            find_split_files(folder, split)
            splits.append(split)
    return splits


def _read_bytes(path):
    with open(path, "rb") as f:
        data = f.read()
    if data[:2] == b"\x1f\x8b":  # gzip magic, whatever the file is called
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as e:
            raise IdxFormatError(f"{path} is a damaged gzip file ({e}); "
                                 "download or copy it again.") from None
    return data


def read_idx(path):
    """The array stored in one IDX file of unsigned bytes."""
    data = _read_bytes(path)
    if len(data) < 4:
        raise IdxFormatError(f"{path} is truncated: {len(data)} bytes, shorter than the "
                             "4-byte IDX header.")
    if data[0] != 0 or data[1] != 0 or data[2] != _UBYTE or data[3] == 0:
        raise IdxFormatError(
            f"{path} is not an IDX file of unsigned bytes: its magic number is "
            f"0x{data[:4].hex()}, expected 0x000008NN (NN = number of dimensions).")
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise IdxFormatError(f"{path} is truncated inside its header ({len(data)} of "
                             f"{header} bytes).")
    shape = tuple(int(d) for d in np.frombuffer(data, ">i4", count=ndim, offset=4))
    expected = int(np.prod(shape, dtype=np.int64))
    found = len(data) - header
    if found != expected:
        what = "truncated" if found < expected else "longer than its header says"
        raise IdxFormatError(f"{path} is {what}: its header promises {expected} values "
                             f"for shape {shape}, the file holds {found}.")
    return np.frombuffer(data, np.uint8, offset=header).reshape(shape)


def read_split(folder, split):
    """(images uint8 [N, 28, 28, 1], labels int64 [N]) of one split, checked."""
    images_path, labels_path = find_split_files(folder, split)
    images = read_idx(images_path)
    labels = read_idx(labels_path)
    if images.ndim != 3 or images.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE):
        raise IdxFormatError(
            f"{images_path} holds images of shape {images.shape[1:]} (array "
            f"{images.shape}); this model needs [N, {IMAGE_SIZE}, {IMAGE_SIZE}] images.")
    if labels.ndim != 1:
        raise IdxFormatError(f"{labels_path} should hold one label per image, found an "
                             f"array of shape {labels.shape}.")
    if len(images) != len(labels):
        raise IdxFormatError(f"{images_path} has {len(images)} images but {labels_path} "
                             f"has {len(labels)} labels; the two files must match.")
    if len(images) == 0:
        raise IdxFormatError(f"{images_path} holds no images.")
    if labels.max() >= NUM_CLASSES:
        raise IdxFormatError(f"{labels_path} has label {labels.max()}; MNIST-format "
                             f"labels are 0..{NUM_CLASSES - 1}.")
    return images[..., None], labels.astype(np.int64)


def fingerprint(folder):
    """A short hash of the folder's IDX files, so a changed folder is prepared again."""
    digest = hashlib.sha256()
    # In SPLIT_PREFIXES' order, so a full folder keeps the hash (and the prepared copy)
    # it had before test files became optional.
    for split in available_splits(folder):
        for path in find_split_files(folder, split):
            with open(path, "rb") as f:
                digest.update(f.read())
    return digest.hexdigest()[:12]
