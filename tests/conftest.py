"""Shared fixtures. The CPU is split into 4 logical devices before TensorFlow starts, so
multi-replica code runs under MirroredStrategy on a machine without accelerators."""

import functools
import hashlib
import json
import os
import pathlib
import subprocess
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from dcgan_dist import process_setup  # noqa: E402

# As the commands do (cli.py), before TensorFlow loads: the in-process tests train at the
# speed the commands do (process_setup.py).
process_setup.setup()

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

NUM_CPU_DEVICES = 4
tf.config.set_logical_device_configuration(
    tf.config.list_physical_devices("CPU")[0],
    [tf.config.LogicalDeviceConfiguration()] * NUM_CPU_DEVICES)

FASHION_DIR = "/usr/share/datasets/fashion-mnist"

# The quick tier, `pytest -m "not slow"` (about 3 minutes on 2 cores, for the edit loop),
# leaves out every test that needs one of these shared trained runs or multi-worker jobs;
# the tests that train or export on their own are marked slow where they stand.
SLOW_FIXTURES = {"trained_run", "colour_runs", "uninterrupted", "averaged_run",
                 "two_workers", "trained_workdir", "fashion_classifier", "workdir",
                 "evaluated", "exported", "conditional_run"}


def pytest_collection_modifyitems(items):
    for item in items:
        if SLOW_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


@functools.lru_cache(maxsize=None)
def mirrored(num_replicas):
    """One MirroredStrategy per replica count for the whole session: two strategies over
    the same devices in one process reuse collective instance keys and abort."""
    return tf.distribute.MirroredStrategy([f"/cpu:{i}" for i in range(num_replicas)])


@pytest.fixture(scope="session")
def fashion_dir():
    """Debian's Fashion-MNIST (package dataset-fashion-mnist), the real data of the tests."""
    if not os.path.isfile(os.path.join(FASHION_DIR, "train-images-idx3-ubyte.gz")):
        pytest.fail(f"{FASHION_DIR} is missing: apt-get install dataset-fashion-mnist")
    return FASHION_DIR


@pytest.fixture(scope="session")
def tfds_dir(tmp_path_factory):
    """A tfds data_dir for the whole session, so Fashion-MNIST is prepared once."""
    return str(tmp_path_factory.mktemp("tfds"))


@pytest.fixture(scope="session")
def fashion_builder(fashion_dir, tfds_dir):
    from dcgan_dist.data import idx_builder
    return idx_builder.prepared_idx_builder(fashion_dir, "fashion_mnist", tfds_dir)


def settled(config, strategy, class_names=None):
    """`config` with every open choice made, as a training run settles it once
    (train_step.build refuses an unsettled config); class_names: the data's, for a
    conditional config."""
    from dcgan_dist.training import settings
    return settings.resolve(config, strategy, image_shape=(28, 28, 1),
                            class_names=class_names)[0]


def checkpoint_values(workdir, step=None):
    """{name: value} of every variable in the latest checkpoint of `workdir` (or in its
    checkpoint of `step`)."""
    folder = os.path.join(workdir, "checkpoints")
    reader = tf.train.load_checkpoint(folder if step is None
                                      else os.path.join(folder, f"ckpt-{step}"))
    # Left out: the checkpoint's own counter, and the run count that a multi-worker
    # job's PreemptionCheckpointHandler adds to it (not training state).
    return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()
            if not name.startswith(("save_counter", "_CHECKPOINTABLE",
                                    "checkpointed_runs"))}


def latest_step(workdir):
    """The step of the latest checkpoint of `workdir` (as its CheckpointManager records
    it); 0 before the first save."""
    latest = tf.train.latest_checkpoint(os.path.join(workdir, "checkpoints"))
    return int(latest.split("-")[-1]) if latest else 0


def assert_resumed_bitwise(expected, workdir):
    """The latest checkpoint of `workdir` holds, bit for bit, the `expected` values (an
    uninterrupted run's `checkpoint_values`): weights, Adam moments and iteration counts,
    the noise generator, the dropout seeds, the averaged generator, step and epoch;
    everything that shapes the next step."""
    resumed = checkpoint_values(workdir)
    assert expected.keys() == resumed.keys()
    assert any("seed_state" in name for name in expected)
    assert any("noise_rng" in name for name in expected)
    assert any(name.startswith("generator_ema/") for name in expected)
    for name in expected:
        np.testing.assert_array_equal(resumed[name], expected[name], err_msg=name)


def run_cli(module, *args, timeout=600, env=None):
    """Runs `python -m module args` in a real process, with `env` added to its
    environment; returns the CompletedProcess."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1", **(env or {})}
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True,
                          text=True, timeout=timeout, env=env)


TRAINED_STEPS_PER_EPOCH = 4096 // 64


def common_flags(tfds_dir, split="train[:4096]", replicas=2):
    """The CLI flags of the shared small runs: global batch 64, on 2 replicas unless
    asked otherwise."""
    return ["--strategy=mirrored", f"--cpu_replicas={replicas}", "--dataset=fashion_mnist",
            f"--split={split}", "--batch_size=64", f"--tfds_data_dir={tfds_dir}"]


def _train_small_run(tmp_path_factory, tfds_dir, precision):
    workdir = str(tmp_path_factory.mktemp("run") / "workdir")
    result = run_cli("dcgan_dist.train", *common_flags(tfds_dir, replicas=1), "--epochs=3",
                     "--checkpoint_every_epochs=2", f"--precision={precision}",
                     f"--workdir={workdir}")
    assert result.returncode == 0, result.stderr[-3000:]
    return workdir, result.stdout


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory, fashion_builder, tfds_dir):
    """Three epochs of 64 steps at global batch 64, shared by every test that needs a
    trained workdir; tests that change it copy it. One replica, as the README's command
    trains on a CPU (2 logical devices on one CPU cost 1.1x to 1.4x the time); the
    tests that resume it run on 2, so they resume across replica counts too. Precision
    auto: bf16 where the CPU has bfloat16 instructions, fp32 where it would emulate them
    (5x slower; the bf16 and fp16 tests elsewhere are small)."""
    return _train_small_run(tmp_path_factory, tfds_dir, "auto")


def snapshot(*folders):
    """{path: what is there} for every file, folder and symbolic link in or under
    `folders` (files or folders; missing ones count as empty), the named ones included:
    what "nothing changed" compares. A file maps to its sha256, a folder to "folder"
    (so a new empty one shows), a link to "link -> TARGET" (not followed)."""
    entries = {}

    def record(path):
        if os.path.islink(path):
            entries[path] = f"link -> {os.readlink(path)}"
        elif os.path.isdir(path):
            entries[path] = "folder"
        elif os.path.isfile(path):
            with open(path, "rb") as f:
                entries[path] = hashlib.sha256(f.read()).hexdigest()
        else:  # a FIFO, a socket, a device
            entries[path] = f"mode {os.lstat(path).st_mode:o}"

    for folder in map(str, folders):
        if not os.path.lexists(folder):
            continue
        record(folder)
        if os.path.isdir(folder) and not os.path.islink(folder):
            # Links to folders come in dirs, recorded as links, not walked.
            for root, dirs, files in os.walk(folder):
                for name in dirs + files:
                    record(os.path.join(root, name))
    return entries


def idx_bytes(array):
    """`array` as an uncompressed IDX file of unsigned bytes (MNIST's format)."""
    header = bytes([0, 0, 8, array.ndim]) + np.array(array.shape, ">i4").tobytes()
    return header + array.astype(np.uint8).tobytes()


def write_idx_folder(path, images, labels, test_images=None, test_labels=None,
                     with_test=True):
    """A folder of the four MNIST files (the two train ones alone if not `with_test`);
    arrays are encoded, bytes written as given."""
    path.mkdir(exist_ok=True)
    parts = {"train-images-idx3-ubyte": images, "train-labels-idx1-ubyte": labels}
    if with_test:
        parts["t10k-images-idx3-ubyte"] = images if test_images is None else test_images
        parts["t10k-labels-idx1-ubyte"] = labels if test_labels is None else test_labels
    for name, array in parts.items():
        data = array if isinstance(array, bytes) else idx_bytes(array)
        (path / name).write_bytes(data)
    return str(path)


sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(__file__)), "benchmarks"))
from colour_images import write_icon_folder  # noqa: E402  (real colour images, Debian's)


@pytest.fixture(scope="session")
def icon_dir(tmp_path_factory):
    """Real colour icons in 4 class subfolders under train/ and test/ (332 and 80)."""
    return write_icon_folder(tmp_path_factory.mktemp("icons"))


COLOUR_STEPS = (4, 8)  # the colour runs' checkpoints (--save_every_steps, --max_steps)


@pytest.fixture(scope="session")
def small_icon_dir(tmp_path_factory):
    """FOLDER/{train,test}/{apps,mimetypes}/ICON.png: 20 training and 10 test icons of
    each class, colour with transparency (composited onto white when read)."""
    return write_icon_folder(tmp_path_factory.mktemp("small_icons"),
                             classes=("apps", "mimetypes"), per_class=30, test_every=3)


COLOUR_AUGMENTATION = "color,translation,cutout"


@pytest.fixture(scope="session")
def colour_runs(small_icon_dir, tfds_dir, tmp_path_factory):
    """colour_runs(size): (workdir, data folder) of 8 steps at size x size x 3 on
    small_icon_dir, batch 16 on one replica, every DiffAugment policy on (so colour
    augmentation trains at both sizes, and every tool reads such a run), checkpoints at
    steps 4 and 8; trained once per size for the whole session."""
    @functools.lru_cache(maxsize=None)
    def train(size):
        workdir = str(tmp_path_factory.mktemp(f"colour{size}") / "workdir")
        result = run_cli("dcgan_dist.train", f"--data_dir={small_icon_dir}",
                         f"--image_size={size}", "--channels=3", "--strategy=default",
                         "--batch_size=16", f"--max_steps={COLOUR_STEPS[1]}",
                         f"--diffaugment={COLOUR_AUGMENTATION}",
                         f"--save_every_steps={COLOUR_STEPS[0]}", f"--workdir={workdir}",
                         f"--tfds_data_dir={tfds_dir}")
        assert result.returncode == 0, result.stderr[-3000:]
        assert f"images of {size}x{size}x3" in result.stdout
        return workdir, small_icon_dir
    return train


def write_png_folder(path, splits):
    """A folder of PNG files in class subfolders: {split: (uint8 images [N, H, W(, C)],
    labels [N])} -> path/split/LABEL/NNNNN.png. Returns the folder."""
    from PIL import Image
    for split, (images, labels) in splits.items():
        for label in np.unique(labels):
            (path / split / str(label)).mkdir(parents=True, exist_ok=True)
        for i, (image, label) in enumerate(zip(images, labels)):
            Image.fromarray(np.squeeze(image, -1) if image.ndim == 3 and
                            image.shape[-1] == 1 else image).save(
                path / split / str(label) / f"{i:05d}.png")
    return str(path)


def assert_export_scores_as_checkpoint(model, images, export_dir, tmp_path):
    """`dcgan_dist.detect --detector=export_dir`, in a fresh process, on `images` saved
    as an .npz, prints the probabilities the checkpointed `model` gives them, calibrated
    by the temperature T of the export's record, and the call at its operating point;
    the SavedModel's own probability_real is sigmoid(checkpoint logit / T). Returns T."""
    from dcgan_dist.inference import detection
    exported = json.loads((pathlib.Path(export_dir) / "export.json").read_text())
    temperature, threshold = exported["temperature"], exported["threshold_1pct_fpr_logit"]
    assert temperature > 0 and exported["threshold_1pct_fpr_probability_real"] == (
        pytest.approx(float(detection.probability_real(threshold, temperature))))
    logits = detection.score_images(model, images)
    served = tf.saved_model.load(str(export_dir)).signatures["serving_default"](
        images=tf.constant(images))
    np.testing.assert_allclose(served["probability_real"].numpy(),
                               detection.probability_real(logits, temperature), atol=1e-5)
    np.savez(tmp_path / "five.npz", images=images[..., 0] if images.shape[-1] == 1
             else images)
    result = run_cli("dcgan_dist.detect", f"--detector={export_dir}",
                     str(tmp_path / "five.npz"))
    assert result.returncode == 0, result.stderr[-3000:]
    lines = [line.split("\t") for line in result.stdout.splitlines()]
    assert all(len(line) == 3 for line in lines), result.stdout
    np.testing.assert_allclose([float(line[1]) for line in lines],
                               detection.probability_real(logits, temperature), atol=2e-6)
    assert [line[2] for line in lines] == [
        "generated" if logit < threshold else "real" for logit in logits]
    return temperature
