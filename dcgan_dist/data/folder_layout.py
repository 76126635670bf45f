"""A folder of image files: its layout (splits, classes, image files), its labels and its
fingerprint, found without decoding an image (`folders.py` decodes them).

The layout, as torchvision's and tfds' ImageFolder read it:

    FOLDER/CLASS/.../IMAGE      labelled: one subfolder per class (two or more)
    FOLDER/IMAGE                unlabelled: the images directly in the folder
    FOLDER/train/..., FOLDER/test/...
                                splits: a `train/` subfolder marks a split folder, each
                                split laid out as above; `test/` is optional (only
                                evaluation reads it) and has the classes of `train/`

Image files are those with the extensions of IMAGE_EXTENSIONS (what Pillow decodes);
other files and hidden ones are skipped. A folder that cannot be used (empty, no image
files, one class, images beside class folders, a test class that training lacks, a
subfolder that cannot be read) is a DataError with one sentence naming it.

Symbolic links are followed, also when they lead outside the folder; each real folder
is read once and each real file counted once per class, and a link back into a folder
that holds it (a loop, such as `x -> .` or `x -> ..`) is skipped and named in the log.
(A class or a split may be a link to images kept elsewhere. Loops are found by real
paths, not by os.walk, which keeps no visited set: it would list a class again under
every turn of a loop, or walk for ever when one folder holds two such links.)

File names need not be UTF-8: they are hashed as the bytes they are on disk, and a
class folder's name becomes its label name with each byte that is not UTF-8 written as
\\xNN (`shown`).
"""

import hashlib
import os

from dcgan_dist.errors import DataError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
SPLITS = ("train", "test")  # subfolder names that mark a split folder
REQUIRED_SPLIT = "train"
LAYOUT = ("image files (PNG, JPEG, ...) directly in the folder (unlabelled) or in one "
          "subfolder per class (two or more), optionally under train/ and test/")


def is_image_file(name):
    return name.lower().endswith(IMAGE_EXTENSIONS) and not name.startswith(".")


def shown(path):
    """`path` as text that prints and encodes anywhere (a log line, a tfds label name):
    the bytes of a file name that are not UTF-8, which Python keeps as surrogates,
    written as \\xNN."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def _unreadable(path, error):
    return DataError(f"{shown(path)} cannot be read ({error.strerror or error}); make it "
                     "readable or move it out of the data folder.")


def _is_folder(entry):
    try:
        return entry.is_dir()  # follows links, as os.walk(followlinks=True)
    except OSError:
        return False


class _Walk:
    """Lists a data folder's image files, following links, each real folder once.

    A link to a folder that holds the link (the data folder, the split, the class, a
    folder on the way down, or any folder above one of these) is a loop: skipped, and
    its path kept in `loops`. Within one walk (one class) each real folder is read once
    and each real file listed once, so links that reach the same place twice add
    nothing. Links that leave the data folder are followed.
    """

    def __init__(self, folder):
        self.folder = folder
        self.loops = []  # the links skipped, relative to the data folder

    def entries(self, path):
        """The DirEntries of the folder `path`, hidden ones left out, sorted by name."""
        try:
            with os.scandir(path) as listing:
                return sorted((e for e in listing if not e.name.startswith(".")),
                              key=lambda e: e.name)
        except OSError as e:
            raise _unreadable(path, e) from None

    def subfolder(self, path, entry, chain):
        """(real path, (st_dev, st_ino)) of the folder `entry` at `path`, or None when it
        is a loop: it holds one of `chain`, the real paths of the folders it is in."""
        real = (os.path.realpath(path) if entry.is_symlink()
                else os.path.join(chain[-1], entry.name))
        try:
            stat = entry.stat()
        except OSError as e:
            raise _unreadable(path, e) from None
        if any(os.path.commonpath([real, held]) == real for held in chain):
            self.loops.append(os.path.relpath(path, self.folder))
            return None
        return real, (stat.st_dev, stat.st_ino)

    @staticmethod
    def real_file(path, entry, folder_real):
        return (os.path.realpath(path) if entry.is_symlink()
                else os.path.join(folder_real, entry.name))

    def images_under(self, folder, chain):
        """Paths (relative to `folder`) of the image files under `folder`, at any depth,
        in os.walk's order: a folder's files (sorted), then its subfolders' (sorted).

        chain: the real paths of the folders above `folder`, and of `folder` last.
        """
        try:
            stat = os.stat(folder)
        except OSError as e:
            raise _unreadable(folder, e) from None
        found, seen_files, seen_folders = [], set(), {(stat.st_dev, stat.st_ino)}
        pending = [(folder, chain)]  # a stack, not recursion: any depth
        while pending:
            path, chain = pending.pop()
            subfolders = []
            for entry in self.entries(path):
                entry_path = os.path.join(path, entry.name)
                if _is_folder(entry):
                    reached = self.subfolder(entry_path, entry, chain)
                    if reached is not None and reached[1] not in seen_folders:
                        seen_folders.add(reached[1])
                        subfolders.append((entry_path, chain + [reached[0]]))
                elif is_image_file(entry.name):
                    real = self.real_file(entry_path, entry, chain[-1])
                    if real not in seen_files:
                        seen_files.add(real)
                        found.append(os.path.relpath(entry_path, folder))
            pending += reversed(subfolders)
        return found

    def split_layout(self, root, training):
        """([(relative path, class name or None)], [class names] or None) of one split
        at `root` (the data folder, or its train/ or test/)."""
        chain = [os.path.realpath(self.folder)]
        if os.path.realpath(root) != chain[0]:
            chain.append(os.path.realpath(root))
        files, loose, seen, folders = [], [], set(), {}
        for entry in self.entries(root):
            path = os.path.join(root, entry.name)
            if _is_folder(entry):
                reached = self.subfolder(path, entry, chain)
                if reached is not None:
                    folders[entry.name] = reached[0]
            else:
                files.append(entry.name)
                if is_image_file(entry.name):
                    real = self.real_file(path, entry, chain[-1])
                    if real not in seen:
                        seen.add(real)
                        loose.append(entry.name)
        images = {name: self.images_under(os.path.join(root, name), chain + [real])
                  for name, real in folders.items()}
        classes = [name for name in folders if images[name]]
        where = shown(root)
        if loose and classes:
            raise DataError(f"{where} holds images ({shown(loose[0])}, ...) beside class "
                            f"subfolders ({shown(classes[0])}, ...); put every image in a "
                            "class subfolder, or all directly in the folder to train "
                            "without labels.")
        if loose:
            return [(name, None) for name in loose], None
        if not classes:
            others = (f" (it holds {len(files)} other files, e.g. {shown(files[0])})"
                      if files else "")
            raise DataError(f"{where} holds no image files{others}; pass a folder of "
                            f"{LAYOUT}.")
        if len(classes) == 1 and training:  # a test split may hold some classes only
            raise DataError(f"{where} has a single class subfolder, {shown(classes[0])}/; "
                            "labels need two or more classes, or put the images directly "
                            "in the folder to train without labels.")
        return ([(os.path.join(name, path), name) for name in classes
                 for path in images[name]], classes)

    def note(self):
        """A line for the log naming the links skipped as loops (three, then how many
        more), or None."""
        if not self.loops:
            return None
        named = [shown(path) for path in self.loops[:3]]
        if len(self.loops) > 3:
            named.append(f"{len(self.loops) - 3} more")
        listed = " and ".join([", ".join(named[:-1]), named[-1]] if named[1:] else named)
        return (f"skipped {'the link' if len(self.loops) == 1 else 'the links'} {listed}: "
                "each leads back into a folder that holds it (a loop), whose images are "
                "read once")


class Layout:
    """What a folder holds: splits {name: [(path relative to the folder, class)]}, the
    class names (sorted; a label is an index into them) or None when unlabelled, their
    label names (`shown`), and notes for the log (links skipped as loops)."""

    def __init__(self, folder):
        if not os.path.isdir(folder):
            raise DataError(f"{shown(folder)} is not a folder; pass --data_dir=FOLDER of "
                            f"{LAYOUT}.")
        self.folder = folder
        split_folders = {s: os.path.join(folder, s) for s in SPLITS
                         if os.path.isdir(os.path.join(folder, s))}
        if REQUIRED_SPLIT not in split_folders:
            if split_folders:
                raise DataError(f"{shown(folder)} has a test/ subfolder but no train/; "
                                "put the training images in train/.")
            split_folders = {REQUIRED_SPLIT: folder}
        walk = _Walk(folder)
        self.splits, self.class_names = {}, None
        for split, root in split_folders.items():
            files, classes = walk.split_layout(root, split == REQUIRED_SPLIT)
            prefix = os.path.relpath(root, folder)
            self.splits[split] = [(os.path.normpath(os.path.join(prefix, path)), label)
                                  for path, label in files]
            if split == REQUIRED_SPLIT:
                self.class_names = classes
            elif (classes is None) != (self.class_names is None) or not set(
                    classes or ()) <= set(self.class_names or ()):
                shown_names = [shown(name) for name in classes or ()] or None
                raise DataError(f"{shown(root)} has the classes {shown_names}, but "
                                f"{shown(split_folders[REQUIRED_SPLIT])} has "
                                f"{self.label_names}; a test split needs the training "
                                "split's classes (None: images directly in the folder, "
                                "unlabelled).")
        self.notes = [note for note in [walk.note()] if note]
        names = self.label_names or []
        if len(set(names)) < len(names):
            twins = sorted(name for name in names if names.count(name) > 1)
            raise DataError(f"{shown(folder)} has two class folders named {twins[0]} once "
                            "their bytes that are not UTF-8 are written as \\xNN; rename "
                            "one.")

    @property
    def label_names(self):
        """The class names as tfds stores them (`shown`), or None when unlabelled."""
        return None if self.class_names is None else [shown(n) for n in self.class_names]

    def fingerprint(self):
        """A short hash of the file names (their bytes on disk), sizes and modification
        times: a changed folder is prepared again (content hashing would read every file
        on every run)."""
        digest = hashlib.sha256()
        for split in SPLITS:
            for path, label in self.splits.get(split, ()):
                stat = os.stat(os.path.join(self.folder, path))
                digest.update(b"\0".join([
                    split.encode(), os.fsencode(path), os.fsencode(str(label)),
                    str(stat.st_size).encode(), f"{stat.st_mtime_ns}\n".encode()]))
        return digest.hexdigest()[:12]
