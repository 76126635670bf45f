"""The article's visual outputs: a 4x4 grid of samples per epoch (a conditional run's:
a row per class) and a GIF of them all, each written whole (files.write_bytes)."""

import os
import sys

import imageio.v3 as iio
import numpy as np

from dcgan_dist import files
from dcgan_dist import workdir as layout

_GAP = 2      # pixels of grey between tiles
_SCALE = 2    # nearest-neighbour upscaling, so a 28x28 digit is visible at a glance ...
_SCALED_BELOW = 64  # ... and a 32x32 image; 64x64 ones are shown as they are


def to_uint8(images):
    """Images in [-1, 1] (any float dtype) -> uint8 [0, 255], as the article displays."""
    images = np.asarray(images, dtype=np.float32)
    return np.clip(np.rint(images * 127.5 + 127.5), 0, 255).astype(np.uint8)


def grid(images, columns=4):
    """[N, H, W, C] images in [-1, 1] -> one uint8 picture (see `tile`)."""
    return tile(to_uint8(images), columns)


def tile(images, columns=4):
    """uint8 [N, H, W, C] images -> one uint8 picture of them in rows of `columns`:
    [rows*H', columns*W'] for grey images, [rows*H', columns*W', 3] for colour."""
    tiles = np.asarray(images, np.uint8)
    count, height, width, channels = tiles.shape
    rows = -(-count // columns)
    out = np.full((rows * (height + _GAP) + _GAP, columns * (width + _GAP) + _GAP,
                   channels), 128, np.uint8)
    for i, tile in enumerate(tiles):
        top = _GAP + (i // columns) * (height + _GAP)
        left = _GAP + (i % columns) * (width + _GAP)
        out[top:top + height, left:left + width] = tile
    if channels == 1:
        out = out[..., 0]
    scale = _SCALE if height < _SCALED_BELOW else 1
    return out.repeat(scale, axis=0).repeat(scale, axis=1)


def save_grid(images, path, columns=4):
    """Writes the grid of `images` to `path` whole; returns it as uint8 [H, W(, 3)].
    Raises OSError (a full disk) with `path` as it was."""
    picture = grid(images, columns)
    files.write_bytes(path, iio.imwrite("<bytes>", picture, extension=".png"))
    return picture


def _readable_frames(paths):
    """The grids that read back, of the shape most of them have; each one skipped (a
    write cut short by a kill before grids were written whole, an edited file) is
    named on stderr."""
    frames = {}
    for path in paths:
        try:
            frames[path] = iio.imread(path)
        except Exception as e:  # noqa: BLE001 -- Pillow raises many kinds for a bad file
            print(f"warning: {path} is damaged ({type(e).__name__}: {e}); left out of "
                  f"{layout.GIF_FILE}", file=sys.stderr, flush=True)
    shapes = [frame.shape for frame in frames.values()]
    common = max(set(shapes), key=shapes.count) if shapes else None
    for path, frame in list(frames.items()):
        if frame.shape != common:
            print(f"warning: {path} is {frame.shape}, not {common} like the other grids; "
                  f"left out of {layout.GIF_FILE}", file=sys.stderr, flush=True)
            del frames[path]
    return list(frames.values())


def save_gif(workdir, steps_per_epoch, seconds_per_frame=0.2):
    """dcgan.gif of every readable grid in `workdir`, in training order, written whole;
    None if there are none."""
    frames = _readable_frames(layout.grids(workdir, steps_per_epoch))
    if not frames:
        return None
    path = os.path.join(workdir, layout.GIF_FILE)
    files.write_bytes(path, iio.imwrite("<bytes>", np.stack(frames), extension=".gif",
                                        duration=int(seconds_per_frame * 1000), loop=0))
    return path
