"""A tensorflow-datasets builder over a folder of image files (see `folders` for the
layout), like `idx_builder` over IDX files.

A folder is prepared once per (content, image size, channels): every image decoded,
converted to the channels, centre-cropped and resized to the size, then written by tfds
as PNGs in the usual prepared layout under its data_dir. Training, evaluation and the
detectors then read it through the same `as_dataset` pipeline as any tfds dataset. All
images are decoded and checked before tfds writes anything (memory holds them at the
prepared size: 100,000 images of 64x64x3 are 1.2 GB), so a bad image writes nothing.

Two first preparations of one folder at once take turns (`preparing.prepare_once`).
"""

import os
import re

import tensorflow_datasets as tfds

from dcgan_dist import shapes
from dcgan_dist.data import folder_layout, folders, preparing

PREPARED_VERSION = "1.0.0"


class ImageFolderImages(tfds.core.GeneratorBasedBuilder):
    """Square images of one shape from a folder, with class labels when it has classes."""

    VERSION = tfds.core.Version(PREPARED_VERSION)
    RELEASE_NOTES = {PREPARED_VERSION: "First release."}
    MANUAL_DOWNLOAD_INSTRUCTIONS = f"Pass --data_dir=FOLDER of {folder_layout.LAYOUT}."

    def __init__(self, *, decoded, image_shape, class_names, **kwargs):
        self._decoded = decoded  # {split: (images, labels or None)}
        self._image_shape = tuple(image_shape)
        self._class_names = class_names
        super().__init__(**kwargs)

    def _info(self):
        features = {"image": tfds.features.Image(shape=self._image_shape)}
        if self._class_names is not None:
            features["label"] = tfds.features.ClassLabel(names=self._class_names)
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict(features),
            supervised_keys=("image", "label") if self._class_names else None)

    def _split_generators(self, dl_manager):
        return {split: self._generate_examples(*arrays)
                for split, arrays in self._decoded.items()}

    def _generate_examples(self, images, labels):
        for i, image in enumerate(images):
            example = {"image": image}
            if labels is not None:
                example["label"] = labels[i]
            yield i, example


def _data_dir(tfds_data_dir):
    return os.path.expanduser(tfds_data_dir or tfds.core.constants.get_default_data_dir())


def prepared_folder_builder(folder, tfds_data_dir, image_size, channels, fit):
    """(the builder of `folder`'s images at image_size x image_size x channels, prepared
    once per folder content and shape, [notes for the log]).

    image_size, channels: None for the images' own (see folders.settle_shape).
    fit: fit(image, size), the centre crop and resize (pipeline.fit_image).
    """
    layout = folder_layout.Layout(folder)
    own_size = image_size is None
    image_size, channels, notes = folders.settle_shape(layout, image_size, channels)
    if own_size:  # (a given --image_size was checked with the flags)
        shapes.check_own_size(image_size, f"the images in {folder}")
    stem = re.sub(r"[^a-z0-9_]", "_", os.path.basename(os.path.abspath(folder)).lower())
    config_name = f"{stem}_{layout.fingerprint()}_{image_size}x{image_size}x{channels}"
    prepared = os.path.join(_data_dir(tfds_data_dir), "image_folder_images", config_name,
                            PREPARED_VERSION)
    notes = layout.notes + notes
    if not preparing.is_prepared(prepared):
        # Decoded (and checked) before anything is written, lock file included.
        decoded = {split: folders.decode_split(layout, split, image_size, channels, fit)
                   for split in layout.splits}
        config = tfds.core.BuilderConfig(
            name=config_name, description=f"image files from {folder_layout.shown(folder)}")
        builder = ImageFolderImages(decoded=decoded, config=config, data_dir=tfds_data_dir,
                                    image_shape=(image_size, image_size, channels),
                                    class_names=layout.label_names)
        preparing.prepare_once(prepared, folder_layout.shown(folder),
                               builder.download_and_prepare)
    return tfds.builder_from_directory(prepared), notes

