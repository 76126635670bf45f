"""Reading the images a user hands to `detect`: image files (PNG, JPEG, ... decoded as
training decodes a folder's, see `folders`) of the run's size, and `.npz` files of uint8
images such as `generate` writes.

Colour files given to a grey run become grey, and grey files given to a colour run are
copied to R, G and B. Every way a file can be unusable (missing, empty, not an image,
wrong size or type) is a DataError with a sentence naming the file, raised before
TensorFlow is imported.
"""

import os
import zipfile

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


def read_npz(path, image_shape=shapes.DEFAULT_SHAPE):
    """uint8 [N, H, W, C] of the images in an .npz file, of `image_shape` each."""
    _check_file(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise DataError(f"{path} is not a readable .npz file ({type(e).__name__}); pass "
                        "one that numpy.savez wrote.") from None
    if NPZ_KEY in arrays:
        images = arrays[NPZ_KEY]
    elif len(arrays) == 1:
        images = next(iter(arrays.values()))
    else:
        raise DataError(f"{path} has no '{NPZ_KEY}' array (it has {sorted(arrays)}); "
                        f"save the images under the key '{NPZ_KEY}'.")
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
        if path.lower().endswith(".npz"):
            images = read_npz(path, image_shape)
            names += [f"{path}[{i}]" for i in range(len(images))]
        else:
            images = read_picture(path, image_shape)[None]
            names.append(path)
        batches.append(images)
    return names, np.concatenate(batches)
