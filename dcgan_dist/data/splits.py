"""The splits of a dataset that evaluation and the detectors read whole, as arrays, and
the check that the real split evaluation compares against exists."""

from dcgan_dist.data import idx
from dcgan_dist.errors import DataError

REAL_SPLIT = "test"  # the real images a generator is compared against


def load_split(builder, split):
    """(uint8 images [N, 28, 28, 1], int64 labels [N]) of a split, in the split's order."""
    data = builder.as_dataset(split=split, batch_size=-1, shuffle_files=False)
    return data["image"].numpy(), data["label"].numpy()


def require_real_split(builder, data_dir, needed_by="evaluation", error=DataError,
                       otherwise=""):
    """Refuses, in one sentence that says what to do, data without the test split that
    evaluation compares against: a --data_dir of training files alone.

    A held-out slice of the training split would look like an answer, but the generator
    trained on those very images, so its metrics would flatter it.
    """
    if REAL_SPLIT in builder.info.splits:
        return
    if data_dir:
        where = (f"--data_dir={data_dir} holds only training files; add "
                 f"{idx.split_file_names(REAL_SPLIT)} to that folder")
    else:
        where = (f"'{builder.info.full_name}' has no '{REAL_SPLIT}' split; use a dataset "
                 "that has one")
    raise error(f"{needed_by} needs a '{REAL_SPLIT}' split (its real images, and the "
                f"feature classifier's accuracy), but {where}{otherwise}.")
