"""Finding data offline: local folders first, fail fast with the ways to get it."""

import socket
import time

import pytest
import tensorflow_datasets as tfds

from dcgan_dist.data import idx, sources
from dcgan_dist.errors import ConfigError, DataError


def test_fashion_mnist_is_found_in_the_debian_folder(fashion_dir, tfds_dir):
    builder = sources.load_builder("fashion_mnist", tfds_data_dir=tfds_dir)
    assert builder.name == "idx_images"
    assert builder.info.splits["train"].num_examples == 60000


def test_data_dir_goes_through_the_idx_builder(fashion_dir, tfds_dir):
    builder = sources.load_builder("fashion_mnist", data_dir=fashion_dir,
                                   tfds_data_dir=tfds_dir)
    assert builder.name == "idx_images"
    assert builder.info.splits["test"].num_examples == 10000


def test_bad_data_dir_is_a_data_error(tmp_path, tfds_dir):
    with pytest.raises(DataError, match="has no train images file"):
        sources.load_builder("mnist", data_dir=str(tmp_path), tfds_data_dir=tfds_dir)
    assert issubclass(idx.IdxFormatError, DataError)


def test_unknown_datasets_are_refused_and_other_shapes_settle_from_metadata(tmp_path):
    with pytest.raises(DataError, match="not a tensorflow-datasets dataset"):
        sources.load_builder("no_such_dataset", tfds_data_dir=str(tmp_path))
    started = time.monotonic()
    cifar10 = tfds.builder("cifar10", data_dir=str(tmp_path))  # metadata only
    assert sources.settle_shape(cifar10) == (32, 32, 3)
    assert sources.settle_shape(cifar10, 28, 1) == (28, 28, 1)
    with pytest.raises(DataError, match=r"32x32 pixels, smaller than --image_size=64"):
        sources.settle_shape(cifar10, 64)
    with pytest.raises(ConfigError, match=r"--image_size=30 cannot be built"):
        sources.settle_shape(cifar10, 30)
    assert time.monotonic() - started < 10  # nothing fetched


def _closed_loopback_port():
    """A loopback port nothing listens on: connecting to it is refused at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_the_network_check_goes_through_the_configured_proxy(monkeypatch):
    """Offline is what the proxy (or the host) answers: a listening proxy on loopback
    counts as online, a refused one as offline, whatever this machine can reach."""
    with socket.socket() as proxy:
        proxy.bind(("127.0.0.1", 0))
        proxy.listen()
        monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{proxy.getsockname()[1]}")
        assert sources.network_reachable(sources.DOWNLOAD_HOSTS["mnist"])
    monkeypatch.setenv("HTTPS_PROXY", f"127.0.0.1:{_closed_loopback_port()}")
    assert not sources.network_reachable(sources.DOWNLOAD_HOSTS["mnist"])


def test_offline_mnist_fails_fast_naming_every_way_to_get_it(tmp_path, monkeypatch):
    # Offline on every machine, online ones included: the downloads would go through a
    # proxy that refuses (the check above shows the proxy is what is asked).
    monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{_closed_loopback_port()}")
    started = time.monotonic()
    with pytest.raises(DataError) as error:
        sources.load_builder("mnist", tfds_data_dir=str(tmp_path))
    assert time.monotonic() - started < 15  # not tfds' minutes of retries
    message = str(error.value)
    assert "internet access" in message
    assert "--data_dir" in message
    assert "apt-get install dataset-fashion-mnist" in message
