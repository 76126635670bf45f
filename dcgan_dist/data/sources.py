"""Finding a dataset: a local IDX folder, a prepared tfds dataset, a known local copy, or
a download -- in that order, so that an offline machine never waits on network retries.

Offline, `tfds.builder(name).download_and_prepare()` spends minutes in retries before it
gives up, so a download is tried only after a one-second check that the network answers.
"""

import os
import socket
import urllib.parse

import tensorflow_datasets as tfds

from dcgan_dist.data import idx, idx_builder
from dcgan_dist.errors import DataError

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
            "pass --data_dir=FOLDER holding " + idx.folder_contents()]
    if name == "fashion_mnist":
        ways.append("install Debian's copy: apt-get install dataset-fashion-mnist "
                    "(found at /usr/share/datasets/fashion-mnist)")
    else:
        ways.append("train on Fashion-MNIST, which Debian packages: apt-get install "
                    "dataset-fashion-mnist, then --dataset=fashion_mnist")
    return (f"Dataset '{name}' is not prepared here and cannot be downloaded (no network). "
            "Get it one of these ways: " + "; ".join(f"({i}) {w}"
                                                     for i, w in enumerate(ways, 1)) + ".")


def _check_image_shape(builder, name):
    features = builder.info.features
    image = features["image"] if "image" in features else None
    if image is None or tuple(image.shape) != idx_builder.IMAGE_SHAPE_28:
        shape = None if image is None else tuple(image.shape)
        raise DataError(f"Dataset '{name}' has images of shape {shape}; this DCGAN needs "
                        "28x28x1 images (mnist, fashion_mnist, kmnist, emnist, ...).")


def _local_folder(name):
    for folder in KNOWN_LOCAL_FOLDERS.get(name, ()):
        try:
            idx.find_split_files(folder, "train")
            idx.find_split_files(folder, "test")
        except idx.IdxFormatError:
            continue
        return folder
    return None


def load_builder(name, data_dir=None, tfds_data_dir=None):
    """A prepared tfds builder for `name` with an `image` feature of 28x28x1.

    Args:
      name: a tfds dataset name ("mnist", "fashion_mnist", ...).
      data_dir: a folder of MNIST-format IDX files to use instead of tfds' own source.
      tfds_data_dir: where tfds keeps prepared datasets (tfds' default if None).
    """
    if data_dir:
        return idx_builder.prepared_idx_builder(data_dir, name, tfds_data_dir)
    try:
        builder = tfds.builder(name, data_dir=tfds_data_dir)
    except tfds.core.registered.DatasetNotFoundError:
        raise DataError(f"'{name}' is not a tensorflow-datasets dataset; use mnist, "
                        "fashion_mnist or another tfds image dataset of 28x28x1, or pass "
                        "--data_dir=FOLDER of MNIST-format IDX files.") from None
    _check_image_shape(builder, name)
    if builder.is_prepared():
        return builder
    folder = _local_folder(name)
    if folder is not None:
        return idx_builder.prepared_idx_builder(folder, name, tfds_data_dir)
    if not network_reachable(DOWNLOAD_HOSTS.get(name, _DEFAULT_HOST)):
        raise DataError(_unavailable_message(name))
    builder.download_and_prepare()
    return builder
