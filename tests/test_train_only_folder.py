"""A --data_dir of the two training files alone, through the real command lines: training
works, and evaluation (afterwards or during training) refuses with one sentence."""

import os

import pytest

from conftest import run_cli, snapshot, write_idx_folder
from dcgan_dist.data import idx

NUM_IMAGES = 512  # 8 batches of 64: a real subset, small enough to prepare in a second
NO_TEST_SPLIT = ("needs a 'test' split (its real images, and the feature classifier's "
                 "accuracy), but --data_dir=")
ADD_TEST_FILES = ("add t10k-images-idx3-ubyte[.gz] and t10k-labels-idx1-ubyte[.gz] to "
                  "that folder")


@pytest.fixture(scope="module")
def train_only_dir(fashion_dir, tmp_path_factory):
    """The first 512 Fashion-MNIST training images and labels, without any t10k file."""
    images, labels = idx.read_split(fashion_dir, "train")
    folder = write_idx_folder(tmp_path_factory.mktemp("train_only") / "data",
                              images[:NUM_IMAGES, ..., 0], labels[:NUM_IMAGES],
                              with_test=False)
    assert sorted(os.listdir(folder)) == ["train-images-idx3-ubyte",
                                          "train-labels-idx1-ubyte"]
    return folder


@pytest.fixture(scope="module")
def own_tfds_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("tfds_train_only"))


def _train_flags(data_dir, tfds_dir, workdir):
    return ["--strategy=default", "--dataset=my_images", f"--data_dir={data_dir}",
            f"--tfds_data_dir={tfds_dir}", "--batch_size=64", "--max_steps=2",
            "--precision=fp32", f"--workdir={workdir}"]


@pytest.fixture(scope="module")
def trained_workdir(train_only_dir, own_tfds_dir, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("train_only_run") / "workdir"
    result = run_cli("dcgan_dist.train", *_train_flags(train_only_dir, own_tfds_dir,
                                                       workdir))
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"train ({NUM_IMAGES} images of 28x28x1)" in result.stdout
    assert "train | done | step: 2" in result.stdout
    return workdir


def _one_sentence(result, status):
    assert result.returncode == status, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    # One reason line; TensorFlow's own C++ log lines (it has loaded by then) aside.
    reasons = [line for line in result.stderr.splitlines()
               if line.startswith(("error:", "stopped:"))]
    assert len(reasons) == 1, result.stderr[-3000:]
    return reasons[0]


def test_trains_from_the_training_files_alone(trained_workdir):
    assert os.path.isfile(trained_workdir / "checkpoints" / "ckpt-2.index")


def test_evaluate_says_it_needs_the_test_files(trained_workdir, train_only_dir,
                                               own_tfds_dir):
    before = snapshot(trained_workdir)
    result = run_cli("dcgan_dist.evaluate", f"--workdir={trained_workdir}",
                     f"--data_dir={train_only_dir}", f"--tfds_data_dir={own_tfds_dir}",
                     "--num_samples=100")
    message = _one_sentence(result, 3)  # missing data, as the evaluate docstring says
    assert message == (f"error: evaluation {NO_TEST_SPLIT}{train_only_dir} holds only "
                       f"training files; {ADD_TEST_FILES}.")
    assert snapshot(trained_workdir) == before  # no metrics.jsonl, no eval/
    # Without --data_dir, evaluate reads the run's folder from its config.json (else it
    # would look for a tfds dataset called my_images): the same sentence, same folder.
    result = run_cli("dcgan_dist.evaluate", f"--workdir={trained_workdir}",
                     f"--tfds_data_dir={own_tfds_dir}", "--num_samples=100")
    assert _one_sentence(result, 3) == message
    assert snapshot(trained_workdir) == before


def test_training_with_evaluation_is_refused_before_writing(train_only_dir, own_tfds_dir,
                                                            tmp_path):
    workdir = tmp_path / "workdir"
    result = run_cli("dcgan_dist.train", *_train_flags(train_only_dir, own_tfds_dir,
                                                       workdir),
                     "--eval_every_epochs=1")
    message = _one_sentence(result, 2)  # a flag the data cannot serve: a usage error
    assert message == (
        "error: evaluation during training (--eval_every_epochs, --eval_every_images) "
        f"{NO_TEST_SPLIT}{train_only_dir} holds only training files; {ADD_TEST_FILES}, "
        "or train without those flags.")
    assert not workdir.exists()
