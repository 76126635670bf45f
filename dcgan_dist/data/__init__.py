"""Data: MNIST-format IDX files, the tfds builder over them, dataset lookup, input pipeline."""
