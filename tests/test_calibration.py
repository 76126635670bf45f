"""evaluation/calibration.py on synthetic logits: the temperature fit recovers a known
temperature, the ECE tells calibrated draws from overconfident ones, and the operating
point keeps to 1% false positives as `metrics.tpr_at_fpr` counts them."""

import numpy as np
import pytest

from dcgan_dist.evaluation import calibration, metrics


def _calibrated_draws(count, seed, scale=2.0):
    """(true logits, labels 1 real): each label drawn with p(real) = sigmoid(logit), so
    sigmoid of the true logit is calibrated by construction."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0.0, scale, count)
    return logits, (rng.uniform(size=count) < calibration.probability_real(logits)) * 1.0


@pytest.mark.parametrize("factor", [3.0, 0.5])
def test_the_fit_recovers_a_known_temperature(factor):
    """An overconfident (x3) or underconfident (x0.5) copy of a calibrated model's
    logits: the fitted T undoes the factor to within 5%, and calibrates."""
    true_logits, labels = _calibrated_draws(50000, seed=1)
    temperature = calibration.fit_temperature(factor * true_logits, labels)
    assert temperature == pytest.approx(factor, rel=0.05)
    before = calibration.expected_calibration_error(
        calibration.probability_real(factor * true_logits), labels)
    after = calibration.expected_calibration_error(
        calibration.probability_real(factor * true_logits, temperature), labels)
    assert after < 0.01 < before, (before, after)


def test_the_fit_keeps_t1_where_the_logits_say_nothing_about_it():
    """Every image on its side of logit 0: the NLL falls toward T = 0 with no minimum,
    so T stays 1 (not the bound, which would make every probability 0 or 1); one image
    on the wrong side gives a minimum, and the fit finds it below 1."""
    logits, labels = np.array([2.0, 1.0, -1.0, -2.0]), np.array([1.0, 1.0, 0.0, 0.0])
    assert calibration.fit_temperature(logits, labels) == 1.0
    assert calibration.fit_temperature(np.zeros(4), labels) == 1.0  # nothing to scale
    logits = np.concatenate([np.full(50, 2.0), [-0.5], np.full(50, -2.0)])
    labels = np.concatenate([np.ones(51), np.zeros(50)])
    temperature = calibration.fit_temperature(logits, labels)
    assert calibration.MIN_TEMPERATURE < temperature < 1.0
    nll = [calibration._nll(logits, labels, t) for t in (temperature * 0.99, temperature,
                                                         temperature * 1.01)]
    assert nll[1] < nll[0] and nll[1] < nll[2], nll


def test_ece_is_near_zero_when_calibrated_and_large_when_overconfident():
    rng = np.random.default_rng(2)
    p = rng.uniform(size=200000)
    labels = (rng.uniform(size=len(p)) < p) * 1.0
    assert calibration.expected_calibration_error(p, labels) < 0.005
    true_logits, labels = _calibrated_draws(200000, seed=3)
    overconfident = calibration.probability_real(5.0 * true_logits)
    assert calibration.expected_calibration_error(overconfident, labels) > 0.1


def test_ece_by_hand():
    """Two bins of 15 used: [0.0, 1/15) holds 0.0 and 0.05 (labels 0, 1: accuracy 0.5
    against confidence 0.025), the last holds 0.95 and exactly 1.0 (labels 1, 1: 1.0
    against 0.975); each bin half the images."""
    p, labels = np.array([0.0, 0.05, 0.95, 1.0]), np.array([0.0, 1.0, 1.0, 1.0])
    assert calibration.expected_calibration_error(p, labels) == pytest.approx(
        0.5 * 0.475 + 0.5 * 0.025)


@pytest.mark.parametrize("count", [1000, 150, 50])
def test_the_operating_point_keeps_to_1pct_of_the_validation_reals(count):
    rng = np.random.default_rng(count)
    real = np.round(rng.normal(2.0, 1.0, count), 1)  # rounded: ties at the threshold
    fake = rng.normal(-2.0, 1.0, count)
    fitted = calibration.fit(real, fake)
    assert np.mean(real < fitted.threshold_logit) <= calibration.OPERATING_FPR
    values = calibration.calibration_metrics(real, fake, fitted)
    assert values["fpr_at_operating_point"] <= calibration.OPERATING_FPR
    # The TPR at 1% FPR that the protocol reports, at this very threshold.
    assert values["tpr_at_operating_point"] == metrics.tpr_at_fpr(-fake, -real, 0.01)


def test_records_from_before_calibration_mean_t1_and_no_operating_point():
    assert calibration.of_record({"threshold_logit": 0.3}) == calibration.Calibration(1.0,
                                                                                     None)
    assert calibration.record_fields(calibration.Calibration()) == {}
    fields = calibration.record_fields(calibration.Calibration(2.0, 1.0))
    assert fields == {"temperature": 2.0, "threshold_1pct_fpr_logit": 1.0,
                      "threshold_1pct_fpr_probability_real": pytest.approx(
                          1 / (1 + np.exp(-0.5)))}
    assert calibration.of_record(fields) == calibration.Calibration(2.0, 1.0)
