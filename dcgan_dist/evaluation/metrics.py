"""Sample-quality metrics: short functions registered by name, each returning a dict.

Every metric compares two `Embedding`s, of real and of generated images, in the feature
space of the dataset's own classifier (see `classifier`):

    results = metrics.compute(real, fake)   # {"fid": ..., "kid": ..., "precision": ...}

| metric           | keys                                   | better | reference             |
|------------------|----------------------------------------|--------|-----------------------|
| fid              | fid                                    | lower  | Heusel et al. 2017    |
| kid              | kid, kid_std                           | lower  | Binkowski et al. 2018 |
| classifier_score | classifier_score, classifier_score_std | higher | Salimans et al. 2016  |
| class_coverage   | class_share, max_class_share,          | even   |                       |
|                  | classes_covered                        |        |                       |
| precision_recall | precision, recall                      | higher | Kynkaanniemi 2019     |

A conditional generator adds `class_accuracy` (not registered: it needs the classes
asked for, see `class_accuracy`).

Only numpy: the numbers do not depend on TensorFlow's kernels or device.
"""

import collections

import numpy as np

# features: [N, D] penultimate activations; probabilities: [N, classes] softmax outputs.
Embedding = collections.namedtuple("Embedding", ["features", "probabilities"])

METRICS = {}


def register(name):
    def add(fn):
        METRICS[name] = fn
        return fn
    return add


def compute(real, fake, names=None):
    """The merged dicts of the metrics `names` (all of them by default)."""
    results = {}
    for name in names or METRICS:
        results.update(METRICS[name](real, fake))
    return results


def _mean_and_covariance(features):
    features = np.asarray(features, np.float64)
    return features.mean(axis=0), np.cov(features, rowvar=False)


def _psd_sqrt(matrix):
    """The square root of a symmetric positive semi-definite matrix (by eigh)."""
    values, vectors = np.linalg.eigh(matrix)
    return (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T


@register("fid")
def frechet_distance(real, fake):
    """Frechet distance of Gaussians fitted to the two feature sets.

    tr(sqrt(S1 S2)) is taken as tr(sqrt(A S2 A)) with A = sqrt(S1): a symmetric PSD
    matrix, so eigh is exact where a general matrix square root would return complex
    noise for the rank-deficient covariances of dead ReLU units.
    """
    mu1, s1 = _mean_and_covariance(real.features)
    mu2, s2 = _mean_and_covariance(fake.features)
    root = _psd_sqrt(s1)
    cross = np.sqrt(np.clip(np.linalg.eigvalsh(root @ s2 @ root), 0.0, None)).sum()
    fid = np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2.0 * cross
    return {"fid": float(max(fid, 0.0))}


def _polynomial_mmd2(x, y):
    """Unbiased MMD^2 with the kernel k(a, b) = (a.b / dim + 1)^3 (KID's choice)."""
    m, dim = x.shape
    k_xx = (x @ x.T / dim + 1) ** 3
    k_yy = (y @ y.T / dim + 1) ** 3
    k_xy = (x @ y.T / dim + 1) ** 3
    off_diagonal = (k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
    return off_diagonal - 2.0 * k_xy.mean()


@register("kid")
def kernel_distance(real, fake, num_subsets=100, subset_size=1000, seed=0):
    """Kernel inception distance: the mean (and std) of the unbiased polynomial-kernel
    MMD^2 over random subsets, which unlike FID has no bias that depends on N."""
    x = np.asarray(real.features, np.float64)
    y = np.asarray(fake.features, np.float64)
    size = min(subset_size, len(x), len(y))
    draw = np.random.default_rng(seed)
    values = [_polynomial_mmd2(x[draw.choice(len(x), size, replace=False)],
                               y[draw.choice(len(y), size, replace=False)])
              for _ in range(num_subsets)]
    return {"kid": float(np.mean(values)), "kid_std": float(np.std(values))}


@register("classifier_score")
def classifier_score(real, fake, num_splits=10):
    """The Inception score's analogue: exp E[KL(p(y|x) || p(y))] of the generated images,
    mean and std over `num_splits` splits (as the Inception score is reported). It is
    high when each image is confidently one class and all classes occur."""
    del real  # a property of the generated images alone
    scores = []
    for part in np.array_split(np.asarray(fake.probabilities, np.float64), num_splits):
        marginal = part.mean(axis=0, keepdims=True)
        kl = np.sum(part * (np.log(part + 1e-12) - np.log(marginal + 1e-12)), axis=1)
        scores.append(np.exp(kl.mean()))
    return {"classifier_score": float(np.mean(scores)),
            "classifier_score_std": float(np.std(scores))}


@register("class_coverage")
def class_coverage(real, fake):
    """The share of generated images the classifier puts in each class.

    A classifier of 90% accuracy labels real test images almost evenly; a collapsed
    generator shows up as a large max_class_share. A class counts as covered when it
    gets at least a tenth of its even share (1% of the images for 10 classes).
    """
    del real
    probabilities = np.asarray(fake.probabilities)
    classes = probabilities.shape[1]
    counts = np.bincount(probabilities.argmax(axis=1), minlength=classes)
    share = counts / max(len(probabilities), 1)
    return {"class_share": [float(s) for s in share],
            "max_class_share": float(share.max()),
            "classes_covered": int(np.sum(share >= 0.1 / classes))}


def _squared_distances(a, b):
    d = (a * a).sum(axis=1)[:, None] + (b * b).sum(axis=1)[None, :] - 2.0 * a @ b.T
    return np.maximum(d, 0.0)


def _knn_radii(features, k, chunk):
    """Squared distance from each point to its k-th nearest other point."""
    radii = np.empty(len(features))
    for i in range(0, len(features), chunk):
        d = _squared_distances(features[i:i + chunk], features)
        radii[i:i + chunk] = np.partition(d, k, axis=1)[:, k]  # column 0 is the point itself
    return radii


def _inside_manifold(queries, points, radii, chunk):
    """Whether each query lies within some point's k-NN ball."""
    inside = np.empty(len(queries), bool)
    for i in range(0, len(queries), chunk):
        d = _squared_distances(queries[i:i + chunk], points)
        inside[i:i + chunk] = (d <= radii[None, :]).any(axis=1)
    return inside


@register("precision_recall")
def precision_recall(real, fake, k=3, chunk=1000):
    """Improved precision and recall (Kynkaanniemi et al. 2019).

    Each set's manifold is the union of balls reaching every point's k-th nearest
    neighbour. Precision: the share of generated images inside the real manifold
    (fidelity). Recall: the share of real images inside the generated one (diversity);
    a collapsed generator's balls have radius ~0, so its recall is ~0.
    """
    x = np.asarray(real.features, np.float64)
    y = np.asarray(fake.features, np.float64)
    precision = _inside_manifold(y, x, _knn_radii(x, k, chunk), chunk).mean()
    recall = _inside_manifold(x, y, _knn_radii(y, k, chunk), chunk).mean()
    return {"precision": float(precision), "recall": float(recall)}


def class_accuracy(probabilities, labels, num_classes):
    """A conditional generator's class accuracy: of the images asked for class k
    (`labels`), the share the classifier assigns to k (argmax of `probabilities`), per
    class, and over all images. It also measures the classifier on real images with
    their true labels."""
    predicted = np.asarray(probabilities).argmax(axis=1)
    labels = np.asarray(labels)
    per_class = [float(np.mean(predicted[labels == k] == k)) if np.any(labels == k)
                 else None for k in range(num_classes)]  # None: no image asked for k
    return {"class_accuracy": float(np.mean(predicted == labels)),
            "class_accuracy_per_class": per_class}


def roc_auc(positive_scores, negative_scores):
    """Area under the ROC curve: the probability that a random positive scores above a
    random negative, ties counting half (the Mann-Whitney statistic)."""
    negative = np.sort(np.asarray(negative_scores, np.float64))
    positive = np.asarray(positive_scores, np.float64)
    below = np.searchsorted(negative, positive, side="left")
    ties = np.searchsorted(negative, positive, side="right") - below
    return float((below.sum() + 0.5 * ties.sum()) / (len(positive) * len(negative)))


# Detection: "positive" is a generated image, flagged; its score is the negated logit of
# "real" that detectors and discriminators give.

def average_precision(positive_scores, negative_scores):
    """Average precision of ranking positives above negatives (area under the
    precision-recall curve, as detection papers report it)."""
    positive = np.asarray(positive_scores, np.float64)
    scores = np.concatenate([positive, np.asarray(negative_scores, np.float64)])
    hits = np.concatenate([np.ones(len(positive)), np.zeros(len(scores) - len(positive))])
    hits = hits[np.argsort(-scores, kind="stable")]
    precision = np.cumsum(hits) / np.arange(1, len(hits) + 1)
    return float((precision * hits).sum() / len(positive))


def tpr_at_fpr(positive_scores, negative_scores, fpr=0.01):
    """The share of positives flagged at the threshold that flags at most `fpr` of the
    negatives."""
    negative = np.sort(np.asarray(negative_scores, np.float64))[::-1]
    threshold = negative[int(np.floor(fpr * len(negative)))]
    return float(np.mean(np.asarray(positive_scores, np.float64) > threshold))


def best_threshold(real_logits, fake_logits):
    """The logit threshold (real above it) with the highest accuracy on these logits."""
    scores = np.concatenate([real_logits, fake_logits]).astype(np.float64)
    is_real = np.concatenate([np.ones(len(real_logits)), np.zeros(len(fake_logits))])
    order = np.argsort(scores, kind="stable")
    scores, is_real = scores[order], is_real[order]
    # Threshold just above scores[i]: fakes at or below it are right, reals above it.
    correct = np.cumsum(1 - is_real) + (is_real.sum() - np.cumsum(is_real))
    best = int(np.argmax(correct))
    above = scores[best + 1] if best + 1 < len(scores) else scores[best] + 1.0
    return float((scores[best] + above) / 2)


def detection_metrics(real_logits, fake_logits, threshold=0.0):
    """ROC-AUC, average precision, accuracy at `threshold` and TPR at 1% FPR of logits of
    "real" given to real and generated images (generated ones are the positives)."""
    real, fake = np.asarray(real_logits), np.asarray(fake_logits)
    correct = np.sum(real > threshold) + np.sum(fake <= threshold)
    return {"auc": roc_auc(-fake, -real), "ap": average_precision(-fake, -real),
            "accuracy": float(correct / (len(real) + len(fake))),
            "tpr_at_1pct_fpr": tpr_at_fpr(-fake, -real, 0.01)}
