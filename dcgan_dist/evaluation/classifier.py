"""The feature space of the sample-quality metrics: a small CNN trained on the dataset.

Inception weights cannot be fetched offline, and on 28x28 grey images the usual choice is a
classifier of the dataset itself (TF-GAN's MNIST score did this). Its 128-unit
penultimate layer gives the features of FID, KID and precision/recall; its softmax gives
the class probabilities of the classifier score and the class coverage.

It is trained once per dataset, deterministically (seeded initializers, a seeded data
order, a fixed recipe: the same weights on every run on the same machine type), in about
20 seconds on two CPU cores (5 epochs of a 16/32-filter net), and cached beside the
prepared tfds data:

    TFDS_DATA_DIR/<name>/<config>/<version>/dcgan_dist_classifier/v1/
        classifier.weights.h5   the weights
        classifier.json         test accuracy, training time and the recipe

Fashion-MNIST: 91.1% test accuracy (the metrics need >= 90%); MNIST: expected > 99%
(not measured here: MNIST is not available offline). Colour and larger images (a folder
with class subfolders, or a tfds dataset at another --image_size) get the same network
at their shape, cached per shape.

Unlabelled data (a folder without class subfolders) has nothing to train it on:
`untrained` gives the same network with its seeded initial weights, a fixed random
feature space. FID, KID and precision/recall are computed in it (random convolutional
features still separate image statistics, though less sharply than trained ones: Naeem
et al. 2020 use them as a label-free embedding); the classifier score and the class
coverage are skipped, since they need class probabilities.
"""

import json
import os
import tempfile
import time

import keras
import numpy as np
import tensorflow as tf
from keras import layers

from dcgan_dist import files, shapes
from dcgan_dist.data import pipeline, splits
from dcgan_dist.errors import DataError
from dcgan_dist.evaluation.metrics import Embedding

RECIPE = "v1"  # bump with any change below: caches of another recipe are not reused
EPOCHS = 5
MIN_STEPS = 200  # a small dataset's epochs repeat up to this many steps
BATCH_SIZE = 256
LEARNING_RATE = 3e-3  # cosine-decayed to 0 over the run
SEED = 0
FEATURE_DIM = 128
# What the features must be worth before the metrics mean much (the bar).
REQUIRED_ACCURACY = {"mnist": 0.99, "fashion_mnist": 0.90}
WEIGHTS_FILE = "classifier.weights.h5"
RECORD_FILE = "classifier.json"


def make_classifier_model(num_classes, image_shape=shapes.DEFAULT_SHAPE):
    """Images in [-1, 1] [N, H, W, C] -> (features [N, 128], logits [N, classes])."""
    def init(index):
        return keras.initializers.GlorotUniform(seed=SEED * 100 + index)

    inputs = keras.Input(tuple(image_shape))
    x = layers.Conv2D(16, 3, padding="same", activation="relu", kernel_initializer=init(1),
                      dtype="float32")(inputs)
    x = layers.MaxPooling2D(dtype="float32")(x)
    x = layers.Conv2D(32, 3, padding="same", activation="relu", kernel_initializer=init(2),
                      dtype="float32")(x)
    x = layers.MaxPooling2D(dtype="float32")(x)
    x = layers.Flatten(dtype="float32")(x)
    features = layers.Dense(FEATURE_DIM, activation="relu", kernel_initializer=init(3),
                            dtype="float32", name="features")(x)
    logits = layers.Dense(num_classes, kernel_initializer=init(4), dtype="float32",
                          name="logits")(features)
    return keras.Model(inputs, [features, logits], name="feature_classifier")


def is_labelled(builder):
    return "label" in builder.info.features


def class_count(builder):
    if not is_labelled(builder):
        raise DataError(f"{builder.info.full_name} has no labels; the metrics' feature "
                        "classifier needs a labelled dataset such as mnist, "
                        "fashion_mnist or a folder with class subfolders.")
    return builder.info.features["label"].num_classes



class FeatureClassifier:
    """The trained classifier: `embed(images)` and the `record` of how good it is."""

    def __init__(self, model, record):
        self.model = model
        self.record = record

    @property
    def test_accuracy(self):
        return self.record["test_accuracy"]

    @property
    def trained(self):
        """False for `untrained`'s random features (no class probabilities worth using)."""
        return self.record.get("features") != "untrained"

    def embed(self, images, batch_size=1000):
        """Embedding(features float32 [N, 128], probabilities float32 [N, classes]) of
        uint8 images [N, H, W, C]; eager batches, so nothing is traced."""
        features, probabilities = [], []
        for i in range(0, len(images), batch_size):
            f, logits = self.model(pipeline.scale_images(images[i:i + batch_size]),
                                   training=False)
            features.append(f.numpy())
            probabilities.append(tf.nn.softmax(logits).numpy())
        return Embedding(np.concatenate(features), np.concatenate(probabilities))

    def accuracy(self, images, labels):
        return float(np.mean(self.embed(images).probabilities.argmax(1) == labels))


def _train(builder, num_classes, image_shape):
    """A freshly trained model, deterministically: fixed seeds, fixed order, one trace."""
    images, labels = splits.load_split(builder, "train", image_shape)
    model = make_classifier_model(num_classes, image_shape)
    batch_size = min(BATCH_SIZE, len(images))
    steps_per_epoch = len(images) // batch_size
    # A small folder trains for more epochs, to MIN_STEPS steps in all.
    epochs = max(EPOCHS, -(-MIN_STEPS // steps_per_epoch))
    optimizer = keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(
        LEARNING_RATE, epochs * steps_per_epoch))

    @tf.function
    def train_step(x, y):
        with tf.GradientTape() as tape:
            _, logits = model(pipeline.scale_images(x), training=True)
            loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(y, logits))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    order = np.random.default_rng(SEED)
    for _ in range(epochs):
        permutation = order.permutation(len(images))
        for i in range(steps_per_epoch):
            batch = permutation[i * batch_size:(i + 1) * batch_size]
            train_step(tf.constant(images[batch]), tf.constant(labels[batch]))
    return model, epochs


def default_cache_dir(builder, image_shape=None):
    """Beside the prepared data; one folder per image shape when the run fits the data
    to another shape than its own."""
    name = RECIPE
    if image_shape is not None and tuple(image_shape) != pipeline.native_shape(builder):
        name += "_" + shapes.name(image_shape)
    return os.path.join(builder.data_dir, "dcgan_dist_classifier", name)


def _write(model, record, cache_dir):
    """Weights first, record last, each by an atomic rename: a record means a whole cache."""
    os.makedirs(cache_dir, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache_dir) as scratch:
        weights = os.path.join(scratch, WEIGHTS_FILE)  # Keras wants the .weights.h5 ending
        model.save_weights(weights)
        os.replace(weights, os.path.join(cache_dir, WEIGHTS_FILE))
    files.write_json(os.path.join(cache_dir, RECORD_FILE), record)


def _read(cache_dir, num_classes, image_shape):
    try:
        with open(os.path.join(cache_dir, RECORD_FILE)) as f:
            record = json.load(f)
        if record.get("image_shape", list(shapes.DEFAULT_SHAPE)) != list(image_shape):
            return None  # a cache of another shape (a --classifier_dir reused)
        model = make_classifier_model(num_classes, image_shape)
        model.load_weights(os.path.join(cache_dir, WEIGHTS_FILE))
    except (OSError, ValueError):
        return None  # absent, or cut short before the record was written: train again
    return FeatureClassifier(model, record)


def untrained(image_shape):
    """The classifier's network with its seeded initial weights: the fixed random
    feature space of unlabelled data (see the module's docstring)."""
    return FeatureClassifier(make_classifier_model(1, image_shape),
                             {"features": "untrained", "test_accuracy": None,
                              "image_shape": list(image_shape), "seed": SEED})


def load_or_train(builder, dataset=None, cache_dir=None, image_shape=None):
    """The cached classifier of `builder`'s dataset, trained and cached on first use.

    Args:
      builder: a prepared tfds builder with `image` and `label` features.
      dataset: the dataset's usual name (mnist, fashion_mnist), for the accuracy bar.
      cache_dir: where to keep it (default: beside the prepared data, see above).
      image_shape: the images' shape (default: the data's own).
    """
    image_shape = tuple(image_shape or pipeline.native_shape(builder))
    cache_dir = cache_dir or default_cache_dir(builder, image_shape)
    classes = class_count(builder)
    cached = _read(cache_dir, classes, image_shape)
    if cached is not None:
        return cached
    started = time.perf_counter()
    model, epochs = _train(builder, classes, image_shape)
    seconds = time.perf_counter() - started
    classifier = FeatureClassifier(model, {})
    test_images, test_labels = splits.load_split(builder, "test", image_shape)
    required = REQUIRED_ACCURACY.get(dataset)
    classifier.record = {
        "dataset": builder.info.full_name, "recipe": RECIPE,
        "image_shape": list(image_shape),
        "test_accuracy": classifier.accuracy(test_images, test_labels),
        "required_accuracy": required, "train_seconds": round(seconds, 1),
        "epochs": epochs, "batch_size": BATCH_SIZE, "learning_rate": LEARNING_RATE,
        "seed": SEED, "feature_dim": FEATURE_DIM}
    try:
        _write(model, classifier.record, cache_dir)
    except OSError as e:
        raise DataError(f"cannot cache the metrics' classifier in {cache_dir} ({e}); pass "
                        "--classifier_dir=A_WRITABLE_FOLDER.") from None
    accuracy = classifier.test_accuracy
    print(f"classifier | trained on {builder.info.full_name} in {seconds:.1f} s | test "
          f"accuracy: {accuracy:.4f} | cached in {cache_dir}", flush=True)
    if required is not None and accuracy < required:
        print(f"classifier | warning: test accuracy {accuracy:.4f} is below {required}; "
              "its features make weak metrics", flush=True)
    return classifier
