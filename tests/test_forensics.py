"""dcgan_dist.forensics in real processes: negative controls, a held-out checkpoint, the
exported detector in a fresh process, and bad inputs."""

import json
import os

import numpy as np
import pytest

from conftest import TRAINED_STEPS_PER_EPOCH, assert_export_scores_as_checkpoint, run_cli
from dcgan_dist.data import splits
from dcgan_dist.evaluation import metrics
from dcgan_dist.inference import sampling
from dcgan_dist.forensics import training

CONTROL_IMAGES = 2000  # per class: AUC's spread at chance is ~0.01
POSITIVE_IMAGES = 1000  # per class, for the positive control (measured AUC 1.0)


def _forensics(*args):
    return run_cli("dcgan_dist.forensics", *args)


def _train(tfds_dir, out_dir, *args):
    result = _forensics("train", f"--tfds_data_dir={tfds_dir}", "--dataset=fashion_mnist",
                        "--epochs=2", "--batch_size=128", f"--out_dir={out_dir}", *args)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def _evaluate(tfds_dir, output, *args):
    result = _forensics("evaluate", f"--tfds_data_dir={tfds_dir}", "--dataset=fashion_mnist",
                        f"--output={output}", *args)
    assert result.returncode == 0, result.stderr[-3000:]
    with open(output) as f:
        return result.stdout, json.load(f)


def _as_if_generated(images, seed):
    """uint8 images as a generator would emit them (float in [-1, 1], within half a grey
    level of each pixel) and then quantized by the pool's own path (`sampling`)."""
    jitter = np.random.default_rng(seed).uniform(-0.45, 0.45, images.shape) / 127.5
    floats = images.astype(np.float32) / 127.5 - 1.0 + jitter.astype(np.float32)
    return sampling.images_to_uint8(floats).numpy()


# One control per kind of detector: the spectral one (its image spectrum is `spectral`'s)
# with augmentations that change shapes on the way (JPEG, down-and-up scaling), and the
# cosine schedule.
@pytest.mark.slow  # trains two detectors
@pytest.mark.parametrize("control, detector", [
    ("random_labels", ["--detector=cnn"]),
    ("dtype_and_range_only", ["--detector=spectral_residual", "--augment=jpeg,resize",
                              "--lr_schedule=cosine"])])
def test_negative_controls_land_at_chance(control, detector, fashion_builder, tfds_dir,
                                          tmp_path):
    """Fakes that are real images (random labels), or real images that went through a
    generator's float range and back: nothing to detect, so AUC 0.5 +- 0.05."""
    train_real, _ = splits.load_split(fashion_builder, "train")
    test_real, _ = splits.load_split(fashion_builder, "test")
    # The "fakes": real images the real class never shows (the training class draws
    # from the whole split, so take the last ones and the test split's second half).
    train_fakes, test_fakes = train_real[-CONTROL_IMAGES:], test_real[5000:5000 + 2000]
    if control == "dtype_and_range_only":
        train_fakes, test_fakes = _as_if_generated(train_fakes, 1), _as_if_generated(
            test_fakes, 2)
        np.testing.assert_array_equal(test_fakes, test_real[5000:7000])  # quantized back
    np.savez(tmp_path / "train_fakes.npz", images=train_fakes[..., 0])
    np.savez(tmp_path / "test_fakes.npz", images=test_fakes[..., 0])
    _train(tfds_dir, tmp_path / "det", f"--workdirs={tmp_path / 'train_fakes.npz'}",
           f"--samples_per_generator={CONTROL_IMAGES}", *detector)
    _, rows = _evaluate(tfds_dir, tmp_path / "rows.json", f"--detectors={tmp_path / 'det'}",
                        f"--sets=control={tmp_path / 'test_fakes.npz'}", "--num_real=2000",
                        "--perturbations=none")
    assert len(rows) == 1  # no discriminator for a file of images
    assert abs(rows[0]["auc"] - 0.5) <= 0.05, rows[0]


def test_positive_control_the_cnn_spots_its_generator(trained_run, tfds_dir, tmp_path):
    """The random-labels control's detector (cnn) and flags, with fakes to find: the
    shared run's epoch-2 generator, trained on 1000 of its samples and scored on 1000 it
    never drew (seeds from 10**6) against as many real test images. Measured: AUC 1.0
    and TPR@1% 1.0 (every fake below every real image), on validation and held out;
    bounds 0.95 and 0.9. A detector that learned nothing (a constant: AUC 0.5, TPR@1% 0)
    or learned the labels the wrong way round (AUC near 0) misses them."""
    workdir, first = trained_run[0], 2 * TRAINED_STEPS_PER_EPOCH
    _train(tfds_dir, tmp_path / "det", f"--workdirs={workdir}@{first}#raw",
           f"--samples_per_generator={POSITIVE_IMAGES}", "--detector=cnn")
    validation = json.loads((tmp_path / "det" / training.RECORD_FILE).read_text())[
        "validation"]
    assert validation["auc"] >= 0.95 and validation["tpr_at_1pct_fpr"] >= 0.9, validation
    _, rows = _evaluate(tfds_dir, tmp_path / "rows.json", f"--detectors={tmp_path / 'det'}",
                        f"--sets=same={workdir}@{first}#raw",
                        f"--num_real={POSITIVE_IMAGES}", "--perturbations=none",
                        "--nodiscriminator")
    assert len(rows) == 1 and rows[0]["auc"] >= 0.95, rows
    assert rows[0]["tpr_at_1pct_fpr"] >= 0.9, rows


def test_a_detector_spots_a_held_out_checkpoint_and_exports(trained_run, tfds_dir,
                                                            fashion_builder, tmp_path):
    """Trained on the shared run's epoch-2 generator: it flags that generator's unseen
    samples; the epoch-3 generator is scored too (no promise: that is what the protocol
    measures), each set beside its checkpoints' own discriminators."""
    workdir = trained_run[0]
    first, last = 2 * TRAINED_STEPS_PER_EPOCH, 3 * TRAINED_STEPS_PER_EPOCH
    export_dir = tmp_path / "export"
    _train(tfds_dir, tmp_path / "det", f"--workdirs={workdir}@{first}#raw",
           "--samples_per_generator=2000", "--augment=jpeg,blur", f"--export_dir={export_dir}")
    record = json.loads((tmp_path / "det" / training.RECORD_FILE).read_text())
    assert record["generators"] == [os.path.join(workdir, "checkpoints", f"ckpt-{first}")
                                    + "#raw"]
    assert record["validation"]["auc"] > 0.95
    # Calibrated on the validation split: a temperature, the operating point (at most 1%
    # of the validation's real images below it), and the ECE before and after.
    validation = record["validation"]
    assert record["temperature"] > 0 and isinstance(record["threshold_1pct_fpr_logit"],
                                                    float), record
    assert validation["fpr_at_operating_point"] <= 0.01, validation
    assert validation["ece"] <= validation["ece_uncalibrated"] + 1e-9, validation
    assert os.listdir(tmp_path / "det" / "tensorboard")
    stdout, rows = _evaluate(tfds_dir, tmp_path / "rows.json",
                             f"--detectors={tmp_path / 'det'}", "--num_real=1000",
                             f"--sets=same={workdir}@{first}#raw,later={workdir}@{last}",
                             "--perturbations=none,jpeg75")
    scorers = {(row["set"], row["perturbation"], row["scorer"]): row for row in rows}
    assert set(scorers) == {(n, p, s) for n in ("same", "later") for p in ("none", "jpeg75")
                            for s in (str(tmp_path / "det"), "discriminator")}
    assert scorers[("same", "none", str(tmp_path / "det"))]["auc"] > 0.9
    assert scorers[("same", "jpeg75", str(tmp_path / "det"))]["auc"] > 0.9  # augmented
    assert all(0 <= row["auc"] <= 1 and 0 <= row["tpr_at_1pct_fpr"] <= 1 for row in rows)
    trained = [row for row in rows if row["scorer"] != "discriminator"]
    assert all(0 <= row[key] <= 1 for row in trained for key in (
        "ece", "fpr_at_operating_point", "tpr_at_operating_point")), trained
    assert "| later | none |" in stdout

    # The export, in a fresh process through `detect`, gives the checkpoint's scores.
    model, _ = training.load(str(tmp_path / "det"))
    images, _ = splits.load_split(fashion_builder, "test[:5]")
    assert assert_export_scores_as_checkpoint(model, images, export_dir,
                                              tmp_path) == record["temperature"]


def test_detection_metrics_values():
    real, fake = np.array([3.0, 2.0, 1.0, 0.5]), np.array([-1.0, 0.0, 0.7, -2.0])
    values = metrics.detection_metrics(real, fake, threshold=0.6)
    assert values["auc"] == pytest.approx(15 / 16)  # one fake (0.7) above one real (0.5)
    assert values["accuracy"] == pytest.approx(6 / 8)  # 0.5 real and 0.7 fake misplaced
    # Flagged = fakes (negated logits); ranking -2,-1,0 first, then 0.5's real, then 0.7.
    assert values["ap"] == pytest.approx((1 + 1 + 1 + 4 / 5) / 4)
    # Two thresholds classify 7 of 8 (between 0 and 0.5, or 0.7 and 1): the first wins.
    assert metrics.best_threshold(real, fake) == pytest.approx((0.0 + 0.5) / 2)
    assert metrics.detection_metrics(real, fake, 0.25)["accuracy"] == pytest.approx(7 / 8)


def _bad(tmp_path, trained_run):
    empty = tmp_path / "no_checkpoints"
    empty.mkdir()
    np.savez(tmp_path / "big.npz", images=np.zeros([4, 32, 32], np.uint8))
    out = f"--out_dir={tmp_path / 'det'}"
    return [
        (["train", "--workdirs=", out], 2, "--workdirs names no generator"),
        (["train", f"--workdirs={trained_run[0]}@999999", out], 3, "no checkpoint of step"),
        (["train", f"--workdirs={empty}", out], 3, "holds no checkpoint"),
        (["train", f"--workdirs={tmp_path / 'big.npz'}", out], 3, "images of shape"),
        (["train", f"--workdirs={tmp_path / 'missing'}", out], 2, "is not a folder"),
        (["train", f"--workdirs={trained_run[0]}", "--augment=fog", out], 2,
         "--augment=fog is unknown"),
        (["train", f"--workdirs={trained_run[0]}", "--epochs=0", out], 2,
         "--epochs=0 must be at least 1"),
        (["train", f"--workdirs={trained_run[0]}", "--augment_probability=1.5", out], 2,
         "--augment_probability=1.5 must be in [0, 1]"),
        (["evaluate", "--perturbations=fog", f"--sets=x={trained_run[0]}"], 2,
         "--perturbations=fog is unknown"),
        (["evaluate", "--sets=", "--detectors="], 2, "--sets names no held-out set"),
        (["evaluate", f"--sets=x={tmp_path / 'big.npz'}"], 3, "images of shape"),
        (["fly"], 2, "name one command"),
    ]


def test_bad_inputs_exit_non_zero_with_one_sentence(trained_run, tmp_path):
    for args, status, message in _bad(tmp_path, trained_run):
        result = _forensics(*args)
        assert result.returncode == status, (args, result.stderr[-2000:])
        reasons = [line for line in result.stderr.splitlines() if line.startswith("error:")]
        assert len(reasons) == 1 and message in reasons[0], (args, result.stderr[-2000:])
        assert "Traceback" not in result.stderr
        assert not (tmp_path / "det").exists()


def test_validation_by_generators_holds_out_whole_generators(fashion_builder, tmp_path):
    """--validation=generators: every validation fake comes from generators the detector
    never trains on, the rest train, and each part is balanced against real images. Each
    .npz generator here draws one grey level of its own (odd; real images are mostly
    not), so a fake's value names its generator."""
    from dcgan_dist.forensics import pool
    from dcgan_dist.forensics.config import DetectorConfig
    entries = []
    for i in range(10):
        path = tmp_path / f"g{i}.npz"
        np.savez(path, images=np.full([50, 28, 28], 2 * i + 101, np.uint8))
        entries.append(str(path))
    generators = pool.parse(entries)
    config = DetectorConfig(validation="generators", per_generator=50, seed=3)
    held = training.validation_generators(generators, config.val_fraction, config.seed)
    assert len(held) == 1 and training.validation_generators(generators, 0.99, 0) != set(
        range(10))  # never all: something must train
    images, labels, count = training.images_and_validation(generators, fashion_builder,
                                                           config)
    level = {2 * i + 101: i for i in range(10)}
    val_fakes = {level[int(x[0, 0, 0])] for x in images[:count][labels[:count] == 0]}
    train_fakes = {level[int(x[0, 0, 0])] for x in images[count:][labels[count:] == 0]}
    assert val_fakes == held and not (train_fakes & held) and len(train_fakes) == 9
    assert labels[:count].mean() == 0.5 and labels[count:].mean() == 0.5 and count == 100
    # The old split takes the validation images from every generator.
    images, labels, count = training.images_and_validation(
        generators, fashion_builder, DetectorConfig(per_generator=50, seed=3,
                                                    validation="samples"))
    assert len({int(x[0, 0, 0]) for x in images[:count][labels[:count] == 0]}) > 5
