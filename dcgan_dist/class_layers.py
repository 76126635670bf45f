"""The layers that give the networks a class (train --conditional, models.py): the
generator's class-dependent batch-norm scale and shift, and the projection
discriminator's class term."""

import keras
import tensorflow as tf
from keras import layers


@keras.saving.register_keras_serializable(package="dcgan_dist")
class ClassAffine(layers.Layer):
    """Conditional batch norm's second half (de Vries et al. 2017, as in SNGAN and
    BigGAN): [normalized x [N, ..., C], labels [N]] -> x * gamma[label] + beta[label],
    one scale and shift per class and channel, starting at 1 and 0."""

    def __init__(self, num_classes, **kwargs):
        super().__init__(**kwargs)
        self.num_classes = int(num_classes)

    def build(self, input_shape):
        channels = input_shape[0][-1]
        self.gamma = self.add_weight(shape=(self.num_classes, channels), name="gamma",
                                     initializer="ones")
        self.beta = self.add_weight(shape=(self.num_classes, channels), name="beta",
                                    initializer="zeros")

    def call(self, inputs):
        x, labels = inputs
        shape = [-1] + [1] * (len(x.shape) - 2) + [x.shape[-1]]  # broadcast over H, W
        gamma = tf.reshape(tf.gather(tf.cast(self.gamma, x.dtype), labels), shape)
        beta = tf.reshape(tf.gather(tf.cast(self.beta, x.dtype), labels), shape)
        return x * gamma + beta

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes}


@keras.saving.register_keras_serializable(package="dcgan_dist")
class ClassProjection(layers.Layer):
    """The projection discriminator's class term (Miyato & Koyama 2018): [features h
    [N, D], labels [N]] -> <embedding[label], h> as [N, 1], in float32 like the logit
    it is added to. `all_classes(h)` gives every class's term, [N, classes]."""

    def __init__(self, num_classes, seed=0, **kwargs):
        super().__init__(**kwargs)
        self.num_classes, self.seed = int(num_classes), int(seed)

    def build(self, input_shape):
        self.embedding = self.add_weight(
            shape=(self.num_classes, input_shape[0][-1]), name="embedding",
            initializer=keras.initializers.GlorotUniform(seed=self.seed))

    def call(self, inputs):
        features, labels = inputs
        chosen = tf.gather(tf.cast(self.embedding, features.dtype), labels)
        return tf.reduce_sum(chosen * features, axis=1, keepdims=True)

    def all_classes(self, features):
        features = tf.cast(features, self.compute_dtype)
        return tf.matmul(features, tf.cast(self.embedding, features.dtype),
                         transpose_b=True)

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes,
                "seed": self.seed}
