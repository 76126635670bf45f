"""The held-out protocol: detectors and the GANs' own discriminators, scored on sets of
generators that no detector trained on, with real images no detector trained on.

- Real images: the test split (detectors train on the training split), at the sets'
  image shape (`pool.image_shape`), fitted to it as training fitted them.
- Fakes: each set's generators, from seeds no training sample used (10**6 onwards),
  as many in all as there are real images (balanced), drawn evenly from the set.
- Metrics (generated images are the positives): ROC-AUC, average precision, accuracy
  at the threshold the detector chose on its validation data, and the true-positive
  rate at 1% false positives. A trained detector's rows add the ECE of its calibrated
  probability of real over the set's real and fake images (`ece`), and the share of
  real and of fake images that its stored operating point calls generated
  (`fpr_at_operating_point`: is it still 1% on held-out data? and
  `tpr_at_operating_point`); see evaluation/calibration.py.
- Perturbations of real and fake images alike (perturbations.PERTURBATIONS): blur,
  down-and-up scaling, JPEG, noise and a chain of them, each seeded.
- The discriminator row: each generator scored by the discriminator of its own
  checkpoint (the article's claim), at its natural threshold (logit 0); the set's value
  is the mean over its generators, each against the same real images.
"""

import numpy as np
import tensorflow as tf

from dcgan_dist import shapes
from dcgan_dist.data import pipeline, splits
from dcgan_dist.evaluation import calibration, metrics
from dcgan_dist.forensics import pool, training
from dcgan_dist.forensics.config import DEFAULT_PERTURBATIONS, PERTURBATIONS
from dcgan_dist.forensics.perturbations import named
from dcgan_dist.inference import detection

FIRST_TEST_SEED = 10**6
DISCRIMINATOR = "discriminator"


def perturb_all(images, name, seed=0):
    """uint8 [N, H, W, C]: perturbation `name` of each image (seeded noise draws)."""
    if not PERTURBATIONS[name]:
        return images
    tf.random.set_seed(seed)  # the noise draws
    data = tf.data.Dataset.from_tensor_slices(images).map(
        lambda x: named(x, name), num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True).batch(1000).apply(
            pipeline.without_autotuning)  # no wait when its iterator is deleted
    return np.concatenate([batch.numpy() for batch in data])


def _set_fakes(generators, count, seed, shape):
    """(fakes [count], [(discriminator or None, that generator's fakes)])."""
    per_generator = -(-count // len(generators))
    drawn = []
    for generator in generators:
        network, discriminator = pool.load(generator)
        drawn.append((discriminator, pool.samples(generator, per_generator,
                                                  FIRST_TEST_SEED, network, shape)))
    fakes = np.concatenate([images for _, images in drawn])
    pick = np.random.default_rng(seed).permutation(len(fakes))[:count]
    return fakes[pick], drawn


def _detector_metrics(model, record, real, fake_images):
    """detection_metrics at the record's threshold, and calibration_metrics at its
    temperature and operating point (T = 1 and none for a record from before them);
    real: the logits of the real images."""
    fakes = detection.score_images(model, fake_images)
    return {**metrics.detection_metrics(real, fakes, record["threshold_logit"]),
            **calibration.calibration_metrics(real, fakes, calibration.of_record(record))}


def evaluate(detector_dirs, sets, builder, num_real=10000, perturbations=DEFAULT_PERTURBATIONS,
             discriminator=True, seed=0, shape=shapes.DEFAULT_SHAPE):
    """Rows {set, perturbation, scorer, auc, ap, accuracy, tpr_at_1pct_fpr}, a trained
    detector's with ece and, where its record has an operating point,
    fpr_at_operating_point and tpr_at_operating_point; shape: the sets' (and the
    detectors') image shape, (H, W, C)."""
    total = builder.info.splits[splits.REAL_SPLIT].num_examples
    real, _ = splits.load_split(builder, f"{splits.REAL_SPLIT}[:{min(num_real, total)}]",
                                shape)
    loaded = {d: training.load(d) for d in detector_dirs}
    # The real images, perturbed and scored once: every set meets the same ones.
    real_scores = {}
    for name in perturbations:
        real_p = perturb_all(real, name, seed)
        real_scores[name] = (real_p, {d: detection.score_images(model, real_p)
                                      for d, (model, _) in loaded.items()})
    rows = []
    for set_name, generators in sets.items():
        fakes, drawn = _set_fakes(generators, len(real), seed, shape)
        for name in perturbations:
            real_p, scored = real_scores[name]
            fake_p = perturb_all(fakes, name, seed + 1)
            for directory, (model, record) in loaded.items():
                rows.append({"set": set_name, "perturbation": name, "scorer": directory,
                             **_detector_metrics(model, record, scored[directory],
                                                 fake_p)})
            own = [(d, images) for d, images in drawn if d is not None]
            if discriminator and own:
                per = [metrics.detection_metrics(
                    detection.score_images(d, real_p),
                    detection.score_images(d, perturb_all(images, name, seed + 1)))
                    for d, images in own]
                rows.append({"set": set_name, "perturbation": name, "scorer": DISCRIMINATOR,
                             **{k: float(np.mean([p[k] for p in per])) for k in per[0]},
                             "auc_min": float(min(p["auc"] for p in per))})
    return rows


def table(rows):
    """Markdown: one line per set and perturbation, AUC / TPR@1%FPR per scorer."""
    scorers = list(dict.fromkeys(row["scorer"] for row in rows))
    keys = list(dict.fromkeys((row["set"], row["perturbation"]) for row in rows))
    by = {(row["set"], row["perturbation"], row["scorer"]): row for row in rows}
    lines = ["| set | perturbation | " + " | ".join(
        f"{s} AUC / AP / acc / TPR@1%" for s in scorers) + " |",
        "|---|---|" + "---|" * len(scorers)]
    for set_name, perturbation in keys:
        cells = []
        for scorer in scorers:
            row = by.get((set_name, perturbation, scorer))
            cells.append("" if row is None else
                         f"{row['auc']:.3f} / {row['ap']:.3f} / {row['accuracy']:.3f} / "
                         f"{row['tpr_at_1pct_fpr']:.3f}")
        lines.append(f"| {set_name} | {perturbation} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
