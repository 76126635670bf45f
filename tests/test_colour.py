"""Colour at 32x32x3 and 64x64x3 on real images (Debian's oxygen icons), through every
command: train (conftest's colour_runs), evaluate, generate, export and detect, small."""

import json
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from conftest import COLOUR_AUGMENTATION, run_cli
from dcgan_dist import models
from dcgan_dist.data import sources, splits
from dcgan_dist.evaluation import evaluator, metrics


@pytest.mark.parametrize("size", [32, 64])
def test_every_command_takes_the_colour_run(colour_runs, size, tfds_dir, tmp_path):
    workdir, folder = colour_runs(size)
    recorded = json.loads(open(os.path.join(workdir, "config.json")).read())
    assert (recorded["image_size"], recorded["channels"]) == (size, 3)
    # The grid of training is colour.
    grid = np.asarray(Image.open(os.path.join(workdir, "image_at_epoch_0004.png")))
    assert grid.ndim == 3 and grid.shape[-1] == 3

    npz, png = str(tmp_path / "samples.npz"), str(tmp_path / "samples.png")
    result = run_cli("dcgan_dist.generate", f"--workdir={workdir}", "--num_samples=4",
                     f"--npz={npz}", f"--grid={png}")
    assert result.returncode == 0, result.stderr[-3000:]
    samples = np.load(npz)["images"]
    assert samples.shape == (4, size, size, 3) and samples.dtype == np.uint8
    assert np.asarray(Image.open(png)).shape[-1] == 3

    export_dir = str(tmp_path / "export")
    result = run_cli("dcgan_dist.export", f"--workdir={workdir}",
                     f"--export_dir={export_dir}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.load(open(os.path.join(export_dir, "export.json")))["image_shape"] == [
        size, size, 3]
    generator = tf.saved_model.load(os.path.join(export_dir, "generator"))
    exported = generator.signatures["from_seeds"](seeds=tf.constant([0, 1, 2, 3],
                                                                    tf.int64))["images"]
    np.testing.assert_array_equal(exported.numpy(), samples)  # the same seeds, images
    detector = tf.saved_model.load(os.path.join(export_dir, "detector"))
    spec = detector.signatures["serving_default"].structured_input_signature[1]["images"]
    assert spec.shape.as_list() == [None, size, size, 3] and spec.dtype == tf.uint8

    # detect: one sample as a PNG file, and the .npz, by the checkpoint and the export.
    one = str(tmp_path / "one.png")
    Image.fromarray(samples[0]).save(one)
    by_checkpoint = run_cli("dcgan_dist.detect", f"--workdir={workdir}", one, npz)
    by_export = run_cli("dcgan_dist.detect",
                        f"--detector={os.path.join(export_dir, 'detector')}", one, npz)
    for result in (by_checkpoint, by_export):
        assert result.returncode == 0, result.stderr[-3000:]
    scores = [[float(line.split("\t")[1]) for line in result.stdout.splitlines()]
              for result in (by_checkpoint, by_export)]
    assert len(scores[0]) == 5 and scores[0][0] == scores[0][1]  # the PNG is sample 0
    np.testing.assert_allclose(scores[0], scores[1], atol=1e-5)
    if size == 32:  # (one size is enough for the refusal)
        # A grey 28x28 image is not this run's size: refused, naming the file.
        small = str(tmp_path / "small.png")
        Image.fromarray(np.zeros((28, 28), np.uint8)).save(small)
        refused = run_cli("dcgan_dist.detect", f"--workdir={workdir}", small)
        assert refused.returncode == 3 and "small.png is 28x28 pixels" in refused.stderr

    result = run_cli("dcgan_dist.evaluate", f"--workdir={workdir}", "--num_samples=40",
                     f"--tfds_data_dir={tfds_dir}")
    assert result.returncode == 0, result.stderr[-3000:]
    line = json.loads(open(os.path.join(workdir, "metrics.jsonl")).readlines()[-1])
    assert line["features"] == "classifier" and len(line["class_share"]) == 2
    # The metrics' classifier tells the 2 classes of the 20 real test icons apart:
    # measured 0.9 (18 of 20) at both sizes; bound 0.8. One trained on shuffled labels,
    # or not at all, is at chance (0.5), and reaches 16 of 20 by luck 0.6% of the time.
    assert line["classifier_accuracy"] >= 0.8, line["classifier_accuracy"]
    # FID in those features: the 8-step generator's 40 samples against the 20 test icons
    # measured 378 (32x32) and 1219 (64x64); the 40 real training icons against the same
    # test icons 18 and 49, 21x and 25x lower. Bound: 5x. Features that see nothing
    # (FID 0 for both), or samples that are not the generator's (real ones score as
    # real ones do), miss it.
    scorer = evaluator.Evaluator("mnist", folder, tfds_dir, num_samples=40,
                                 image_shape=(size, size, 3), compare_earlier=False)
    real_fid = _real_against_real_fid(scorer, folder, tfds_dir, (size, size, 3))
    assert np.isfinite(line["fid"]) and line["fid"] > 5 * real_fid, (line["fid"],
                                                                     real_fid)


def _real_against_real_fid(scorer, folder, tfds_dir, shape):
    """FID of `folder`'s training images against the test images an `evaluator.Evaluator`
    of it scores generators against, in its features: what real images score."""
    builder = sources.load("mnist", folder, tfds_dir, shape[0], shape[2]).builder
    train_images, _ = splits.load_split(builder, "train", shape)
    return metrics.frechet_distance(scorer.classifier.embed(train_images),
                                    scorer.real)["fid"]


def test_unlabelled_images_get_the_label_free_metrics(tmp_path, tfds_dir):
    """A folder without class subfolders: FID, KID and precision/recall in the untrained
    classifier's features, and no classifier score or class coverage."""
    rng = np.random.default_rng(0)
    for split, count in (("train", 40), ("test", 20)):
        (tmp_path / "flat" / split).mkdir(parents=True)
        for i in range(count):
            Image.fromarray(rng.integers(0, 256, (32, 32, 3), np.uint8)).save(
                tmp_path / "flat" / split / f"{i}.png")
    scorer = evaluator.Evaluator("flat", str(tmp_path / "flat"), tfds_dir,
                                 num_samples=20, image_shape=(32, 32, 3),
                                 compare_earlier=False)
    assert "skipped" in scorer.note
    results = scorer(models.make_generator_model(image_shape=(32, 32, 3)),
                     models.make_discriminator_model(image_shape=(32, 32, 3)), step=0)
    assert {"fid", "kid", "precision", "recall", "detector_auc"} <= set(results)
    assert not {"classifier_score", "class_share"} & set(results)
    # The untrained generator against the 20 test images: FID measured 11.0; the 40
    # training images (the same kind of noise) against them 1.2, 9x lower. Bound: 3x.
    real_fid = _real_against_real_fid(scorer, str(tmp_path / "flat"), tfds_dir,
                                      (32, 32, 3))
    assert results["fid"] > 3 * real_fid, (results["fid"], real_fid)


def test_a_resumed_run_keeps_its_image_shape(colour_runs, tfds_dir, tmp_path):
    """Resumed without --image_size and --channels, a 32x32x3 run trains on at 32x32x3
    (the folder's own 64x64 would not fit its checkpoint); asked for another shape, it
    refuses."""
    workdir, folder = colour_runs(32)
    copy = tmp_path / "workdir"
    shutil.copytree(workdir, copy)
    common = [f"--data_dir={folder}", "--strategy=default", "--batch_size=16",
              f"--diffaugment={COLOUR_AUGMENTATION}",
              f"--tfds_data_dir={tfds_dir}", f"--workdir={copy}"]
    result = run_cli("dcgan_dist.train", *common, "--max_steps=9")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "images of 32x32x3" in result.stdout and "at step 8" in result.stdout
    assert "train | done | step: 9" in result.stdout
    refused = run_cli("dcgan_dist.train", *common, "--max_steps=10", "--image_size=64")
    assert refused.returncode == 2 and "--image_size=32 (this run: 64)" in refused.stderr
