"""A tensorflow-datasets builder over a folder of MNIST-format IDX files.

It turns a local folder (Debian's /usr/share/datasets/fashion-mnist, or MNIST files copied
from another machine) into a prepared tfds dataset with a `train` split, and a `test`
split when the folder has the t10k files (evaluation needs it, training does not), so local
data goes through exactly the same `as_dataset` pipeline as a downloaded tfds dataset. The
folder is the builder's manual_dir; tfds writes the prepared copy atomically under its
data_dir, one config per folder content. Every file is read and checked before anything
is written, and two first preparations at once take turns (`preparing.prepare_once`).
"""

import re

import tensorflow_datasets as tfds

from dcgan_dist.data import idx, preparing

IMAGE_SHAPE_28 = (idx.IMAGE_SIZE, idx.IMAGE_SIZE, 1)


class IdxImages(tfds.core.GeneratorBasedBuilder):
    """28x28 grey images with labels 0..9 from MNIST-format IDX files."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "First release."}
    MANUAL_DOWNLOAD_INSTRUCTIONS = (
        "Put " + idx.folder_contents() + " in one folder and pass it with --data_dir.")

    def _info(self):
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict({
                "image": tfds.features.Image(shape=IMAGE_SHAPE_28),
                "label": tfds.features.ClassLabel(num_classes=idx.NUM_CLASSES),
            }),
            supervised_keys=("image", "label"),
        )

    def __init__(self, *, read=None, **kwargs):
        self._read = read  # {split: (images, labels)}, read and checked: to prepare
        super().__init__(**kwargs)

    def _split_generators(self, dl_manager):
        return {split: self._generate_examples(*arrays)
                for split, arrays in self._read.items()}

    def _generate_examples(self, images, labels):
        for i, (image, label) in enumerate(zip(images, labels)):
            yield i, {"image": image, "label": label}


def prepared_idx_builder(folder, name, tfds_data_dir=None):
    """The IdxImages builder for `folder`, prepared (once per folder content)."""
    config_name = re.sub(r"[^a-z0-9_]", "_", name.lower()) + "_" + idx.fingerprint(folder)
    config = tfds.core.BuilderConfig(
        name=config_name, description=f"MNIST-format IDX files from {folder}")
    builder = IdxImages(config=config, data_dir=tfds_data_dir)
    if not builder.is_prepared():
        # Read and check every file before anything is written.
        read = {split: idx.read_split(folder, split) for split in idx.available_splits(folder)}
        preparing.prepare_once(
            builder.data_dir, folder, IdxImages(read=read, config=config,
                                                data_dir=tfds_data_dir).download_and_prepare)
        builder = IdxImages(config=config, data_dir=tfds_data_dir)  # reads what is there
    return builder
