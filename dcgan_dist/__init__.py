"""dcgan_dist: the TensorFlow DCGAN tutorial trained by a tf.distribute custom loop."""

__version__ = "0.1.0"
