"""The feature classifier and the metrics, on real Fashion-MNIST.

The classifier is trained once per session (about half a minute) into the session's
tfds folder; test_evaluate.py then finds it there.
"""

import json
import os

import numpy as np
import pytest

from dcgan_dist.data import splits
from dcgan_dist.evaluation import classifier, metrics

N = 1000  # images per set: enough for ranks that cannot be noise, cheap on two cores


@pytest.fixture(scope="module")
def fashion_classifier(fashion_builder):
    return classifier.load_or_train(fashion_builder, "fashion_mnist")


def _blur(images):
    """A 5x5 box blur (edges padded): the same garments, without their detail."""
    padded = np.pad(images[..., 0].astype(np.float64), ((0, 0), (2, 2), (2, 2)), "edge")
    out = sum(padded[:, i:i + 28, j:j + 28] for i in range(5) for j in range(5)) / 25
    return np.rint(out).astype(np.uint8)[..., None]


@pytest.fixture(scope="module")
def sets(fashion_classifier, fashion_builder):
    """Embeddings of the real test split and of four candidate 'generators'."""
    test, _ = splits.load_split(fashion_builder, f"test[:{N}]")
    train, _ = splits.load_split(fashion_builder, f"train[:{N}]")
    noise = np.random.default_rng(0).integers(0, 256, test.shape, dtype=np.uint8)
    candidates = {"test": test, "train": train, "noise": noise, "blurred": _blur(train),
                  "repeated": np.repeat(train[:1], N, axis=0)}
    return {name: fashion_classifier.embed(images) for name, images in candidates.items()}


def test_classifier_is_accurate_deterministic_and_cached(fashion_classifier,
                                                         fashion_builder):
    record = fashion_classifier.record
    assert record["test_accuracy"] >= 0.90  # the bar for Fashion-MNIST
    assert record["dataset"] == fashion_builder.info.full_name
    cache = classifier.default_cache_dir(fashion_builder)
    with open(os.path.join(cache, classifier.RECORD_FILE)) as f:
        assert json.load(f) == record
    # A second load reads the cache: the same weights, and the recorded accuracy is
    # what they score on the whole test split.
    reloaded = classifier.load_or_train(fashion_builder, "fashion_mnist")
    images, labels = splits.load_split(fashion_builder, "test")
    assert reloaded.accuracy(images, labels) == record["test_accuracy"]
    for a, b in zip(reloaded.model.weights, fashion_classifier.model.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    features = reloaded.embed(images[:10]).features
    assert features.shape == (10, classifier.FEATURE_DIM) and features.max() > 0


def test_fid_and_kid_rank_real_images_far_below_degraded_ones(sets):
    real = sets["test"]
    names = ("train", "noise", "blurred", "repeated")
    fid = {name: metrics.frechet_distance(real, sets[name])["fid"] for name in names}
    # 20 subsets rather than 100: the ranks are clear, and this is the slow metric.
    kid = {name: metrics.kernel_distance(real, sets[name], num_subsets=20)["kid"]
           for name in names}
    for bad in ("noise", "blurred", "repeated"):
        assert fid[bad] > 10 * fid["train"], (bad, fid)
        assert kid[bad] > 20 * abs(kid["train"]), (bad, kid)
    # Degrees of damage rank too: blurred garments are nearer the data than noise
    # (docs/design.md, "What the GAN learned": FID 108 against 255, KID x1000 11.6
    # against 36.4).
    assert fid["blurred"] < fid["noise"] and kid["blurred"] < kid["noise"], (fid, kid)
    # Unbiased: two real sets differ by sampling noise alone, so KID is about zero.
    assert abs(kid["train"]) < 0.05 * kid["blurred"]


def test_fid_is_symmetric_and_zero_for_identical_sets(sets):
    a, b = sets["train"], sets["test"]
    ab = metrics.frechet_distance(a, b)["fid"]
    assert metrics.frechet_distance(b, a)["fid"] == pytest.approx(ab, rel=1e-5)
    assert metrics.frechet_distance(a, a)["fid"] < 1e-6 * ab


def test_precision_and_recall_show_quality_and_collapse(sets):
    real = sets["test"]
    good = metrics.precision_recall(real, sets["train"])
    assert good["precision"] > 0.6 and good["recall"] > 0.6, good
    collapsed = metrics.precision_recall(real, sets["repeated"])
    assert collapsed["recall"] < 0.01, collapsed  # one image covers nothing around it
    # Noise covers none of the real images either. (Its precision is high: the noise
    # images cluster in feature space inside the large k-NN balls of a few odd real
    # images -- the outlier weakness Kynkaanniemi et al. discuss; FID and KID do not
    # share it.)
    assert metrics.precision_recall(real, sets["noise"])["recall"] < 0.01


def test_classifier_score_and_class_coverage(sets):
    real = sets["test"]
    train = metrics.compute(real, sets["train"], ["classifier_score", "class_coverage"])
    assert train["classes_covered"] == 10 and train["max_class_share"] < 0.2
    assert train["classifier_score"] > 6, train
    collapsed = metrics.compute(real, sets["repeated"],
                                ["classifier_score", "class_coverage"])
    assert collapsed["classes_covered"] == 1 and collapsed["max_class_share"] == 1.0
    assert collapsed["classifier_score"] == pytest.approx(1.0, abs=1e-3)
    assert sum(train["class_share"]) == pytest.approx(1.0)


def test_compute_runs_every_registered_metric(sets):
    small = [metrics.Embedding(*(a[:200] for a in sets[name])) for name in ("test", "train")]
    results = metrics.compute(*small)
    assert set(results) == {"fid", "kid", "kid_std", "classifier_score",
                            "classifier_score_std", "class_share", "max_class_share",
                            "classes_covered", "precision", "recall"}


def test_roc_auc_is_the_share_of_correctly_ordered_pairs():
    assert metrics.roc_auc([2, 3], [0, 1]) == 1.0
    assert metrics.roc_auc([0, 1], [2, 3]) == 0.0
    assert metrics.roc_auc([1, 1], [1, 1]) == 0.5
    # Pairs (3>1, 3>2, 1=1 half, 1<2): 2.5 of 4.
    assert metrics.roc_auc([3, 1], [1, 2]) == 0.625


def test_fid_matches_the_closed_form_of_two_gaussians():
    """FID of N(m1, S1) and N(m2, S2) is |m1 - m2|^2 + tr(S1 + S2 - 2 (S1 S2)^(1/2)); with
    S1 = I and S2 = 4I in 8 dimensions and means 1 apart in each: 8 + 8 (1 + 4 - 4) = 16.
    The covariance terms matter: a FID of the means alone would give 8."""
    draws = np.random.default_rng(0)
    a = draws.standard_normal((200000, 8))
    b = 1.0 + 2.0 * draws.standard_normal((200000, 8))
    fid = metrics.frechet_distance(metrics.Embedding(a, None), metrics.Embedding(b, None))
    np.testing.assert_allclose(fid["fid"], 16.0, rtol=0.01)
