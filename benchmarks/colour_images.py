"""Real colour images from a Debian package, as a folder to train on: the oxygen icon
theme's icons (apt-get install oxygen-icon-theme), one subfolder per icon context
(apps, devices, mimetypes, places), every 5th icon of a class under test/.

    python benchmarks/colour_images.py --out=runs/icons      # then --data_dir=runs/icons

The theme's 64x64 and 128x128 folders hold a few smaller icons (22x22); they are left
out, since training refuses images smaller than --image_size, and so are its symbolic
links (other names of the same icons, which would repeat images across train and test). The tests and
epoch_time.py's colour loops use the same folder.
"""

import os

ICON_THEME = "/usr/share/icons/oxygen/base"
CLASSES = ("apps", "devices", "mimetypes", "places")


def write_icon_folder(path, classes=CLASSES, per_class=None, test_every=5, size=64):
    """Writes the theme's `size`x`size` icons of `classes` that are at least 64 pixels
    into `path`/{train,test}/CLASS/ (at most `per_class` of a class); returns `path`."""
    from PIL import Image
    source_dir = os.path.join(ICON_THEME, f"{size}x{size}")
    if not os.path.isdir(source_dir):
        raise SystemExit(f"{source_dir} is missing: apt-get install oxygen-icon-theme")
    for name in classes:
        kept = 0
        for icon in sorted(os.listdir(os.path.join(source_dir, name))):
            source = os.path.join(source_dir, name, icon)
            if os.path.islink(source):  # another name of an icon: it would be a duplicate
                continue
            with Image.open(source) as picture:
                if min(picture.size) < 64:
                    continue
            split = "test" if kept % test_every == test_every - 1 else "train"
            os.makedirs(os.path.join(path, split, name), exist_ok=True)
            with open(source, "rb") as f, \
                    open(os.path.join(path, split, name, icon), "wb") as out:
                out.write(f.read())
            kept += 1
            if per_class and kept == per_class:
                break
    return str(path)


if __name__ == "__main__":
    from absl import app, flags
    # Here, not at import: the tests and epoch_time.py import this module.
    flags.DEFINE_string("out", None, "A new folder for the icons.", required=True)
    flags.DEFINE_enum("size", "64", ["64", "128"], "The theme's icon folder to copy from.")
    app.run(lambda argv: print(write_icon_folder(flags.FLAGS.out,
                                                 size=int(flags.FLAGS.size))))
