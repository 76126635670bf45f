"""Finding a dataset: a local folder (IDX files or image files), a prepared tfds dataset,
a known local copy, or a download -- in that order, so that an offline machine never
waits on network retries -- and settling the image shape a run trains at.

Offline, `tfds.builder(name).download_and_prepare()` spends minutes in retries before it
gives up, so a download is tried only after a one-second check that the network answers.
"""

import collections
import os
import socket
import urllib.parse

import tensorflow_datasets as tfds

from dcgan_dist import shapes
from dcgan_dist.data import folder_builder, idx, idx_builder, pipeline
from dcgan_dist.errors import DataError

# builder: prepared tfds builder; image_shape: (S, S, C) the run uses; notes: for the log.
Data = collections.namedtuple("Data", ["builder", "image_shape", "notes"])

# Local copies that operating-system packages install (Debian: dataset-fashion-mnist).
KNOWN_LOCAL_FOLDERS = {
    "fashion_mnist": ("/usr/share/datasets/fashion-mnist",),
    "mnist": ("/usr/share/datasets/mnist",),
}
# Where tfds downloads these from; other datasets are probed at Google Cloud Storage.
DOWNLOAD_HOSTS = {
    "mnist": ("storage.googleapis.com", 443),
    "fashion_mnist": ("fashion-mnist.s3-website.eu-central-1.amazonaws.com", 80),
}
_DEFAULT_HOST = ("storage.googleapis.com", 443)


def network_reachable(host_port, timeout=2.0):
    """Whether a TCP connection to the host (or the configured proxy) opens quickly."""
    proxy = (os.environ.get("HTTPS_PROXY") or os.environ.get("https_proxy")
             or os.environ.get("HTTP_PROXY") or os.environ.get("http_proxy"))
    if proxy:
        parsed = urllib.parse.urlsplit(proxy if "://" in proxy else "http://" + proxy)
        host_port = (parsed.hostname, parsed.port or 80)
    try:
        with socket.create_connection(host_port, timeout=timeout):
            return True
    except OSError:
        return False


def _unavailable_message(name):
    ways = [f"run once on a machine with internet access so tensorflow-datasets can "
            f"download '{name}' (into --tfds_data_dir, which you can then copy here)",
            "pass --data_dir=FOLDER of image files (one subfolder per class), or one "
            "holding " + idx.folder_contents()]
    if name == "fashion_mnist":
        ways.append("install Debian's copy: apt-get install dataset-fashion-mnist "
                    "(found at /usr/share/datasets/fashion-mnist)")
    else:
        ways.append("train on Fashion-MNIST, which Debian packages: apt-get install "
                    "dataset-fashion-mnist, then --dataset=fashion_mnist")
    return (f"Dataset '{name}' is not prepared here and cannot be downloaded (no network). "
            "Get it one of these ways: " + "; ".join(f"({i}) {w}"
                                                     for i, w in enumerate(ways, 1)) + ".")


def settle_shape(builder, image_size=None, channels=None):
    """(S, S, C): --image_size and --channels, else the dataset's own; refuses a size
    the networks cannot build, and upscaling."""
    features = builder.info.features
    if "image" not in features:
        raise DataError(f"Dataset '{builder.info.full_name}' has no 'image' feature; "
                        "use an image dataset (mnist, fashion_mnist, cifar10, ...).")
    height, width, own_channels = pipeline.native_shape(builder)
    if image_size is None:
        if height is None or height != width:
            raise DataError(f"Dataset '{builder.info.full_name}' has images of "
                            f"{width}x{height} pixels; pass --image_size (e.g. 64) to "
                            "centre-crop and resize them to a square.")
        image_size = height
        shapes.check_own_size(image_size, f"the images of '{builder.info.full_name}'")
    shapes.stages(image_size)
    if height is not None and min(height, width) < image_size:
        raise DataError(f"Dataset '{builder.info.full_name}' has images of "
                        f"{width}x{height} pixels, smaller than --image_size={image_size}; "
                        "images are only scaled down, so pass a smaller --image_size.")
    channels = channels or own_channels
    shapes.check(image_size, channels)
    return (image_size, image_size, channels)


# Class names of the datasets whose IDX copies (Debian's) label by number alone; tfds'
# own builders of them name the classes the same.
KNOWN_CLASS_NAMES = {
    "fashion_mnist": ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal",
                      "Shirt", "Sneaker", "Bag", "Ankle boot"),
}


def class_names(builder, name=None, data_dir=None):
    """The data's classes in label order (a label is an index into them), None for
    unlabelled data: a folder's class subfolders, tfds' names, or, for IDX files of a
    dataset named in KNOWN_CLASS_NAMES, its names."""
    label = builder.info.features["label"] if "label" in builder.info.features else None
    if label is None:
        return None
    names = list(label.names)
    known = KNOWN_CLASS_NAMES.get(name)
    if (known and len(known) == len(names) and names == [str(k) for k in range(len(names))]
            and (not data_dir or is_idx_folder(data_dir))):
        return list(known)
    return names


def _local_folder(name):
    for folder in KNOWN_LOCAL_FOLDERS.get(name, ()):
        try:
            idx.find_split_files(folder, "train")
            idx.find_split_files(folder, "test")
        except idx.IdxFormatError:
            continue
        return folder
    return None


def load(name, data_dir=None, tfds_data_dir=None, image_size=None, channels=None):
    """Data(prepared builder, the (S, S, C) a run uses, [notes for the log]).

    Args:
      name: a tfds dataset name ("mnist", "fashion_mnist", "cifar10", ...).
      data_dir: a folder of MNIST-format IDX files, or of image files (`folders`), to
        use instead of tfds' own source.
      tfds_data_dir: where tfds keeps prepared datasets (tfds' default if None).
      image_size, channels: --image_size and --channels; None for the data's own.
    """
    shapes.check(image_size, channels)
    notes = []
    if data_dir and not is_idx_folder(data_dir):
        builder, notes = folder_builder.prepared_folder_builder(
            data_dir, tfds_data_dir, image_size, channels, pipeline.fit_image)
    else:
        builder = load_builder(name, data_dir, tfds_data_dir)
    return Data(builder, settle_shape(builder, image_size, channels), notes)


def is_idx_folder(folder):
    """Whether `folder` is one of MNIST-format files (any file named like one, so a
    folder missing one of them is told which), else one of image files."""
    return os.path.isdir(folder) and any("-ubyte" in name or ".idx" in name
                                         for name in os.listdir(folder))


def load_builder(name, data_dir=None, tfds_data_dir=None):
    """A prepared tfds builder for `name` (or for the IDX files in `data_dir`), with its
    images at their own shape; `load` also reads folders of image files."""
    if data_dir:
        return idx_builder.prepared_idx_builder(data_dir, name, tfds_data_dir)
    try:
        builder = tfds.builder(name, data_dir=tfds_data_dir)
    except tfds.core.registered.DatasetNotFoundError:
        raise DataError(f"'{name}' is not a tensorflow-datasets dataset; use mnist, "
                        "fashion_mnist, cifar10 or another tfds image dataset, or pass "
                        "--data_dir=FOLDER of image files or MNIST-format IDX files."
                        ) from None
    if builder.is_prepared():
        return builder
    folder = _local_folder(name)
    if folder is not None:
        return idx_builder.prepared_idx_builder(folder, name, tfds_data_dir)
    if not network_reachable(DOWNLOAD_HOSTS.get(name, _DEFAULT_HOST)):
        raise DataError(_unavailable_message(name))
    builder.download_and_prepare()
    return builder
