"""Class-conditional runs (train --conditional) end to end on real Fashion-MNIST: the
record and the grid, a resume, generate --class, the exported generator's signature,
evaluation's class accuracy, and the inputs refused in one sentence with nothing
written."""

import json
import os
import subprocess
import sys
import textwrap

import imageio.v3 as iio
import numpy as np
import pytest

from conftest import assert_resumed_bitwise, checkpoint_values, run_cli, snapshot
from dcgan_dist import images, models
from dcgan_dist import workdir as layout
from dcgan_dist.data import sources, splits
from dcgan_dist.evaluation import evaluator, metrics
from dcgan_dist.inference import detection, runs, sampling, savedmodel

FASHION_CLASSES = sources.KNOWN_CLASS_NAMES["fashion_mnist"]
STEPS, SAVE_EVERY = 12, 6  # the shared run's checkpoints: steps 6 and 12


def _train_flags(tfds_dir, workdir, max_steps=STEPS):
    """A conditional fast run (averaged generator, --conditional's defaults: conditional
    batch norm and the classification loss) with augmentation, deterministic: 12 steps
    of 16 images, mid-epoch (40 steps per epoch)."""
    return ["--strategy=mirrored", "--cpu_replicas=1", "--dataset=fashion_mnist",
            "--split=train[:640]", "--batch_size=16", f"--tfds_data_dir={tfds_dir}",
            "--conditional", "--recipe=fast", "--diffaugment=translation",
            "--deterministic", f"--save_every_steps={SAVE_EVERY}",
            f"--max_steps={max_steps}", f"--workdir={workdir}"]


@pytest.fixture(scope="module")
def conditional_run(fashion_builder, tfds_dir, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("conditional") / "w"
    result = run_cli("dcgan_dist.train", *_train_flags(tfds_dir, workdir))
    assert result.returncode == 0, result.stderr[-3000:]
    return str(workdir)


def test_the_record_names_the_classes_and_the_grid_has_a_row_each(conditional_run):
    record = layout.read_config(conditional_run)
    assert record["conditional"] is True and record["conditioning"] == "batchnorm"
    assert record["class_loss"] == 1.0  # the defaults of --conditional
    assert record["num_classes"] == 10 and record["class_names"] == list(FASHION_CLASSES)
    # 10 rows (one per class) of 8 columns, each tile 28 + 2 pixels, doubled.
    grid = iio.imread(layout.grid_path(conditional_run, step=STEPS))
    assert grid.shape == ((10 * 30 + 2) * 2, (8 * 30 + 2) * 2)
    # The averaged generator is conditional too.
    assert runs.has_averaged_generator(layout.resolve_checkpoint(conditional_run))


def test_a_stopped_conditional_run_resumes_bitwise(conditional_run, tfds_dir, tmp_path):
    """Stopped at step 6 and started again, the run ends where the uninterrupted one
    does: weights, both averaged generators, optimizer moments, noise generator, dropout
    seeds (the fake labels and augmentation come from the step's seed)."""
    workdir = tmp_path / "w"
    first = run_cli("dcgan_dist.train", *_train_flags(tfds_dir, workdir, SAVE_EVERY))
    assert first.returncode == 0, first.stderr[-3000:]
    resumed = run_cli("dcgan_dist.train", *_train_flags(tfds_dir, workdir))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"at step {SAVE_EVERY}" in resumed.stdout
    expected = checkpoint_values(conditional_run)
    # The projection's class embedding (10 x 6,272) is among what came back.
    assert any(np.shape(value) == (10, 6272) for value in expected.values())
    assert_resumed_bitwise(expected, workdir)


def _restored_generator(workdir, step):
    generator, _ = runs.networks_of(layout.resolve_checkpoint(workdir))
    runs.restore(layout.resolve_checkpoint(workdir, str(step)), generator)
    return generator


def test_generate_draws_the_classes_asked_for_a_row_each(conditional_run, tmp_path):
    out = {name: str(tmp_path / name) for name in ("s.npz", "grid.png", "strip.png")}
    result = run_cli("dcgan_dist.generate", f"--workdir={conditional_run}",
                     "--class=Trouser", "--class=7", "--num_samples=3", "--seed=2",
                     f"--npz={out['s.npz']}", f"--grid={out['grid.png']}",
                     "--interpolate=2,3", "--steps=4", f"--strip={out['strip.png']}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "classes: Trouser, Sneaker" in result.stdout
    saved = np.load(out["s.npz"])
    assert list(saved["labels"]) == [1, 1, 1, 7, 7, 7]
    assert list(saved["seeds"]) == [2, 3, 4, 2, 3, 4]
    assert list(saved["class_names"]) == list(FASHION_CLASSES)

    generator = _restored_generator(conditional_run, STEPS)
    noise = sampling.noise_for_seeds([2, 3, 4]).numpy()
    expected = sampling.generate_images(generator, np.tile(noise, [2, 1]),
                                        saved["labels"])
    np.testing.assert_array_equal(saved["images"], expected[..., 0])
    # The class, not only the noise, makes the image: the same seeds, other rows.
    assert not np.array_equal(expected[:3], expected[3:])
    np.testing.assert_array_equal(iio.imread(out["grid.png"]), images.tile(expected, 3))
    path = sampling.slerp_noise(2, 3, 4)
    strip = sampling.generate_images(generator, np.tile(path, [2, 1]),
                                     np.repeat(np.int32([1, 7]), 4))
    np.testing.assert_array_equal(iio.imread(out["strip.png"]), images.tile(strip, 4))


_RELOAD = textwrap.dedent("""
    import sys
    import numpy as np
    import tensorflow as tf
    inputs = np.load(sys.argv[2])
    generator = tf.saved_model.load(sys.argv[1])
    images = generator.signatures["serving_default"](
        noise=tf.constant(inputs["noise"]), label=tf.constant(inputs["labels"]))
    by_seed = generator.signatures["from_seeds"](seeds=tf.constant(inputs["seeds"]),
                                                 label=tf.constant(inputs["labels"]))
    np.savez(sys.argv[3], images=images["images"].numpy(),
             seed_images=by_seed["images"].numpy())
""")


def test_the_exported_generator_takes_the_class(conditional_run, fashion_builder,
                                                tmp_path):
    """The SavedModel, reloaded in a fresh process without this package, draws what
    the checkpoint's averaged generator draws for each noise and label; export.json
    names the classes; the detector scores as the checkpoint (largest class logit)."""
    export_dir = str(tmp_path / "export")
    result = run_cli("dcgan_dist.export", f"--workdir={conditional_run}",
                     f"--export_dir={export_dir}")
    assert result.returncode == 0, result.stderr[-3000:]
    with open(os.path.join(export_dir, layout.EXPORT_RECORD)) as f:
        assert json.load(f)["class_names"] == list(FASHION_CLASSES)
    generator, discriminator, _ = runs.load_networks(
        layout.resolve_checkpoint(conditional_run))
    noise = np.random.default_rng(1).standard_normal([6, 100]).astype(np.float32)
    labels, seeds = np.int32([0, 3, 6, 6, 9, 1]), np.arange(100, 106)
    np.savez(tmp_path / "inputs.npz", noise=noise, labels=labels, seeds=seeds)
    (tmp_path / "reload.py").write_text(_RELOAD)
    done = subprocess.run(
        [sys.executable, str(tmp_path / "reload.py"),
         os.path.join(export_dir, savedmodel.GENERATOR_FOLDER),
         str(tmp_path / "inputs.npz"), str(tmp_path / "outputs.npz")], capture_output=True, text=True, timeout=300,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"), cwd=str(tmp_path))
    assert done.returncode == 0, done.stderr[-3000:]
    outputs = np.load(tmp_path / "outputs.npz")
    np.testing.assert_array_equal(outputs["images"],
                                  sampling.generate_images(generator, noise, labels))
    np.testing.assert_array_equal(outputs["seed_images"], sampling.generate_images(
        generator, sampling.noise_for_seeds(seeds), labels))

    real, _ = splits.load_split(fashion_builder, "test[:4]")
    both = np.concatenate([real, sampling.generate_images(generator, noise[:2])])
    detector = savedmodel.detector_logits(os.path.join(export_dir, "detector"), both)
    np.testing.assert_allclose(detector, detection.score_images(discriminator, both),
                               rtol=1e-5, atol=1e-5)


def test_an_unconditional_export_keeps_its_signature(tmp_path):
    """The article's generator exports with today's inputs: noise alone, or seeds."""
    import tensorflow as tf
    folder = savedmodel.export_generator(models.make_generator_model(), str(tmp_path / "g"))
    loaded = tf.saved_model.load(folder).signatures
    assert set(loaded["serving_default"].structured_input_signature[1]) == {"noise"}
    assert set(loaded["from_seeds"].structured_input_signature[1]) == {"seeds"}


def test_class_accuracy_counts_each_class_asked_for():
    probabilities = np.eye(3)[[0, 0, 1, 2, 2, 0]]  # predicted: 0 0 1 2 2 0
    result = metrics.class_accuracy(probabilities, [0, 1, 1, 2, 2, 2], 4)
    assert result["class_accuracy"] == pytest.approx(4 / 6)
    assert result["class_accuracy_per_class"] == [1.0, 0.5, pytest.approx(2 / 3), None]


def _stub_generator(class_images):
    """A conditional "generator" that draws, for class k, the uint8 image
    class_images[k] whatever the noise."""
    import keras
    count = len(class_images)
    noise, labels = keras.Input((models.NOISE_DIM,)), keras.Input((), dtype="int32")
    table = keras.layers.Embedding(count, 28 * 28, trainable=False)
    picked = keras.layers.Reshape((28, 28, 1))(table(labels))
    model = keras.Model([noise, labels], picked)
    table.set_weights([class_images.reshape(count, -1).astype(np.float32) / 127.5 - 1.0])
    model.num_classes = count
    return model


def test_evaluation_scores_each_class_against_the_classifier(conditional_run,
                                                             fashion_builder, tfds_dir):
    """A stub that draws, for each class, a real test image of that class scores 1 on
    every class; the same images a class off score 0; the trained run records its
    class accuracy and the classifier's per-class accuracy on real images."""
    scorer = evaluator.Evaluator("fashion_mnist", tfds_data_dir=tfds_dir, num_samples=200)
    predicted = scorer.real.probabilities.argmax(1)
    # Per class, the first real test image that the classifier gets right.
    right = np.array([np.flatnonzero((scorer.real_labels == k) & (predicted == k))[0]
                      for k in range(10)])
    discriminator = models.make_discriminator_model(num_classes=10)
    exact = scorer(_stub_generator(scorer.real_images[right]), discriminator, step=0)
    assert exact["class_accuracy"] == 1.0
    assert exact["class_accuracy_per_class"] == [1.0] * 10
    shifted = scorer(_stub_generator(scorer.real_images[np.roll(right, 1)]),
                     discriminator, step=0)
    assert shifted["class_accuracy"] == 0.0

    scorer = evaluator.Evaluator("fashion_mnist", tfds_data_dir=tfds_dir, num_samples=200,
                                 workdir=conditional_run)
    generator, discriminator, step = runs.load_networks(
        layout.resolve_checkpoint(conditional_run))
    results = scorer(generator, discriminator, step)
    scorer.close()
    assert 0 <= results["class_accuracy"] <= 1
    assert len(results["class_accuracy_per_class"]) == 10
    assert list(results["detector_auc_earlier"]) == [str(SAVE_EVERY)]
    with open(os.path.join(conditional_run, layout.METRICS_FILE)) as f:
        line = [json.loads(line) for line in f][-1]
    assert line["class_accuracy"] == results["class_accuracy"]
    # The bar to compare with: the classifier on the 200 real images, per class.
    assert len(line["classifier_class_accuracy"]) == 10
    assert np.mean(line["classifier_class_accuracy"]) > 0.8


def test_the_classification_loss_is_on_by_default_and_needs_classes():
    from dcgan_dist.errors import ConfigError
    from dcgan_dist.training.config import TrainConfig
    assert TrainConfig(workdir="w", conditional=True).class_loss == 1.0
    assert TrainConfig(workdir="w", conditional=True, class_loss=0).class_loss == 0.0
    assert TrainConfig(workdir="w").class_loss == 0.0
    with pytest.raises(ConfigError, match="pass --conditional as well"):
        TrainConfig(workdir="w", class_loss=1.0)


def _fake_run(folder, record):
    """A workdir with a record and an (empty) checkpoint file: enough for a command
    to check its flags against the run, which it does before it imports TensorFlow."""
    os.makedirs(os.path.join(folder, layout.CHECKPOINT_FOLDER))
    with open(os.path.join(folder, layout.CONFIG_FILE), "w") as f:
        json.dump(record, f)
    open(os.path.join(folder, layout.CHECKPOINT_FOLDER, "ckpt-1.index"), "w").close()
    return str(folder)


@pytest.mark.parametrize("record, flag, words", [
    ({"conditional": False}, "--class=0", "was trained without --conditional"),
    ({"conditional": True, "num_classes": 3, "class_names": ["a", "b", "c"]},
     "--class=hat", "--class=hat is not a class of"),
    ({"conditional": True, "num_classes": 3, "class_names": ["a", "b", "c"]},
     "--class=3", "0 a, 1 b, 2 c"),
], ids=["unconditional", "unknown-name", "index-out-of-range"])
def test_a_class_the_run_cannot_draw_is_refused_writing_nothing(record, flag, words,
                                                              tmp_path):
    workdir = _fake_run(tmp_path / "w", record)
    before = snapshot(tmp_path)
    result = run_cli("dcgan_dist.generate", f"--workdir={workdir}", flag,
                     f"--npz={tmp_path / 'out.npz'}")
    assert result.returncode == 2, result.stderr[-2000:]
    message = result.stderr.strip().splitlines()
    assert len(message) == 1 and message[0].startswith("error: ") and words in message[0]
    assert snapshot(tmp_path) == before


def test_conditional_training_on_unlabelled_images_is_refused(tmp_path, tfds_dir):
    """A folder of images without class subfolders: exit 2, one sentence, no workdir."""
    from PIL import Image
    rng = np.random.default_rng(0)
    (tmp_path / "flat").mkdir()
    for i in range(8):
        Image.fromarray(rng.integers(0, 256, (28, 28), np.uint8)).save(
            tmp_path / "flat" / f"{i}.png")
    workdir = tmp_path / "w"
    result = run_cli("dcgan_dist.train", f"--data_dir={tmp_path / 'flat'}", "--conditional",
                     "--batch_size=4", "--max_steps=1", f"--tfds_data_dir={tfds_dir}",
                     f"--workdir={workdir}")
    assert result.returncode == 2, result.stderr[-2000:]
    reasons = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(reasons) == 1 and "--conditional needs labelled data" in reasons[0]
    assert "has no labels" in reasons[0]
    assert not workdir.exists()
