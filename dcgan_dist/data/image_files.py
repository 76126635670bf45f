"""Reading the images a user hands to `detect`: image files (PNG, JPEG, ... decoded as
training decodes a folder's, see `folders`) of the run's size, and `.npz` files of uint8
images such as `generate` writes.

Colour files given to a grey run become grey, and grey files given to a colour run are
copied to R, G and B. Every way a file can be unusable (missing, empty, not an image, a
.npy or another file renamed .npz, a damaged archive, a member that is no array, wrong
size or type) is a DataError with a sentence naming the file, raised before TensorFlow
is imported. Pickled objects are never loaded (np.load's allow_pickle=False): unpickling
runs code.
"""

import os
import zipfile
import zlib

import numpy as np

from dcgan_dist import shapes
from dcgan_dist.data import folders
from dcgan_dist.errors import DataError

NPZ_KEY = "images"  # what `generate` writes; another key works when it is the only one


def _check_file(path):
    if not os.path.isfile(path):
        raise DataError(f"{path} does not exist (or is not a file); pass image files or "
                        "an .npz of images.")
    if os.path.getsize(path) == 0:
        raise DataError(f"{path} is empty; pass an image file or an .npz of images.")


def read_picture(path, image_shape=shapes.DEFAULT_SHAPE):
    """uint8 [H, W, C] of an image file, of `image_shape` exactly."""
    _check_file(path)
    picture = folders.to_channels(folders.decode(path), image_shape[-1])
    if picture.shape != tuple(image_shape):
        raise DataError(f"{path} is {picture.shape[1]}x{picture.shape[0]} pixels; the "
                        f"discriminator takes {image_shape[1]}x{image_shape[0]} images (a "
                        "grid of samples must be cut into single images first).")
    return picture


_NPY_MAGIC = b"\x93NUMPY"  # numpy.save's files, which np.load returns as one array
# What reading a damaged or foreign archive member can raise: zipfile's and zlib's
# errors, numpy's (a bad header, pickled objects refused), an encrypted or unsupported
# member (RuntimeError, NotImplementedError), a header that claims more than memory holds.
_UNREADABLE = (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error,
               RuntimeError, NotImplementedError, MemoryError)
_WRITE_NPZ = "numpy.savez(PATH, images=IMAGES) writes one, as dcgan_dist.generate does"


def _reason(error):
    """`error` on one short line, for a sentence."""
    return f"{type(error).__name__}: {' '.join(str(error).split())[:100]}"


def _npz_member(path):
    """The array of the .npz file `path` that holds the images: NPZ_KEY, or its only
    member; nothing else in the file is read, and nothing pickled is ever loaded."""
    with open(path, "rb") as f:
        if f.read(len(_NPY_MAGIC)) == _NPY_MAGIC:
            raise DataError(f"{path} is a .npy array (numpy.save's), not an .npz archive; "
                            f"{_WRITE_NPZ}.")
    try:
        data = np.load(path, allow_pickle=False)
    except _UNREADABLE as e:
        if "allow_pickle" in str(e):  # neither a zip nor a .npy: np.load tries pickle
            raise DataError(f"{path} is not an .npz archive (nor any numpy file); "
                            f"{_WRITE_NPZ}.") from None
        raise DataError(f"{path} is not a readable .npz file ({_reason(e)}); "
                        f"{_WRITE_NPZ}.") from None
    with data:
        names = data.files
        if NPZ_KEY in names:
            key = NPZ_KEY
        elif len(names) == 1:
            key = names[0]
        elif not names:
            raise DataError(f"{path} is an .npz archive with nothing in it; {_WRITE_NPZ}.")
        else:
            members = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
            raise DataError(f"{path} has no '{NPZ_KEY}' array (it holds "
                            f"{len(names)}: {members}); {_WRITE_NPZ}.")
        try:
            images = data[key]
        except _UNREADABLE as e:
            if "allow_pickle" in str(e):
                raise DataError(f"{path}: its '{key}' array holds Python objects, which "
                                "are never loaded (unpickling runs code); pass uint8 "
                                f"pixels: {_WRITE_NPZ}.") from None
            raise DataError(f"{path}: its '{key}' member cannot be read "
                            f"({_reason(e)}); {_WRITE_NPZ}.") from None
    if not isinstance(images, np.ndarray):  # a member that is no .npy: raw bytes
        raise DataError(f"{path}: its member '{key}' is not a numpy array; "
                        f"{_WRITE_NPZ}.")
    return images


def read_npz(path, image_shape=shapes.DEFAULT_SHAPE):
    """uint8 [N, H, W, C] of the images in an .npz file, of `image_shape` each.

    Raises DataError, in one sentence naming the file, for anything else: a .npy or
    other file renamed .npz, a damaged archive, no 'images' array among several, a
    member that is no array, pickled objects, another dtype or shape, no images.
    """
    _check_file(path)
    images = _npz_member(path)
    if images.dtype != np.uint8:
        raise DataError(f"{path} holds {images.dtype} images; pass uint8 pixels in "
                        "[0, 255] (as dcgan_dist.generate writes).")
    height, width, channels = image_shape
    if images.ndim == 3 and channels == 1:  # grey images may leave out the channel axis
        images = images[..., None]
    if images.ndim != 4 or images.shape[1:] != tuple(image_shape) or not len(images):
        grey = f"[N, {height}, {width}] or " if channels == 1 else ""
        raise DataError(f"{path} holds images of shape {images.shape}; pass {grey}"
                        f"[N, {height}, {width}, {channels}] with N >= 1.")
    return images


def read_images(paths, image_shape=shapes.DEFAULT_SHAPE):
    """(names, uint8 [N, H, W, C]) of image files and .npz files; an .npz's i-th image
    is named PATH[i]."""
    if not paths:
        raise DataError("no images given; pass image files or .npz files after the flags.")
    names, batches = [], []
    for path in paths:
        if path.lower().endswith(".npy"):
            raise DataError(f"{path} is a .npy file; pass image files or .npz archives "
                            f"({_WRITE_NPZ}).")
        if path.lower().endswith(".npz"):
            images = read_npz(path, image_shape)
            names += [f"{path}[{i}]" for i in range(len(images))]
        else:
            images = read_picture(path, image_shape)[None]
            names.append(path)
        batches.append(images)
    return names, np.concatenate(batches)
