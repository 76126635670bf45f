"""The article's visual outputs: a 4x4 grid of samples per epoch and a GIF of them all."""

import os

import imageio.v3 as iio
import numpy as np

from dcgan_dist import workdir as layout

_GAP = 2      # pixels of grey between tiles
_SCALE = 2    # nearest-neighbour upscaling, so a 28x28 digit is visible at a glance


def to_uint8(images):
    """Images in [-1, 1] (any float dtype) -> uint8 [0, 255], as the article displays."""
    images = np.asarray(images, dtype=np.float32)
    return np.clip(np.rint(images * 127.5 + 127.5), 0, 255).astype(np.uint8)


def grid(images, columns=4):
    """[N, H, W, 1] images in [-1, 1] -> one uint8 [rows*H', columns*W'] picture."""
    return tile(to_uint8(images), columns)


def tile(images, columns=4):
    """uint8 [N, H, W, 1] images -> one uint8 [rows*H', columns*W'] picture."""
    tiles = np.asarray(images, np.uint8)[..., 0]
    count, height, width = tiles.shape
    rows = -(-count // columns)
    out = np.full((rows * (height + _GAP) + _GAP, columns * (width + _GAP) + _GAP), 128,
                  np.uint8)
    for i, tile in enumerate(tiles):
        top = _GAP + (i // columns) * (height + _GAP)
        left = _GAP + (i % columns) * (width + _GAP)
        out[top:top + height, left:left + width] = tile
    return out.repeat(_SCALE, axis=0).repeat(_SCALE, axis=1)


def save_grid(images, path):
    """Writes the grid of `images` to `path`; returns the grid as uint8 [H, W]."""
    picture = grid(images)
    iio.imwrite(path, picture)
    return picture


def save_gif(workdir, steps_per_epoch, seconds_per_frame=0.2):
    """dcgan.gif of every grid in `workdir`, in training order; None if there are none."""
    paths = layout.grids(workdir, steps_per_epoch)
    if not paths:
        return None
    frames = np.stack([iio.imread(p) for p in paths])
    path = os.path.join(workdir, layout.GIF_FILE)
    iio.imwrite(path, frames, extension=".gif", duration=int(seconds_per_frame * 1000),
                loop=0)
    return path
