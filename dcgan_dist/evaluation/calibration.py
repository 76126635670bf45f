"""A detector's calibrated answer: a temperature for its probability, an operating point
for its decision, and the expected calibration error that says whether the first helps.

Detectors give a logit of "real"; the calibrated probability of real is
sigmoid(logit / T), with T fitted on the validation split (Guo et al. 2017, temperature
scaling). Dividing by T > 0 keeps the order of the logits, so ROC-AUC, average precision
and the TPR at a fixed false-positive rate do not change; only the probabilities do.

The operating point is a logit threshold set on the validation split's real images: an
image whose logit is below it is called generated, and at most 1% of those real images
are (`metrics.tpr_at_fpr`'s convention, generated images being the positives).

A record without a temperature (a detector or export from before calibration, or a GAN's
discriminator) means T = 1 and no operating point: `Calibration()`.

Only numpy, like `metrics`.
"""

import collections
import math

import numpy as np

# The bounds of the fit: where the NLL keeps falling as T grows (logits that carry
# nothing, T -> infinity) it stops at a bound, not at infinity.
MIN_TEMPERATURE, MAX_TEMPERATURE = 0.01, 100.0
OPERATING_FPR = 0.01  # the share of real images the operating point may call generated

# temperature: T > 0; threshold_logit: the operating point, or None where none was set.
Calibration = collections.namedtuple("Calibration", ["temperature", "threshold_logit"],
                                     defaults=[1.0, None])

# The keys of a detector record (detector.json) and an export record (export.json).
TEMPERATURE = "temperature"
THRESHOLD_LOGIT = "threshold_1pct_fpr_logit"
THRESHOLD_PROBABILITY = "threshold_1pct_fpr_probability_real"


def probability_real(logits, temperature=1.0):
    """sigmoid(logits / T) in float64: float32 rounds every logit above ~17 to exactly 1."""
    return 1.0 / (1.0 + np.exp(-np.asarray(logits, np.float64) / temperature))


def _nll(logits, labels, temperature):
    """Mean binary cross-entropy of sigmoid(logits / T) against labels (1 real)."""
    z = logits / temperature
    return float(np.mean(np.logaddexp(0.0, z) - labels * z))


def fit_temperature(logits, labels, tolerance=1e-7):
    """The T in [MIN_TEMPERATURE, MAX_TEMPERATURE] that minimises the NLL of
    sigmoid(logits / T) against `labels` (1 real, 0 generated).

    Golden-section search over log T: the NLL is convex in 1/T, so it has one minimum
    along log T (a monotone map of 1/T) and the search cannot stop in a false one.

    1.0 where the logits say nothing about T: none, all 0, or every image on its side of
    logit 0 (a detector perfect on its validation split, as a small one often is). There
    the NLL falls toward T = 0 without a minimum, and the bound would turn every
    probability into exactly 0 or 1; T = 1 keeps the detector's own probabilities.
    """
    logits = np.asarray(logits, np.float64).reshape([-1])
    labels = np.asarray(labels, np.float64).reshape([-1])
    if not np.any(logits) or np.all((logits >= 0) == (labels == 1)):
        return 1.0
    ratio = (math.sqrt(5.0) - 1.0) / 2.0
    low, high = math.log(MIN_TEMPERATURE), math.log(MAX_TEMPERATURE)
    a, b = high - ratio * (high - low), low + ratio * (high - low)
    fa, fb = (_nll(logits, labels, math.exp(u)) for u in (a, b))
    while high - low > tolerance:
        if fa <= fb:  # the minimum is left of b
            high, b, fb = b, a, fa
            a = high - ratio * (high - low)
            fa = _nll(logits, labels, math.exp(a))
        else:
            low, a, fa = a, b, fb
            b = low + ratio * (high - low)
            fb = _nll(logits, labels, math.exp(b))
    return math.exp((low + high) / 2.0)


def expected_calibration_error(probabilities, labels, bins=15):
    """ECE of `probabilities` of real against `labels` (1 real, 0 generated): the
    images binned by p(real) into `bins` equal-width bins of [0, 1], the sum over bins of
    |share of real images in the bin - mean p(real) in the bin|, each weighted by the
    bin's share of the images. 0 for a calibrated detector, up to 1."""
    probabilities = np.asarray(probabilities, np.float64).reshape([-1])
    labels = np.asarray(labels, np.float64).reshape([-1])
    if not len(probabilities):
        return 0.0
    which = np.minimum((probabilities * bins).astype(np.int64), bins - 1)  # 1.0: the last
    # Per bin |sum of labels - sum of p| = count * |accuracy - confidence|.
    gap = np.abs(np.bincount(which, labels, bins) - np.bincount(which, probabilities, bins))
    return float(gap.sum() / len(probabilities))


def threshold_at_fpr(real_logits, fpr=OPERATING_FPR):
    """The logit threshold below which at most `fpr` of `real_logits` lie: the
    floor(fpr * N)-th lowest (0-based), as `metrics.tpr_at_fpr` sets it."""
    real = np.sort(np.asarray(real_logits, np.float64).reshape([-1]))
    return float(real[int(np.floor(fpr * len(real)))])


def fit(real_logits, fake_logits):
    """The Calibration of a detector from its validation logits of real and generated
    images: the NLL's temperature over both, the operating point on the real ones."""
    real = np.asarray(real_logits, np.float64).reshape([-1])
    fake = np.asarray(fake_logits, np.float64).reshape([-1])
    labels = np.concatenate([np.ones(len(real)), np.zeros(len(fake))])
    return Calibration(fit_temperature(np.concatenate([real, fake]), labels),
                       threshold_at_fpr(real))


def calibration_metrics(real_logits, fake_logits, calibration):
    """{ece} of the calibrated probability of real over these real and generated images
    together, and where `calibration` has an operating point, {fpr_at_operating_point,
    tpr_at_operating_point}: the shares of real and of generated images it calls
    generated."""
    real = np.asarray(real_logits, np.float64).reshape([-1])
    fake = np.asarray(fake_logits, np.float64).reshape([-1])
    labels = np.concatenate([np.ones(len(real)), np.zeros(len(fake))])
    values = {"ece": expected_calibration_error(
        probability_real(np.concatenate([real, fake]), calibration.temperature), labels)}
    threshold = calibration.threshold_logit
    if threshold is not None:
        values["fpr_at_operating_point"] = float(np.mean(real < threshold))
        values["tpr_at_operating_point"] = float(np.mean(fake < threshold))
    return values


def of_record(record):
    """The Calibration a detector.json or export.json records: T = 1 and no operating
    point for one from before calibration, or a discriminator's."""
    return Calibration(float(record.get(TEMPERATURE, 1.0)), record.get(THRESHOLD_LOGIT))


def record_fields(calibration):
    """The entries an export.json gains: the temperature, and the operating point as a
    logit and as a calibrated probability of real (none for T = 1 without one, so a
    discriminator's export records what it always did)."""
    fields = {}
    if calibration.temperature != 1.0 or calibration.threshold_logit is not None:
        fields[TEMPERATURE] = calibration.temperature
    if calibration.threshold_logit is not None:
        fields[THRESHOLD_LOGIT] = calibration.threshold_logit
        fields[THRESHOLD_PROBABILITY] = float(probability_real(
            calibration.threshold_logit, calibration.temperature))
    return fields
