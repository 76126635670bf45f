"""evaluate, generate, export and detect, in real processes, on the shared trained run
(conftest's `trained_run`: checkpoints at steps 128 and 192) and real Fashion-MNIST."""

import json
import os
import shutil
import subprocess
import sys
import textwrap

import imageio.v3 as iio
import numpy as np
import pytest

from conftest import TRAINED_STEPS_PER_EPOCH, common_flags, mirrored, run_cli
from dcgan_dist import images
from dcgan_dist.data import splits
from dcgan_dist.evaluation import evaluator
from dcgan_dist.inference import detection, sampling, savedmodel, runs
from dcgan_dist import workdir as layout

pytestmark = pytest.mark.slow  # trains (the quick tier: -m "not slow")

N = 1000  # samples per evaluation: the real runs use 10,000
LAST_STEP = 3 * TRAINED_STEPS_PER_EPOCH
EARLIER_STEP = 2 * TRAINED_STEPS_PER_EPOCH


@pytest.fixture(scope="module")
def workdir(trained_run, tmp_path_factory):
    """A copy of the shared run: evaluate writes metrics.jsonl and eval/ into it."""
    copy = str(tmp_path_factory.mktemp("evaluate") / "workdir")
    shutil.copytree(trained_run[0], copy)
    return copy


@pytest.fixture(scope="module")
def evaluated(workdir, tfds_dir, fashion_builder):
    result = run_cli("dcgan_dist.evaluate", f"--workdir={workdir}",
                     f"--tfds_data_dir={tfds_dir}", f"--num_samples={N}")
    assert result.returncode == 0, result.stderr[-3000:]
    with open(os.path.join(workdir, layout.METRICS_FILE)) as f:
        lines = [json.loads(line) for line in f]
    assert len(lines) == 1
    return result.stdout, lines[0]


@pytest.fixture(scope="module")
def exported(workdir, tmp_path_factory):
    export_dir = str(tmp_path_factory.mktemp("export") / "export")
    result = run_cli("dcgan_dist.export", f"--workdir={workdir}",
                     f"--export_dir={export_dir}")
    assert result.returncode == 0, result.stderr[-3000:]
    return export_dir


def read_events(folder):
    import tensorflow as tf
    values = {}
    for name in sorted(os.listdir(folder)):
        for event in tf.compat.v1.train.summary_iterator(os.path.join(folder, name)):
            for value in event.summary.value:
                values[value.tag] = (event.step, float(tf.make_ndarray(value.tensor)))
    return values


def test_evaluate_prints_and_records_every_metric(evaluated, workdir):
    stdout, line = evaluated
    assert f"evaluate | step: {LAST_STEP}" in stdout and "| fid: " in stdout
    assert line["step"] == LAST_STEP and line["num_samples"] == N
    assert line["checkpoint"].endswith(f"ckpt-{LAST_STEP}")
    assert line["classifier_accuracy"] >= 0.90
    for key in ("fid", "kid", "kid_std", "classifier_score", "precision", "recall",
                "max_class_share", "detector_auc"):
        assert np.isfinite(line[key]), key
    assert 1.0 <= line["classifier_score"] <= 10.0 and 0.0 <= line["detector_auc"] <= 1.0
    assert len(line["class_share"]) == 10
    # The discriminator is also scored against the earlier checkpoint's samples.
    assert list(line["detector_auc_earlier"]) == [str(EARLIER_STEP)]

    events = read_events(os.path.join(workdir, layout.EVAL_SUMMARIES))
    assert events["fid"] == (LAST_STEP, pytest.approx(line["fid"], rel=1e-6))
    assert events[f"detector_auc_earlier/{EARLIER_STEP}"][1] == pytest.approx(
        line["detector_auc_earlier"][str(EARLIER_STEP)], rel=1e-6)
    assert events["class_share/0"][1] == pytest.approx(line["class_share"][0], rel=1e-6)


def test_evaluator_hook_matches_the_cli_and_works_under_a_strategy(evaluated, workdir,
                                                                    tfds_dir, tmp_path):
    """What training calls every --eval_every_epochs, on networks mirrored over two
    replicas as in a 2-replica run: the same numbers as the command line, recorded the same
    way."""
    _, cli_line = evaluated
    run = str(tmp_path / "run")
    shutil.copytree(os.path.join(workdir, layout.CHECKPOINT_FOLDER),
                    os.path.join(run, layout.CHECKPOINT_FOLDER))
    shutil.copy(os.path.join(workdir, layout.CONFIG_FILE), run)  # the run's record
    scorer = evaluator.Evaluator("fashion_mnist", tfds_data_dir=tfds_dir, workdir=run,
                                   num_samples=N)
    with mirrored(2).scope():
        generator, discriminator = runs.make_networks()
    path = layout.resolve_checkpoint(run)
    step = runs.restore(path, generator, discriminator)
    results = scorer(generator, discriminator, step, checkpoint=path)
    scorer.close()
    for key in ("fid", "kid", "classifier_score", "precision", "recall", "detector_auc"):
        assert results[key] == pytest.approx(cli_line[key], rel=1e-4, abs=1e-6), key
    assert results["detector_auc_earlier"] == pytest.approx(cli_line["detector_auc_earlier"],
                                                            abs=1e-6)
    with open(os.path.join(run, layout.METRICS_FILE)) as f:
        (line,) = [json.loads(line) for line in f]
    assert line["step"] == LAST_STEP and line["fid"] == results["fid"]
    assert "fid" in read_events(os.path.join(run, layout.EVAL_SUMMARIES))


def test_generate_reproduces_seeds_and_interpolates(workdir, tmp_path):
    out = {name: str(tmp_path / name) for name in ("s.npz", "grid.png", "strip.png")}
    result = run_cli("dcgan_dist.generate", f"--workdir={workdir}",
                     f"--checkpoint={EARLIER_STEP}", "--num_samples=6", "--seed=5",
                     f"--npz={out['s.npz']}", f"--grid={out['grid.png']}", "--columns=3",
                     "--interpolate=5,6", "--steps=4", f"--strip={out['strip.png']}")
    assert result.returncode == 0, result.stderr[-3000:]
    saved = np.load(out["s.npz"])
    assert saved["images"].dtype == np.uint8 and saved["images"].shape == (6, 28, 28)
    assert list(saved["seeds"]) == [5, 6, 7, 8, 9, 10] and int(saved["step"]) == EARLIER_STEP

    # The same seeds give the same images here, in another process, and whatever else
    # is drawn alongside them.
    generator, _ = runs.make_networks()
    runs.restore(layout.resolve_checkpoint(workdir, str(EARLIER_STEP)), generator)
    noise = sampling.noise_for_seeds(np.arange(11))[5:]
    expected = sampling.generate_images(generator, noise)
    np.testing.assert_array_equal(saved["images"], expected[..., 0])
    assert expected.std() > 5  # not a blank picture
    np.testing.assert_array_equal(iio.imread(out["grid.png"]),
                                  images.grid(expected / 127.5 - 1.0, columns=3))

    path = sampling.slerp_noise(5, 6, 4)
    np.testing.assert_allclose(path[[0, -1]], noise[:2], atol=1e-5)  # ends at the seeds
    strip = sampling.generate_images(generator, path)
    np.testing.assert_array_equal(iio.imread(out["strip.png"]),
                                  images.grid(strip / 127.5 - 1.0, columns=4))


_RELOAD = textwrap.dedent("""
    import sys
    import numpy as np
    import tensorflow as tf
    inputs = np.load(sys.argv[2])
    generator = tf.saved_model.load(sys.argv[1])
    images = generator.signatures["serving_default"](noise=tf.constant(inputs["noise"]))
    by_seed = generator.signatures["from_seeds"](seeds=tf.constant(inputs["seeds"]))
    np.savez(sys.argv[3], images=images["images"].numpy(),
             seed_images=by_seed["images"].numpy(), seed_noise=by_seed["noise"].numpy())
""")


def test_exported_models_reload_in_a_fresh_process_and_match_the_checkpoint(
        exported, workdir, fashion_builder, tmp_path):
    generator, discriminator, step = runs.load_networks(layout.resolve_checkpoint(workdir))
    with open(os.path.join(exported, "export.json")) as f:
        assert json.load(f)["step"] == step == LAST_STEP

    seeds = np.arange(100, 108)
    noise = np.random.default_rng(1).standard_normal([8, 100]).astype(np.float32)
    np.savez(tmp_path / "inputs.npz", noise=noise, seeds=seeds)
    script = tmp_path / "reload.py"
    script.write_text(_RELOAD)
    done = subprocess.run(
        [sys.executable, str(script), os.path.join(exported, savedmodel.GENERATOR_FOLDER),
         str(tmp_path / "inputs.npz"), str(tmp_path / "outputs.npz")],
        capture_output=True, text=True, timeout=300,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"), cwd=str(tmp_path))
    assert done.returncode == 0, done.stderr[-3000:]
    outputs = np.load(tmp_path / "outputs.npz")
    np.testing.assert_array_equal(outputs["images"],
                                  sampling.generate_images(generator, noise))
    np.testing.assert_array_equal(outputs["seed_noise"], sampling.noise_for_seeds(seeds))
    np.testing.assert_array_equal(outputs["seed_images"],
                                  sampling.generate_images(generator,
                                                           sampling.noise_for_seeds(seeds)))

    # The detector, in another fresh process: the command line with --detector.
    real, _ = splits.load_split(fashion_builder, "test[:4]")
    fake = sampling.generate_images(generator, noise[:3])
    np.savez(tmp_path / "mixed.npz", images=np.concatenate([real, fake])[..., 0])
    result = run_cli("dcgan_dist.detect", f"--detector={exported}/detector",
                     str(tmp_path / "mixed.npz"))
    assert result.returncode == 0, result.stderr[-3000:]
    printed = [float(line.split("\t")[1]) for line in result.stdout.splitlines()]
    expected = detection.probability_real(
        detection.score_images(discriminator, np.concatenate([real, fake])))
    np.testing.assert_allclose(printed, expected, atol=2e-6)


def test_detect_scores_pngs_and_npz_with_a_checkpoint(workdir, fashion_builder, tmp_path):
    real, _ = splits.load_split(fashion_builder, "test[:2]")
    paths = []
    for i, image in enumerate(real):
        paths.append(str(tmp_path / f"real{i}.png"))
        iio.imwrite(paths[-1], image[..., 0])
    np.savez(tmp_path / "real.npz", images=real)  # [N, 28, 28, 1] works too
    result = run_cli("dcgan_dist.detect", f"--workdir={workdir}",
                     f"--checkpoint={EARLIER_STEP}", *paths, str(tmp_path / "real.npz"))
    assert result.returncode == 0, result.stderr[-3000:]
    lines = [line.split("\t") for line in result.stdout.splitlines()]
    assert [name for name, _ in lines] == paths + [f"{tmp_path / 'real.npz'}[{i}]"
                                                   for i in range(2)]
    _, discriminator = runs.make_networks()
    runs.restore(layout.resolve_checkpoint(workdir, str(EARLIER_STEP)),
                    discriminator=discriminator)
    expected = detection.probability_real(detection.score_images(discriminator, real))
    np.testing.assert_allclose([float(p) for _, p in lines], np.tile(expected, 2),
                               atol=2e-6)


def _bad_inputs(workdir, tmp):
    """(module, arguments, exit status, words of the message) of unusable inputs."""
    os.makedirs(tmp / "empty_run")
    iio.imwrite(tmp / "big.png", np.zeros([56, 56], np.uint8))
    (tmp / "text.png").write_text("not a picture")
    (tmp / "empty.png").write_bytes(b"")
    np.savez(tmp / "float.npz", images=np.zeros([2, 28, 28], np.float32))
    detect = ["dcgan_dist.detect", f"--workdir={workdir}"]
    return [
        (["dcgan_dist.evaluate", f"--workdir={tmp / 'missing'}"], 2, "is not a folder"),
        (["dcgan_dist.generate", f"--workdir={tmp / 'empty_run'}", "--npz=x.npz"], 3,
         "holds no checkpoint"),
        (["dcgan_dist.export", f"--workdir={workdir}", "--checkpoint=7",
          f"--export_dir={tmp / 'e'}"], 3, "is not a checkpoint of"),
        (["dcgan_dist.generate", f"--workdir={workdir}"], 2, "nothing to write"),
        (["dcgan_dist.generate", f"--workdir={workdir}", "--grid=x.xyz"], 2,
         "must name a .png file"),
        ([*detect, str(tmp / "big.png")], 3, "is 56x56 pixels"),
        ([*detect, str(tmp / "text.png")], 3, "is not an image"),
        ([*detect, str(tmp / "empty.png")], 3, "is empty"),
        ([*detect, str(tmp / "float.npz")], 3, "float32 images"),
        ([*detect, str(tmp / "missing.png")], 3, "does not exist"),
        ([*detect], 3, "no images given"),
    ]


def test_bad_inputs_exit_non_zero_with_one_sentence(workdir, tmp_path):
    for args, status, words in _bad_inputs(workdir, tmp_path):
        result = run_cli(*args)
        assert result.returncode == status, (args, result.stderr[-2000:])
        message = result.stderr.strip().splitlines()
        assert len(message) == 1 and message[0].startswith("error: "), (args, message)
        assert words in message[0], (args, message)


def test_training_evaluates_every_n_epochs(fashion_builder, tfds_dir, tmp_path):
    """--eval_every_epochs: the metrics of epochs 1 and 2 in stdout, metrics.jsonl and
    TensorBoard, with the discriminator also scored against epoch 1's generator."""
    workdir = tmp_path / "w"
    result = run_cli("dcgan_dist.train", *common_flags(tfds_dir, split="train[:640]"),
                     "--epochs=2", "--checkpoint_every_epochs=1", "--eval_every_epochs=1",
                     "--eval_samples=100", f"--workdir={workdir}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert [line.split(" | ")[1] for line in result.stdout.splitlines()
            if line.startswith("eval |")] == ["epoch: 1", "epoch: 2"]
    with open(workdir / layout.METRICS_FILE) as f:
        lines = [json.loads(line) for line in f]
    assert [line["step"] for line in lines] == [10, 20]
    assert lines[1]["checkpoint"].endswith("ckpt-20")
    assert all(np.isfinite(line["fid"]) and line["fid"] > 0 for line in lines)
    assert list(lines[1]["detector_auc_earlier"]) == ["10"]
    events = read_events(str(workdir / layout.EVAL_SUMMARIES))
    assert events["fid"][0] == 20
    assert events["fid"][1] == pytest.approx(lines[1]["fid"], rel=1e-6)  # float32
