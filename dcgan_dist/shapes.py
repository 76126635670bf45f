"""Image shapes the networks build for, by the DCGAN paper's rule (Radford et al. 2016):
one stride-2 stage per doubling of the image size, the channels halving toward the image.

The article's 28x28 networks start from 7x7 and double twice; 32x32 starts from 8x8 and
doubles twice; 64x64 doubles three times. In general an image of `size` pixels starts
from `base` = size / 2**doublings with 4 <= base <= 8 (what `stages` finds by halving),
and the widest layer has 64 * 2**doublings channels (256 at 28 and 32, 512 at 64):

    size  doublings  base  generator                          discriminator
    28    2          7     Dense 7*7*256, 128, 64, C           64, 128, Dense 1
    32    2          8     Dense 8*8*256, 128, 64, C           64, 128, Dense 1
    64    3          8     Dense 8*8*512, 256, 128, 64, C      64, 128, 256, Dense 1

No TensorFlow here: the flags are checked before it is imported.
"""

from dcgan_dist.errors import ConfigError

CHANNELS = (1, 3)           # grey, RGB
SIZES_TESTED = (28, 32, 64)  # the sizes the tests train; others that `stages` builds work
MIN_BASE, MAX_BASE = 4, 8
MIN_DOUBLINGS, MAX_DOUBLINGS = 2, 5  # 16..256 pixels: below, no DCGAN; above, untested
DEFAULT_SHAPE = (28, 28, 1)  # the article's (and any run recorded before shapes were)


def stages(size):
    """(base, doublings) of a square image of `size` pixels, or ConfigError."""
    base, doublings = size, 0
    while base > MAX_BASE and base % 2 == 0:
        base, doublings = base // 2, doublings + 1
    if not (MIN_BASE <= base <= MAX_BASE and MIN_DOUBLINGS <= doublings <= MAX_DOUBLINGS):
        raise ConfigError(
            f"--image_size={size} cannot be built: the networks double a 4..8-pixel "
            f"start {MIN_DOUBLINGS} to {MAX_DOUBLINGS} times, so the size must be such a "
            f"start times a power of two, e.g. {', '.join(map(str, SIZES_TESTED))}.")
    return base, doublings


def check_own_size(size, what):
    """Refuses data whose own size (no --image_size given) the networks cannot build."""
    try:
        stages(size)
    except ConfigError:
        raise ConfigError(f"{what} are {size}x{size} pixels, a size the networks cannot "
                          f"build; pass --image_size (e.g. {', '.join(map(str, SIZES_TESTED))})"
                          " to resize them.") from None


def check(image_size=None, channels=None):
    """Refuses an --image_size the networks cannot build or a --channels other than 1 or
    3 (None: the data's own, checked once the data is known)."""
    if image_size is not None:
        stages(image_size)
    if channels is not None and channels not in CHANNELS:
        raise ConfigError(f"--channels={channels} is not supported; use 1 (grey) or 3 "
                          "(colour).")


def name(shape):
    """'28x28x1'."""
    return "x".join(str(int(d)) for d in shape)
