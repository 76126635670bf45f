"""Evaluation: how good a generator's samples are, and how well its discriminator spots
them, recorded beside the training run.

    evaluator = Evaluator("fashion_mnist", workdir=workdir)  # classifier, real features
    results = evaluator(generator, discriminator, step)      # metrics, recorded

Each call appends one JSON line to WORKDIR/metrics.jsonl and writes the scalars to
TensorBoard under WORKDIR/eval, so runs and checkpoints can be compared later.
"""

import json
import os
import time

import numpy as np
import tensorflow as tf

from dcgan_dist import files, models
from dcgan_dist import workdir as layout
from dcgan_dist.data import sources, splits
from dcgan_dist.errors import ConfigError
from dcgan_dist.evaluation import classifier, metrics
from dcgan_dist.inference import detection, runs, sampling

MIN_SAMPLES = 10  # k-NN manifolds (k=3) and KID subsets need a few images
LABEL_FREE_METRICS = ("fid", "kid", "precision_recall")  # need features, not classes


class Evaluator:
    """Computes and records every metric of a generator and discriminator.

    Construction does the work that does not depend on the networks, once: the
    dataset, the feature classifier (trained and cached on first use, ~20 s on two
    cores), the real test images and their features, and the generator's noise (the
    same `num_samples` seeds at every call, so values over time compare like with like).

    A call runs the networks eagerly in batches: nothing is traced, so calling it every
    few epochs of a training run, on networks under a tf.distribute strategy or not,
    leaves no compiled functions behind. Build it outside any strategy's scope.

    Args:
      dataset: tfds name of the training data (mnist, fashion_mnist, ...).
      data_dir, tfds_data_dir: as training's flags of the same names.
      workdir: where to record (None: record nothing) and where to find the earlier
        checkpoints whose generators the discriminator is also scored against.
      num_samples: generated images, and real test images (at most the split's size).
      seed: the generated images are those of seeds seed .. seed + num_samples - 1.
      classifier_dir: where the classifier is cached (default: beside the data).
      compare_earlier: score the discriminator against earlier checkpoints' samples.
      image_shape: the run's (H, W, C) (default: the data's own).

    Unlabelled data (a folder without class subfolders) is embedded by the classifier's
    untrained network and skips the metrics that need class probabilities (`note`
    says so; classifier.py says why).

    A conditional generator draws sample i as class i % classes (balanced), and adds
    `class_accuracy` and `class_accuracy_per_class` (metrics.class_accuracy); the
    record line then holds the classifier's own per-class accuracy on the real images,
    `classifier_class_accuracy`, the bar to compare them with.
    """

    def __init__(self, dataset, data_dir=None, tfds_data_dir=None, workdir=None,
                 num_samples=10000, seed=0, classifier_dir=None, compare_earlier=True,
                 image_shape=None):
        if num_samples < MIN_SAMPLES:
            raise ConfigError(f"--num_samples={num_samples} is too few; use at least "
                              f"{MIN_SAMPLES} (10000 for numbers comparable with papers).")
        size, _, channels = image_shape or (None, None, None)
        builder, image_shape, _ = sources.load(dataset, data_dir, tfds_data_dir, size,
                                               channels)
        splits.require_real_split(builder, data_dir)
        self.metric_names, self.note = None, None
        if classifier.is_labelled(builder):
            # A folder of image files is no named dataset with an accuracy bar.
            named = dataset if not data_dir or sources.is_idx_folder(data_dir) else None
            self.classifier = classifier.load_or_train(builder, named, classifier_dir,
                                                       image_shape)
        else:
            self.classifier = classifier.untrained(image_shape)
            self.metric_names = LABEL_FREE_METRICS
            self.note = ("the data has no labels, so FID, KID and precision/recall use "
                         "the untrained classifier's random features, and the classifier "
                         "score and class coverage, which need classes, are skipped")
        total = builder.info.splits[splits.REAL_SPLIT].num_examples
        self.real_images, self.real_labels = splits.load_split(
            builder, f"{splits.REAL_SPLIT}[:{min(num_samples, total)}]", image_shape)
        self.real = self.classifier.embed(self.real_images)
        self.num_classes = (self.real.probabilities.shape[1] if self.classifier.trained
                            else 0)
        self.noise = sampling.noise_for_seeds(np.arange(num_samples) + seed)
        self.workdir = workdir
        self.compare_earlier = compare_earlier and workdir is not None
        self._writer = None
        self._scratch_generator = None

    def __call__(self, generator, discriminator, step, checkpoint=None, context=None):
        """The metrics of `generator` and `discriminator` at global `step`, recorded.

        Returns a dict of numbers (and `class_share`, a list): the metrics of
        `metrics.METRICS`, `detector_auc` (ROC-AUC of the discriminator, real test
        images against this generator's), `detector_auc_earlier` ({step: AUC against
        the generator of each earlier checkpoint in the workdir}), and `eval_seconds`.
        `context` (e.g. the training seconds so far) is recorded with them as it is.
        """
        started = time.perf_counter()
        classes = models.class_count(generator)
        labels = sampling.balanced_labels(len(self.noise), classes) if classes else None
        fake_images = sampling.generate_images(generator, self.noise, labels)
        fake = self.classifier.embed(fake_images)
        results = metrics.compute(self.real, fake, self.metric_names)
        if classes and classes == self.num_classes:  # a classifier of the same classes
            results.update(metrics.class_accuracy(fake.probabilities, labels, classes))
        real_logits = detection.score_images(discriminator, self.real_images)
        fake_logits = detection.score_images(discriminator, fake_images)
        results["detector_auc"] = metrics.roc_auc(real_logits, fake_logits)
        results["detector_real_mean"] = float(detection.probability_real(real_logits).mean())
        results["detector_fake_mean"] = float(detection.probability_real(fake_logits).mean())
        if self.compare_earlier:
            results["detector_auc_earlier"] = self._earlier_aucs(discriminator, real_logits,
                                                                 step)
        results["eval_seconds"] = round(time.perf_counter() - started, 2)
        if self.workdir is not None:
            self._record(results, step, checkpoint, context or {})
        return results

    def _earlier_aucs(self, discriminator, real_logits, step):
        """{step: AUC} of the discriminator against each earlier checkpoint's generator."""
        aucs = {}
        for earlier_step, path in layout.list_checkpoints(self.workdir):
            if earlier_step >= step:
                continue
            if self._scratch_generator is None:  # built once, restored into each time
                self._scratch_generator, _ = runs.networks_of(path)
            runs.restore(path, generator=self._scratch_generator)
            images = sampling.generate_images(self._scratch_generator, self.noise)
            aucs[str(earlier_step)] = metrics.roc_auc(
                real_logits, detection.score_images(discriminator, images))
        return aucs

    def _record(self, results, step, checkpoint, context):
        line = {"step": int(step), "checkpoint": checkpoint, **context,
                "num_samples": int(self.noise.shape[0]),
                "classifier_accuracy": self.classifier.test_accuracy,
                "features": "classifier" if self.classifier.trained else "untrained",
                **results}
        if "class_accuracy" in results:
            line["classifier_class_accuracy"] = metrics.class_accuracy(
                self.real.probabilities, self.real_labels,
                self.num_classes)["class_accuracy_per_class"]
        files.append_line(os.path.join(self.workdir, layout.METRICS_FILE),
                          json.dumps(line))
        if self._writer is None:
            self._writer = tf.summary.create_file_writer(
                os.path.join(self.workdir, layout.EVAL_SUMMARIES))
        with self._writer.as_default(step=int(step)):
            for tag, value in scalars(results).items():
                tf.summary.scalar(tag, value)
        self._writer.flush()

    def close(self):
        if self._writer is not None:
            self._writer.close()



def scalars(results):
    """The TensorBoard view of a results dict: lists and dicts become tag/key scalars."""
    flat = {}
    for name, value in results.items():
        if isinstance(value, dict):
            flat.update({f"{name}/{key}": v for key, v in value.items()})
        elif isinstance(value, list):
            flat.update({f"{name}/{i}": v for i, v in enumerate(value) if v is not None})
        else:
            flat[name] = value
    return flat


def format_results(results):
    """One line: `evaluate | fid: 12.3 | kid: 0.0123 | ...` (lists left out)."""
    parts = []
    for name, value in results.items():
        if isinstance(value, dict):
            parts += [f"{name}@{key}: {v:.4f}" for key, v in value.items()]
        elif isinstance(value, float):
            parts.append(f"{name}: {value:.4g}")
        elif isinstance(value, int):
            parts.append(f"{name}: {value}")
    return " | ".join(parts)
