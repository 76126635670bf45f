"""Decoding a folder of image files (its layout: `folder_layout.py`): every image
decoded and checked before anything is written.

Images are decoded with Pillow: a transparent
background is composited onto white (clip art and icons), 16-bit greys are scaled to 8.

Every unusable image (corrupt, smaller than the size asked for, greyscale mixed with colour
when --channels is not given) is a DataError with one sentence naming the file, raised
before tfds writes anything.
"""

import os

import numpy as np

from dcgan_dist.data.folder_layout import REQUIRED_SPLIT
from dcgan_dist.errors import DataError


def to_channels(picture, channels):
    """uint8 [H, W, 1 or 3] -> [H, W, channels]: grey is copied to R, G and B; colour
    becomes grey by ITU-R 601 luma (0.299 R + 0.587 G + 0.114 B), as Pillow's "L"."""
    if picture.shape[-1] == channels:
        return picture
    if channels == 3:
        return np.repeat(picture, 3, axis=-1)
    luma = np.rint(picture.astype(np.float64) @ [0.299, 0.587, 0.114])
    return np.clip(luma, 0, 255).astype(np.uint8)[..., None]


def _open(path):
    from PIL import Image  # Pillow, imageio's decoder; imported with the first image
    try:
        return Image.open(path)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        raise _undecodable(path, e) from None


def _undecodable(path, error):
    return DataError(f"{path} is not an image that can be decoded ({type(error).__name__}"
                     f": {str(error)[:120]}); remove or replace it.")


def _is_grey(picture):
    if picture.mode == "P":
        palette = np.asarray(picture.getpalette() or [0, 0, 0], np.uint8).reshape(-1, 3)
        return bool(np.all(palette == palette[:, :1]))
    return picture.mode in ("1", "L", "LA", "I", "I;16", "I;16B", "F")


def probe(path):
    """(width, height, whether grey) from the file's header, without decoding it."""
    with _open(path) as picture:
        return picture.width, picture.height, _is_grey(picture)


def decode(path):
    """uint8 [H, W, 1] (grey) or [H, W, 3] (colour) of an image file; transparency is
    composited onto white. DataError naming the file when it does not decode."""
    with _open(path) as picture:
        try:
            picture.load()
            grey = _is_grey(picture)
            if picture.mode.startswith("I") or picture.mode == "F":
                pixels = np.asarray(picture, np.float64)
                if pixels.max() > 255:  # 16-bit
                    pixels = pixels / 257.0
                return np.clip(np.rint(pixels), 0, 255).astype(np.uint8)[..., None]
            has_alpha = (picture.mode in ("LA", "RGBA", "PA")
                         or "transparency" in picture.info)
            rgba = np.asarray(picture.convert("RGBA"), np.float64)
        except (OSError, ValueError, SyntaxError) as e:
            raise _undecodable(path, e) from None
    rgb = rgba[..., :3]
    if has_alpha:  # onto white, as the images are shown
        alpha = rgba[..., 3:] / 255.0
        rgb = rgb * alpha + 255.0 * (1.0 - alpha)
    rgb = np.clip(np.rint(rgb), 0, 255).astype(np.uint8)
    return to_channels(rgb, 1) if grey else rgb


def settle_shape(layout, image_size=None, channels=None):
    """(image_size, channels, notes): the ones asked for, else the training images' own
    (from their headers). Refuses, naming a file, images smaller than the size, a mix
    of grey and colour without --channels, and sizes that differ without --image_size."""
    paths = [os.path.join(layout.folder, path) for path, _ in
             layout.splits[REQUIRED_SPLIT] + layout.splits.get("test", [])]
    headers = [probe(path) for path in paths]
    notes = []
    greys = [path for path, (_, _, grey) in zip(paths, headers) if grey]
    if channels is None:
        if greys and len(greys) < len(paths):
            raise DataError(
                f"{layout.folder} mixes {len(greys)} greyscale images (e.g. {greys[0]}) "
                f"with {len(paths) - len(greys)} colour ones; pass --channels=3 to train "
                "in colour (the grey ones are copied to R, G and B) or --channels=1 to "
                "train in grey.")
        channels = 1 if greys else 3
    elif 0 < len(greys) < len(paths):
        converted = len(greys) if channels == 3 else len(paths) - len(greys)
        notes.append(f"{converted} of {len(paths)} images converted to "
                     f"{'colour' if channels == 3 else 'grey'} (--channels={channels})")
    sizes = sorted({(width, height) for width, height, _ in headers})
    if image_size is None:
        if len(sizes) != 1 or sizes[0][0] != sizes[0][1]:
            shown = ", ".join(f"{w}x{h}" for w, h in sizes[:3])
            raise DataError(f"{layout.folder}'s images are not all of one square size "
                            f"({shown}{', ...' if len(sizes) > 3 else ''}); pass "
                            "--image_size to centre-crop and resize them to one.")
        image_size = sizes[0][0]
    for path, (width, height, _) in zip(paths, headers):
        if min(width, height) < image_size:
            raise DataError(f"{path} is {width}x{height} pixels, smaller than "
                            f"--image_size={image_size}; images are only scaled down, so "
                            "remove it or pass a smaller --image_size.")
    return image_size, channels, notes


def decode_split(layout, split, image_size, channels, fit):
    """(uint8 images [N, S, S, C], int64 labels [N] or None) of one split, each image
    decoded into the result (memory holds them at S x S, not at their own size).

    fit: fit(image, size) -> uint8 [size, size, C], the centre crop and resize
      (pipeline.fit_image); called only for images not already S x S.
    Raises DataError, naming the file, for an image that does not decode.
    """
    files = layout.splits[split]
    images = np.empty([len(files), image_size, image_size, channels], np.uint8)
    for i, (path, _) in enumerate(files):
        picture = to_channels(decode(os.path.join(layout.folder, path)), channels)
        images[i] = picture if picture.shape[:2] == (image_size, image_size) else fit(
            picture, image_size)
    labels = None
    if layout.class_names is not None:
        index = {name: i for i, name in enumerate(layout.class_names)}
        labels = np.array([index[label] for _, label in files], np.int64)
    return images, labels
