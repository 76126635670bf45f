"""Reading the images a user hands to `detect`: PNG (or any image imageio reads) files of
28x28 pixels, and `.npz` files of uint8 images such as `generate` writes.

Every way a file can be unusable (missing, empty, not an image, wrong size or type) is a
DataError with a sentence naming the file, raised before TensorFlow is imported.
"""

import os
import zipfile

import imageio.v3 as iio
import numpy as np

from dcgan_dist.errors import DataError

SIZE = 28
NPZ_KEY = "images"  # what `generate` writes; another key works when it is the only one


def _check_file(path):
    if not os.path.isfile(path):
        raise DataError(f"{path} does not exist (or is not a file); pass PNG files or an "
                        ".npz of images.")
    if os.path.getsize(path) == 0:
        raise DataError(f"{path} is empty; pass a PNG file or an .npz of images.")


def _grey(picture, path):
    """[H, W], [H, W, 1], grey+alpha, RGB or RGBA -> uint8 [H, W]."""
    if picture.ndim == 3 and picture.shape[-1] in (1, 2):  # grey, grey + alpha
        picture = picture[..., 0]
    elif picture.ndim == 3 and picture.shape[-1] in (3, 4):  # RGB(A): ITU-R 601 luma
        picture = np.rint(picture[..., :3].astype(np.float64) @ [0.299, 0.587, 0.114])
    if picture.ndim != 2:
        raise DataError(f"{path} holds an array of shape {picture.shape}, not one "
                        "picture; pass single 28x28 images.")
    if picture.dtype == np.uint16:  # 16-bit PNG
        picture = np.rint(picture / 257.0)
    return np.clip(picture, 0, 255).astype(np.uint8)


def read_picture(path):
    """uint8 [28, 28, 1] of an image file."""
    _check_file(path)
    try:
        picture = iio.imread(path)
    except Exception as e:  # noqa: BLE001 -- imageio's plugins raise many types
        raise DataError(f"{path} is not an image imageio can read "
                        f"({type(e).__name__}); pass PNG files.") from None
    picture = _grey(np.asarray(picture), path)
    if picture.shape != (SIZE, SIZE):
        raise DataError(f"{path} is {picture.shape[1]}x{picture.shape[0]} pixels; the "
                        f"discriminator takes {SIZE}x{SIZE} images (a grid of samples "
                        "must be cut into single images first).")
    return picture[:, :, None]


def read_npz(path):
    """uint8 [N, 28, 28, 1] of the images in an .npz file."""
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
    if images.ndim == 4 and images.shape[-1] == 1:
        images = images[..., 0]
    if images.ndim != 3 or images.shape[1:] != (SIZE, SIZE) or not len(images):
        raise DataError(f"{path} holds images of shape {images.shape}; pass [N, {SIZE}, "
                        f"{SIZE}] or [N, {SIZE}, {SIZE}, 1] with N >= 1.")
    return images[..., None]


def read_images(paths):
    """(names, uint8 [N, 28, 28, 1]) of image files and .npz files; an .npz's i-th image
    is named PATH[i]."""
    if not paths:
        raise DataError("no images given; pass PNG files or .npz files after the flags.")
    names, batches = [], []
    for path in paths:
        if path.lower().endswith(".npz"):
            images = read_npz(path)
            names += [f"{path}[{i}]" for i in range(len(images))]
        else:
            images = read_picture(path)[None]
            names.append(path)
        batches.append(images)
    return names, np.concatenate(batches)
