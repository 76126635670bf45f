"""What `detect` and `forensics train` are handed, and refuse in one sentence: malformed
.npz files (in process: image_files raises the DataError that the command prints, exit
3; two of them through the command line), exported detector folders with and without
their shape record, scoring in batches, and a detector's --out_dir that other flags or
another process claim."""

import json
import os
import pickle
import shutil
import zipfile

import numpy as np
import pytest

from conftest import run_cli
from dcgan_dist import files
from dcgan_dist.data import image_files
from dcgan_dist.errors import BusyError, ConfigError, DataError
from dcgan_dist.forensics import config as forensics_config

SHAPE = (28, 28, 1)
_GREY = np.zeros([2, 28, 28], np.uint8)


def _npy_renamed(path):
    np.save(path.with_suffix(".npy"), _GREY)
    os.replace(path.with_suffix(".npy"), path)


def _zip(*members):
    """An archive of (name, bytes) members, as numpy.savez's zip is made."""
    def make(path):
        with zipfile.ZipFile(path, "w") as archive:
            for name, data in members:
                archive.writestr(name, data)
    return make


def _savez(**arrays):
    return lambda path: np.savez(path, **arrays)


def _damaged_deflate(path):
    pixels = np.random.default_rng(0).integers(0, 256, [50, 28, 28], np.uint8)
    np.savez_compressed(path, images=pixels)
    data = bytearray(path.read_bytes())
    data[200:400] = bytes(b ^ 0x55 for b in data[200:400])
    path.write_bytes(bytes(data))


def _truncated(path):
    np.savez(path, images=_GREY)
    path.write_bytes(path.read_bytes()[:-300])


# (name, makes the file, words of the sentence)
NPZ_CASES = [
    (".npy renamed .npz", _npy_renamed, "is a .npy array (numpy.save's), not an .npz"),
    ("only a text member", _zip(("readme.txt", b"hello")),
     "its member 'readme.txt' is not a numpy array"),
    ("an images member that is no array", _zip(("images.npy", b"not an array"),
                                               ("readme.txt", b"hello")),
     "its member 'images' is not a numpy array"),
    ("a damaged array header", _zip(("images.npy", b"\x93NUMPY garbage")),
     "its 'images' member cannot be read (ValueError"),
    ("pickled objects", _savez(images=np.array([np.zeros(3), None], dtype=object)),
     "holds Python objects, which are never loaded"),
    ("a pickle renamed .npz", lambda path: path.write_bytes(pickle.dumps([1, 2])),
     "is not an .npz archive (nor any numpy file)"),
    ("text renamed .npz", lambda path: path.write_text("hello"),
     "is not an .npz archive (nor any numpy file)"),
    ("empty archive", _savez(), "is an .npz archive with nothing in it"),
    ("two arrays, neither 'images'", _savez(a=_GREY, b=_GREY),
     "has no 'images' array (it holds 2: a, b)"),
    ("damaged compressed data", _damaged_deflate, "its 'images' member cannot be read"),
    ("truncated archive", _truncated, "is not a readable .npz file (BadZipFile"),
    ("float pixels", _savez(images=_GREY.astype(np.float32)), "holds float32 images"),
    ("int64 pixels", _savez(images=_GREY.astype(np.int64)), "holds int64 images"),
    ("another size", _savez(images=np.zeros([2, 28, 27], np.uint8)),
     "holds images of shape (2, 28, 27, 1); pass [N, 28, 28] or [N, 28, 28, 1]"),
    ("no images", _savez(images=np.zeros([0, 28, 28], np.uint8)),
     "holds images of shape (0, 28, 28, 1)"),
    ("a scalar", _savez(images=np.uint8(3)), "holds images of shape ()"),
    ("an empty file", lambda path: path.write_bytes(b""), "is empty"),
]


@pytest.mark.parametrize("make, words", [case[1:] for case in NPZ_CASES],
                         ids=[case[0] for case in NPZ_CASES])
def test_a_malformed_npz_is_refused_in_one_sentence(make, words, tmp_path):
    path = tmp_path / "images.npz"
    make(path)
    with pytest.raises(DataError) as refused:
        image_files.read_images([str(path)], SHAPE)
    message = str(refused.value)
    assert words in message and message.startswith(str(path)), message
    assert "\n" not in message and ("numpy.savez" in message or "pass" in message)


def test_a_npy_file_is_refused_in_one_sentence(tmp_path):
    np.save(tmp_path / "images.npy", _GREY)
    with pytest.raises(DataError, match=r"images.npy is a .npy file; pass image files "
                                        r"or .npz archives \(numpy.savez"):
        image_files.read_images([str(tmp_path / "images.npy")], SHAPE)


def _one_line_error(result):
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    return lines[0]


COLOUR = (32, 32, 3)  # not the 28x28x1 that detect used to assume


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """(detector folder, its network): an untrained 32x32x3 discriminator exported as
    dcgan_dist.export exports one, in EXPORT_DIR/detector."""
    from dcgan_dist import models
    from dcgan_dist.inference import savedmodel
    discriminator = models.make_discriminator_model(image_shape=COLOUR)
    folder = tmp_path_factory.mktemp("export") / savedmodel.DETECTOR_FOLDER
    savedmodel.export_detector(discriminator, str(folder), {"step": 0})
    return folder, discriminator


def _colour_images(count):
    return np.random.default_rng(3).integers(0, 256, [count, *COLOUR], np.uint8)


@pytest.mark.parametrize("make, words", [NPZ_CASES[0][1:], NPZ_CASES[1][1:]],
                         ids=[NPZ_CASES[0][0], NPZ_CASES[1][0]])
def test_the_command_exits_3_with_one_line(make, words, exported, tmp_path):
    """The two inputs that gave tracebacks, through the command line (refused before
    TensorFlow is imported: a fraction of a second each)."""
    make(tmp_path / "x.npz")
    result = run_cli("dcgan_dist.detect", f"--detector={exported[0]}",
                     str(tmp_path / "x.npz"))
    assert result.returncode == 3, result.stderr[-3000:]
    assert words in _one_line_error(result)


def test_a_copied_detector_folder_keeps_its_shape(exported, tmp_path):
    from dcgan_dist.inference import detection
    folder, discriminator = exported
    copy = tmp_path / "elsewhere" / "detector"  # nothing beside it
    shutil.copytree(folder, copy)
    images = _colour_images(3)
    np.savez(tmp_path / "colour.npz", images=images)
    result = run_cli("dcgan_dist.detect", f"--detector={copy}", str(tmp_path / "colour.npz"))
    assert result.returncode == 0, result.stderr[-3000:]
    lines = [line.split("\t") for line in result.stdout.splitlines()]
    assert all(len(line) == 2 for line in lines)  # a discriminator: no operating point
    np.testing.assert_allclose([float(line[1]) for line in lines], detection.probability_real(
        detection.score_images(discriminator, images)), atol=2e-6)
    assert json.loads((copy / "export.json").read_text()) == {
        "step": 0, "image_shape": list(COLOUR)}


def test_a_calibrated_export_applies_its_temperature_and_operating_point(exported,
                                                                          tmp_path):
    """An export with T = 2.5 and an operating point between the images' logits: the
    SavedModel's probability_real is sigmoid(logit / 2.5), the logit unchanged, and
    `detect` prints that probability and the call at the threshold (a third column)."""
    import tensorflow as tf

    from dcgan_dist.evaluation import calibration
    from dcgan_dist.inference import detection, savedmodel
    _, discriminator = exported
    images = _colour_images(6)
    logits = detection.score_images(discriminator, images)
    threshold = float(np.median(logits))  # half of them each side
    folder = tmp_path / "calibrated"
    savedmodel.export_detector(discriminator, str(folder), {"detector": "somewhere"},
                               calibration.Calibration(2.5, threshold))
    record = json.loads((folder / "export.json").read_text())
    assert record == {"detector": "somewhere", "temperature": 2.5,
                      "threshold_1pct_fpr_logit": threshold,
                      "threshold_1pct_fpr_probability_real": pytest.approx(
                          float(detection.probability_real(threshold / 2.5))),
                      "image_shape": list(COLOUR)}
    served = tf.saved_model.load(str(folder)).signatures["serving_default"](
        images=tf.constant(images))
    np.testing.assert_allclose(served["logit"].numpy(), logits, atol=1e-5)
    np.testing.assert_allclose(served["probability_real"].numpy(),
                               detection.probability_real(logits / 2.5), atol=1e-5)
    np.savez(tmp_path / "colour.npz", images=images)
    result = run_cli("dcgan_dist.detect", f"--detector={folder}", str(tmp_path / "colour.npz"))
    assert result.returncode == 0, result.stderr[-3000:]
    lines = [line.split("\t") for line in result.stdout.splitlines()]
    assert [line[0] for line in lines] == [f"{tmp_path / 'colour.npz'}[{i}]" for i in range(6)]
    np.testing.assert_allclose([float(line[1]) for line in lines],
                               detection.probability_real(logits, 2.5), atol=2e-6)
    assert [line[2] for line in lines] == [
        "generated" if logit < threshold else "real" for logit in logits]
    assert {line[2] for line in lines} == {"generated", "real"}

    # A damaged temperature: refused in one sentence, exit 3.
    (folder / "export.json").write_text(json.dumps({**record, "temperature": -1}))
    result = run_cli("dcgan_dist.detect", f"--detector={folder}", str(tmp_path / "colour.npz"))
    assert result.returncode == 3, result.stderr[-3000:]
    assert "records the temperature -1" in _one_line_error(result)


def test_a_detector_folder_without_a_shape_record_is_refused(exported, tmp_path):
    copy = tmp_path / "elsewhere" / "detector"
    shutil.copytree(exported[0], copy)
    (copy / "export.json").unlink(missing_ok=True)
    np.savez(tmp_path / "grey.npz", images=_GREY)  # what the old 28x28x1 guess took
    result = run_cli("dcgan_dist.detect", f"--detector={copy}", str(tmp_path / "grey.npz"))
    assert result.returncode == 3, result.stderr[-3000:]
    assert "records no image shape (export.json is missing in it and beside it)" in (
        _one_line_error(result))


def test_an_exported_detector_scores_in_batches(exported, monkeypatch):
    """savedmodel.detector_logits (detect --detector) calls the SavedModel on at most
    detection.BATCH_SIZE images at a time, and gives the network's logits."""
    import tensorflow as tf

    from dcgan_dist.inference import detection, savedmodel
    folder, discriminator = exported
    calls, load = [], tf.saved_model.load

    def counting_load(path):
        signature = load(path).signatures["serving_default"]

        def serve(images):
            calls.append(int(images.shape[0]))
            return signature(images=images)
        return type("Loaded", (), {"signatures": {"serving_default": serve}})

    monkeypatch.setattr(tf.saved_model, "load", counting_load)
    monkeypatch.setattr(detection, "BATCH_SIZE", 4)
    images = _colour_images(10)
    logits = savedmodel.detector_logits(str(folder), images)
    assert calls == [4, 4, 2]
    monkeypatch.setattr(detection, "BATCH_SIZE", 1000)
    np.testing.assert_allclose(logits, detection.score_images(discriminator, images),
                               atol=1e-5)


# forensics train's --out_dir: its flags and its lock (forensics/config.py).
def _flags(**changes):
    from dcgan_dist.forensics import pool
    config = forensics_config.DetectorConfig(**{"epochs": 2, "batch_size": 32,
                                                "architecture": "cnn", **changes})
    npz = "/somewhere/fakes.npz"
    return forensics_config.run_flags(config, [npz], [pool.Generator(npz)],
                                      "fashion_mnist", None)


def test_an_out_dir_resumes_only_with_the_flags_it_started_with(tmp_path):
    out = tmp_path / "det"
    forensics_config.claim_out_dir(str(out), _flags()).release()
    recorded = (out / forensics_config.FLAGS_FILE).read_bytes()
    (out / "backup").mkdir()  # as an interrupted run leaves it
    forensics_config.claim_out_dir(str(out), _flags()).release()  # the same: resumes
    with pytest.raises(ConfigError) as refused:
        forensics_config.claim_out_dir(str(out), _flags(epochs=3, learning_rate=0.01))
    assert str(refused.value) == (
        f"--out_dir={out} holds a run started with other flags: --epochs=2 (this run: "
        "--epochs=3); --learning_rate=0.001 (this run: --learning_rate=0.01); pass the "
        "same flags to resume it, or name a new --out_dir.")
    assert (out / forensics_config.FLAGS_FILE).read_bytes() == recorded

    os.remove(out / forensics_config.FLAGS_FILE)  # a run from before flags were recorded
    with pytest.raises(ConfigError, match="holds an interrupted run whose flags were not "
                                          "recorded"):
        forensics_config.claim_out_dir(str(out), _flags())
    (out / forensics_config.RECORD_FILE).write_text("{}")
    with pytest.raises(ConfigError, match="already holds a trained detector"):
        forensics_config.claim_out_dir(str(out), _flags())


def test_an_out_dir_has_one_writer(tmp_path):
    out = tmp_path / "det"
    out.mkdir()
    with files.hold(str(out / forensics_config.LOCK_FILE), what="a test"):
        with pytest.raises(BusyError, match=f"is in use by pid {os.getpid()} on host"):
            forensics_config.claim_out_dir(str(out), _flags())
    assert not (out / forensics_config.FLAGS_FILE).exists()
    forensics_config.claim_out_dir(str(out), _flags()).release()  # free again


@pytest.mark.slow
def test_forensics_train_refuses_other_flags_and_a_held_out_dir(fashion_builder, tfds_dir,
                                                               tmp_path):
    """Through the command line: exit 2 for an --out_dir started with other flags (the
    record differs in --epochs alone: the command records what run_flags does), exit 7
    while another process holds it; nothing trained."""
    fakes = tmp_path / "fakes.npz"
    np.savez(fakes, images=np.random.default_rng(0).integers(0, 256, [64, 28, 28],
                                                               np.uint8))
    out = tmp_path / "det"
    from dcgan_dist.forensics import pool
    started = forensics_config.DetectorConfig(architecture="cnn", epochs=5, batch_size=32,
                                              per_generator=64)
    forensics_config.claim_out_dir(str(out), forensics_config.run_flags(
        started, [str(fakes)], [pool.Generator(str(fakes))], "fashion_mnist",
        None)).release()
    (out / "backup").mkdir()
    before = sorted(os.listdir(out))
    args = ["train", f"--workdirs={fakes}", "--dataset=fashion_mnist",
            f"--tfds_data_dir={tfds_dir}", "--detector=cnn", "--batch_size=32",
            "--samples_per_generator=64", f"--out_dir={out}"]
    result = run_cli("dcgan_dist.forensics", *args, "--epochs=2")
    assert result.returncode == 2, result.stderr[-3000:]
    reason = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert reason == [f"error: --out_dir={out} holds a run started with other flags: "
                      "--epochs=5 (this run: --epochs=2); pass the same flags to resume "
                      "it, or name a new --out_dir."], result.stderr[-3000:]
    with files.hold(str(out / forensics_config.LOCK_FILE), what="a test"):
        result = run_cli("dcgan_dist.forensics", *args, "--epochs=5")
    assert result.returncode == 7, result.stderr[-3000:]
    assert f"is in use by pid {os.getpid()} on host" in result.stderr
    assert "Traceback" not in result.stderr
    assert sorted(os.listdir(out)) == before
