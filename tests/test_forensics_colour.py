"""dcgan_dist.forensics at image shapes beyond the article's 28x28x1: colour runs of
32x32x3 and 64x64x3 (a folder of Oxygen icons) through train, export, detect and
evaluate in real processes, each detector held to spotting the generator it trained
against, runs of different shapes refused, and the detectors and augmentations at
28x28x1, 32x32x3 and 64x64x3 in process."""

import json

import numpy as np
import pytest
import tensorflow as tf

from conftest import COLOUR_STEPS, assert_export_scores_as_checkpoint, run_cli
from dcgan_dist.data import sources, splits
from dcgan_dist.forensics import detectors, perturbations, training
from dcgan_dist.forensics.config import (ARCHITECTURES, AUGMENTATIONS,
                                         DEFAULT_PERTURBATIONS, PERTURBATIONS)

COLOUR_SIZE = 32


def _forensics(*args):
    return run_cli("dcgan_dist.forensics", *args)


# In colour: npr (the best on unseen families, docs/forensics.md) at 32x32x3, the
# default (the residual spectrum) at 64x64x3.
@pytest.mark.parametrize("size, detector", [(32, "npr"), (64, "spectral_residual")])
def test_a_colour_run_trains_exports_and_evaluates(colour_runs, size, detector, tfds_dir,
                                                   tmp_path):
    """Train on the step-4 generator with every augmentation; the detector, its export
    (through `detect`, in a fresh process) and the protocol all take the run's images. The
    real images are the run's own folder, found from its config.json (no --data_dir)."""
    workdir, folder = colour_runs(size)
    first, last = COLOUR_STEPS
    det, export_dir = tmp_path / "det", tmp_path / "export" / "detector"
    result = _forensics("train", f"--workdirs={workdir}@{first}#raw", f"--out_dir={det}",
                        f"--tfds_data_dir={tfds_dir}", "--samples_per_generator=40",
                        "--epochs=2", "--batch_size=32", "--strategy=default",
                        f"--detector={detector}", f"--export_dir={export_dir}")
    assert result.returncode == 0, result.stderr[-3000:]
    record = json.loads((det / training.RECORD_FILE).read_text())
    assert record["architecture"] == detector
    assert record["image_shape"] == [size, size, 3]
    assert record["augment"] == list(AUGMENTATIONS)  # the default: every one
    assert record["images"] == 2 * 40  # the 40 real training icons, 40 fakes
    # Where dcgan_dist.detect looks: export.json in the exported folder.
    exported = json.loads((export_dir / "export.json").read_text())
    assert exported["image_shape"] == [size, size, 3]

    # The export scores as the checkpointed detector does, at the run's shape.
    model, _ = training.load(str(det))
    data = sources.load("mnist", folder, tfds_dir, size, 3)
    images, _ = splits.load_split(data.builder, "test[:5]", data.image_shape)
    assert images.shape == (5, size, size, 3)
    assert_export_scores_as_checkpoint(model, images, export_dir, tmp_path)

    output = tmp_path / "rows.json"
    result = _forensics("evaluate", f"--detectors={det}", f"--tfds_data_dir={tfds_dir}",
                        f"--sets=same={workdir}@{first}#raw,later={workdir}@{last}",
                        "--num_real=20", f"--output={output}")
    assert result.returncode == 0, result.stderr[-3000:]
    rows = json.loads(output.read_text())
    perturbations = DEFAULT_PERTURBATIONS
    assert {(r["set"], r["perturbation"], r["scorer"]) for r in rows} == {
        (s, p, c) for s in ("same", "later") for p in perturbations
        for c in (str(det), "discriminator")}
    assert all(0 <= row["auc"] <= 1 for row in rows)
    # The positive control: the step-4 generator's unseen samples (seeds from 10**6)
    # against the 20 real test icons, clean and under each perturbation (the detector
    # trained with every augmentation). Measured AUC 1.0 in every row, both detectors and
    # sizes (the step-8 generator's too, no promise); bound 0.9. A constant detector
    # scores 0.5, one with its labels flipped near 0, and one that learned nothing ranks
    # 20 against 20 at 0.5 +- 0.09: 0.9 is 4 standard deviations above.
    same = {r["perturbation"]: r["auc"] for r in rows
            if r["set"] == "same" and r["scorer"] == str(det)}
    assert len(same) == len(perturbations) and min(same.values()) >= 0.9, same
    assert "| later | chain |" in result.stdout


def test_shapes_that_differ_are_refused(colour_runs, tfds_dir, tmp_path):
    """A pool mixing a colour run with a grey one, a grey .npz in a colour pool, and a
    colour detector on grey sets: exit 3 with one sentence, before any training."""
    workdir, _ = colour_runs(COLOUR_SIZE)
    grey = tmp_path / "grey_run"  # what pool.image_shape reads: config.json, a checkpoint
    (grey / "checkpoints").mkdir(parents=True)
    (grey / "config.json").write_text(json.dumps({"image_size": 28, "channels": 1}))
    (grey / "checkpoints" / "ckpt-1.index").write_bytes(b"")
    np.savez(tmp_path / "grey.npz", images=np.zeros([4, 28, 28], np.uint8))
    colour_det = tmp_path / "colour_det"
    colour_det.mkdir()
    (colour_det / training.RECORD_FILE).write_text(json.dumps(
        {"architecture": "cnn", "seed": 0, "image_shape": [COLOUR_SIZE, COLOUR_SIZE, 3]}))
    out = f"--out_dir={tmp_path / 'det'}"
    cases = [
        (["train", f"--workdirs={workdir},{grey}", out], "makes 32x32x3 images but"),
        (["train", f"--workdirs={workdir}@4,{tmp_path / 'grey.npz'}", out],
         "images of shape (4, 28, 28)"),
        (["evaluate", f"--detectors={colour_det}", f"--sets=grey={grey}"],
         "makes 28x28x1 images but"),
    ]
    for args, message in cases:
        result = _forensics(*args, f"--tfds_data_dir={tfds_dir}")
        assert result.returncode == 3, (args, result.stderr[-2000:])
        reasons = [line for line in result.stderr.splitlines() if line.startswith("error:")]
        assert len(reasons) == 1 and message in reasons[0], (args, result.stderr[-2000:])
        assert not (tmp_path / "det").exists()


@pytest.mark.parametrize("shape", [(28, 28, 1), (32, 32, 3), (64, 64, 3)])
def test_detectors_and_augmentations_take_any_shape(shape):
    images = np.random.default_rng(0).integers(0, 256, [3, *shape]).astype(np.uint8)
    scaled = images.astype(np.float32) / 127.5 - 1.0
    for architecture in ARCHITECTURES:
        logits = detectors.make_detector(architecture, 0, shape)(scaled, training=False)
        assert logits.shape == (3, 1)
    # One spectrum per channel, side by side (each channel's the grey image's).
    spectra = detectors._log_spectrum(tf.constant(scaled)).numpy()
    per_channel = [detectors._log_spectrum(tf.constant(scaled[..., c:c + 1])).numpy()
                   for c in range(shape[-1])]
    np.testing.assert_array_equal(spectra, np.concatenate(per_channel, axis=1))
    for name in PERTURBATIONS:
        out = perturbations.named(tf.constant(images[0]), name)
        assert out.shape == shape and out.dtype == tf.uint8, name
    augmented = tf.data.Dataset.from_tensor_slices(images).map(
        lambda x: perturbations.augment(x, AUGMENTATIONS, probability=1.0))
    assert all(x.shape == shape for x in augmented.as_numpy_iterator())
    # The resize range is 28 px's (14..26) scaled with the image.
    low, high = perturbations._range("resize", shape[0])
    assert (low, high) == {28: (14, 27), 32: (16, 31), 64: (32, 62)}[shape[0]]
