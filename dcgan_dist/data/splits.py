"""The splits of a dataset that evaluation and the detectors read whole, as arrays, and
the check that the real split evaluation compares against exists."""

import numpy as np

from dcgan_dist.data import idx, pipeline, sources
from dcgan_dist.errors import DataError

REAL_SPLIT = "test"  # the real images a generator is compared against


def load_split(builder, split, image_shape=None):
    """(uint8 images [N, *image_shape], int64 labels [N] or None for unlabelled data) of
    a split, in the split's order; image_shape: the run's (default: the data's own)."""
    data = builder.as_dataset(split=split, batch_size=-1, shuffle_files=False)
    images = data["image"].numpy()
    if image_shape is not None and images.shape[1:] != tuple(image_shape):
        # Fitted as training fits them (pipeline.tfds_images), in the split's order.
        images_fn, _ = pipeline.tfds_images(builder, split, image_shape)
        images = np.concatenate(list(pipeline.without_autotuning(
            images_fn().batch(1024)).as_numpy_iterator()))
    labels = data["label"].numpy().astype(np.int64) if "label" in data else None
    return images, labels


def require_real_split(builder, data_dir, needed_by="evaluation", error=DataError,
                       otherwise=""):
    """Refuses, in one sentence that says what to do, data without the test split that
    evaluation compares against: a --data_dir of training files alone.

    A held-out slice of the training split would look like an answer, but the generator
    trained on those very images, so its metrics would flatter it.
    """
    if REAL_SPLIT in builder.info.splits:
        return
    if data_dir and sources.is_idx_folder(data_dir):
        where = (f"--data_dir={data_dir} holds only training files; add "
                 f"{idx.split_file_names(REAL_SPLIT)} to that folder")
    elif data_dir:
        where = (f"--data_dir={data_dir} has no {REAL_SPLIT}/ subfolder; put the training "
                 f"images in train/ and held-out ones in {REAL_SPLIT}/ (with the same "
                 "class subfolders)")
    else:
        where = (f"'{builder.info.full_name}' has no '{REAL_SPLIT}' split; use a dataset "
                 "that has one")
    raise error(f"{needed_by} needs a '{REAL_SPLIT}' split (its real images, and the "
                f"feature classifier's accuracy), but {where}{otherwise}.")
