"""Training a detector: real training images against a pool's samples, balanced, under a
tf.distribute strategy (Keras `fit`), with TensorBoard summaries, a checkpoint per epoch
(`BackupAndRestore`: an interrupted run resumes at its last epoch), and a validation
split on which the decision threshold is set: every sample of a tenth of the generators,
which the detector never trains on (`--validation=generators`, the default), or unseen
samples of every generator (`samples`; what a pool of one generator always gets).

OUT_DIR holds `detector.json` (architecture, augmentations, pool, image shape,
threshold, calibration, validation metrics; written whole, last), `checkpoints/` (the
trained network), `tensorboard/`, and what the command claims first (config.py:
`flags.json`, the flags the run started with, and `lock`).

The validation logits also calibrate the detector (evaluation/calibration.py): the
record's `temperature` T (the calibrated probability of real is sigmoid(logit / T)) and
`threshold_1pct_fpr_logit` (below it an image is called generated; at most 1% of the
validation's real images are), and its validation metrics gain `ece_uncalibrated`
(T = 1), `ece` (T), `fpr_at_operating_point` and `tpr_at_operating_point`. A record from
before calibration has neither: `calibration.of_record` reads it as T = 1, no operating
point.

The detector takes images of the pool's shape (`pool.image_shape`); a record without
one is from before shapes were recorded, 28x28x1.
"""

import json
import os

import keras
import numpy as np
import tensorflow as tf

from dcgan_dist import files, shapes
from dcgan_dist import workdir as layout
from dcgan_dist.data import pipeline, splits
from dcgan_dist.errors import ConfigError, DataError
from dcgan_dist.evaluation import calibration, metrics
from dcgan_dist.forensics import detectors, perturbations, pool
from dcgan_dist.forensics.config import RECORD_FILE
from dcgan_dist.inference import detection


def validation_generators(generators, val_fraction, seed):
    """The indices of the pool's generators whose samples validate instead of train
    (`--validation=generators`): a seeded tenth (val_fraction) of them, at least one,
    and never all."""
    count = min(len(generators) - 1, max(1, round(len(generators) * val_fraction)))
    return set(np.random.default_rng(seed).permutation(len(generators))[:count].tolist())


def images_and_validation(generators, builder, config, shape=shapes.DEFAULT_SHAPE):
    """(uint8 images [N, *shape], labels: 1 real, 0 generated, V): the first V images
    validate, the rest train, each part balanced and shuffled.

    config.validation "samples": V is val_fraction of all, from every generator (unseen
    samples of seen generators); "generators": the validation fakes are all the samples
    of generators the detector never trains on (`validation_generators`), so the
    threshold and the temperature are set on generators it did not see, as held-out
    sets are, against as many real images.
    """
    seed = config.seed
    if config.validation == "samples" or len(generators) < 2:
        images, labels = training_images(generators, builder, config.per_generator, seed,
                                         shape)
        return images, labels, max(1, int(len(images) * config.val_fraction))
    held = validation_generators(generators, config.val_fraction, seed)
    val_fakes = np.concatenate([pool.samples(g, config.per_generator, 0, shape=shape)
                                for i, g in enumerate(generators) if i in held])
    train_fakes = np.concatenate([pool.samples(g, config.per_generator, 0, shape=shape)
                                  for i, g in enumerate(generators) if i not in held])
    real, _ = splits.load_split(builder, "train", shape)
    rng = np.random.default_rng(seed)
    real = real[rng.permutation(len(real))]
    val_count = min(len(val_fakes), len(real) // 2)
    parts = [_balanced(real[:val_count], val_fakes, rng),
             _balanced(real[val_count:], train_fakes, rng)]
    return (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]),
            len(parts[0][0]))


def _balanced(real, fakes, rng):
    """(images, labels) of as many real as generated images, shuffled."""
    count = min(len(real), len(fakes))
    images = np.concatenate([real[:count], fakes[rng.permutation(len(fakes))[:count]]])
    labels = np.concatenate([np.ones(count, np.float32), np.zeros(count, np.float32)])
    order = rng.permutation(len(images))
    return images[order], labels[order]


def training_images(generators, builder, per_generator, seed, shape=shapes.DEFAULT_SHAPE):
    """(uint8 images [N, *shape], labels: 1 real, 0 generated), balanced and shuffled;
    shape: the pool's, the real images fitted to it as training fitted them."""
    fakes = np.concatenate([pool.samples(g, per_generator, first_seed=0, shape=shape)
                            for g in generators])
    real, _ = splits.load_split(builder, "train", shape)
    rng = np.random.default_rng(seed)
    return _balanced(real[rng.permutation(len(real))], fakes, rng)


def _dataset(images, labels, batch_size, augment, seed, training, probability=0.5):
    data = tf.data.Dataset.from_tensor_slices((images, labels))
    if training:
        data = data.shuffle(len(images), seed=seed, reshuffle_each_iteration=True)
        if augment:
            data = data.map(lambda x, y: (perturbations.augment(x, augment, probability), y),
                            num_parallel_calls=tf.data.AUTOTUNE)
    data = data.map(lambda x, y: (pipeline.scale_images(x), y))
    return (data.batch(batch_size, drop_remainder=training).prefetch(tf.data.AUTOTUNE)
            .apply(pipeline.without_autotuning))


def train(config, strategy, generators, builder, out_dir, entries=(),
          shape=shapes.DEFAULT_SHAPE):
    """Trains, checkpoints and records a detector (a DetectorConfig) in `out_dir`;
    returns (model, record). entries: the pool as the command line named it; shape: the
    pool's image shape (H, W, C)."""
    if os.path.exists(os.path.join(out_dir, RECORD_FILE)):
        raise ConfigError(f"--out_dir={out_dir} already holds a trained detector; name a "
                          "new folder.")
    batch_size, seed = config.batch_size, config.seed
    if batch_size % strategy.num_replicas_in_sync:
        raise ConfigError(f"--batch_size={batch_size} does not divide across "
                          f"{strategy.num_replicas_in_sync} replicas.")
    images, labels, validation = images_and_validation(generators, builder, config, shape)
    if len(images) - validation < batch_size:
        raise DataError(f"the pool gives {len(images)} images, too few for a batch of "
                        f"{batch_size}; add generators or raise --samples_per_generator.")
    learning_rate = config.learning_rate
    if config.lr_schedule == "cosine":
        # Decays to 0 over the run: the last epochs settle the tails of the score
        # distributions, which TPR at 1% false positives reads.
        steps = config.epochs * ((len(images) - validation) // batch_size)
        learning_rate = keras.optimizers.schedules.CosineDecay(learning_rate, steps)
    tf.keras.utils.set_random_seed(seed)  # shuffling and augmentation draws
    with strategy.scope():
        model = detectors.make_detector(config.architecture, seed, shape)
        model.compile(optimizer=keras.optimizers.Adam(learning_rate),
                      loss=keras.losses.BinaryCrossentropy(from_logits=True),
                      metrics=[keras.metrics.BinaryAccuracy(threshold=0.0,
                                                            name="accuracy")])
    model.fit(
        _dataset(images[validation:], labels[validation:], batch_size, config.augment, seed,
                 True, config.augment_probability),
        validation_data=_dataset(images[:validation], labels[:validation], batch_size, (),
                                 seed, False),
        epochs=config.epochs, verbose=2,
        callbacks=[keras.callbacks.TensorBoard(os.path.join(out_dir, "tensorboard")),
                   keras.callbacks.BackupAndRestore(os.path.join(out_dir, "backup"))])
    tf.train.Checkpoint(detector=model).write(
        os.path.join(layout.checkpoint_dir(out_dir), "detector"))
    # The threshold: the logit that classifies the validation images best (Wang et
    # al.: accuracy at a fixed 0.5 collapses on new generators; calibrate it).
    scores = detection.score_images(model, images[:validation])
    real, fake = scores[labels[:validation] == 1], scores[labels[:validation] == 0]
    if not len(real) or not len(fake):
        raise DataError(f"the validation split ({validation} images) holds no "
                        f"{'real' if not len(real) else 'generated'} image to set the "
                        "threshold on; raise --samples_per_generator.")
    threshold = metrics.best_threshold(real, fake)
    # The probability and the operating point, from the same validation logits.
    fitted = calibration.fit(real, fake)
    record = {"architecture": config.architecture, "augment": list(config.augment),
              "augment_probability": config.augment_probability,
              "pool": list(entries), "generators": [g.name for g in generators],
              "image_shape": [int(d) for d in shape],
              "images": int(len(images)), "validation_images": validation,
              "validation_split": config.validation,
              "epochs": config.epochs, "lr_schedule": config.lr_schedule, "seed": seed,
              "threshold_logit": threshold,
              calibration.TEMPERATURE: fitted.temperature,
              calibration.THRESHOLD_LOGIT: fitted.threshold_logit,
              "validation": _validation_metrics(real, fake, threshold, fitted)}
    files.write_json(os.path.join(out_dir, RECORD_FILE), record)  # whole, and last
    return model, record


def _validation_metrics(real, fake, threshold, fitted):
    """detection_metrics at `threshold`, and the ECE before calibration (T = 1) and
    after (`fitted`) with the operating point's FPR and TPR (calibration_metrics)."""
    before = calibration.calibration_metrics(real, fake, calibration.Calibration())
    return {**metrics.detection_metrics(real, fake, threshold),
            "ece_uncalibrated": before["ece"],
            **calibration.calibration_metrics(real, fake, fitted)}


def read_record(out_dir):
    """The detector.json that `train` wrote in `out_dir`."""
    path = os.path.join(out_dir, RECORD_FILE)
    if not os.path.isfile(path):
        raise DataError(f"{out_dir} holds no trained detector ({RECORD_FILE} is missing); "
                        "pass the --out_dir of `forensics train`.")
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        raise DataError(f"{path} is unreadable ({type(e).__name__}); train the detector "
                        "again into a new --out_dir.") from None


def image_shape(record):
    """(H, W, C) of the images a detector takes (28x28x1 for a record from before shapes
    were recorded)."""
    return tuple(record.get("image_shape") or shapes.DEFAULT_SHAPE)


def load(out_dir):
    """(model, record) of a detector that `train` wrote in `out_dir`."""
    record = read_record(out_dir)
    model = detectors.make_detector(record["architecture"], record["seed"],
                                    image_shape(record))
    tf.train.Checkpoint(detector=model).read(
        os.path.join(layout.checkpoint_dir(out_dir), "detector")).expect_partial()
    return model, record
