"""A faithful copy of the article's training step, the baseline of the benchmarks.

Models, losses, optimizers and `train_step` as the seed article writes them (Keras
Sequential models with `input_shape`, `BinaryCrossentropy(from_logits=True)`, two
`Adam(1e-4)`, noise of the full BATCH_SIZE drawn with `tf.random.normal` inside a
`tf.function`); only wrapped in a function so the batch size can be chosen.

As a script it is the article's loop as its reader runs it, a plain process fed from a
numpy array through `tf.data` (Fashion-MNIST's IDX files stand in for MNIST), and prints
its steady images/s as one JSON line (timing.py); benchmarks/epoch_time.py runs it:

    python benchmarks/article.py --batch_size=256
    python benchmarks/article.py --batch_size=256 --process_setup   # with the package's

With --train_epochs it instead trains as the article does (every batch of a shuffled
epoch, the last one short) and writes --num_samples generated images, uint8 as
`dcgan_dist.generate` writes them, to --samples: the forensics protocol's generator
written from the article's own code (docs/forensics.md):

    python benchmarks/article.py --train_epochs=5 --seed=0 --samples=runs/article.npz
"""

import argparse
import json
import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if "--process_setup" in sys.argv:
        # Before TensorFlow loads, as the package's commands do (process_setup.py).
        from dcgan_dist import process_setup
        process_setup.setup()

import tensorflow as tf  # noqa: E402
from tensorflow.keras import layers  # noqa: E402

NOISE_DIM = 100


def make_generator_model():
    model = tf.keras.Sequential()
    model.add(layers.Dense(7 * 7 * 256, use_bias=False, input_shape=(100,)))
    model.add(layers.BatchNormalization())
    model.add(layers.LeakyReLU())
    model.add(layers.Reshape((7, 7, 256)))
    model.add(layers.Conv2DTranspose(128, (5, 5), strides=(1, 1), padding="same",
                                     use_bias=False))
    model.add(layers.BatchNormalization())
    model.add(layers.LeakyReLU())
    model.add(layers.Conv2DTranspose(64, (5, 5), strides=(2, 2), padding="same",
                                     use_bias=False))
    model.add(layers.BatchNormalization())
    model.add(layers.LeakyReLU())
    model.add(layers.Conv2DTranspose(1, (5, 5), strides=(2, 2), padding="same",
                                     use_bias=False, activation="tanh"))
    return model


def make_discriminator_model():
    model = tf.keras.Sequential()
    model.add(layers.Conv2D(64, (5, 5), strides=(2, 2), padding="same",
                            input_shape=[28, 28, 1]))
    model.add(layers.LeakyReLU())
    model.add(layers.Dropout(0.3))
    model.add(layers.Conv2D(128, (5, 5), strides=(2, 2), padding="same"))
    model.add(layers.LeakyReLU())
    model.add(layers.Dropout(0.3))
    model.add(layers.Flatten())
    model.add(layers.Dense(1))
    return model


def make_article_train_step(batch_size):
    """(the article's `train_step(images)`, its generator), with their own optimizers."""
    generator = make_generator_model()
    discriminator = make_discriminator_model()
    cross_entropy = tf.keras.losses.BinaryCrossentropy(from_logits=True)

    def discriminator_loss(real_output, fake_output):
        real_loss = cross_entropy(tf.ones_like(real_output), real_output)
        fake_loss = cross_entropy(tf.zeros_like(fake_output), fake_output)
        return real_loss + fake_loss

    def generator_loss(fake_output):
        return cross_entropy(tf.ones_like(fake_output), fake_output)

    generator_optimizer = tf.keras.optimizers.Adam(1e-4)
    discriminator_optimizer = tf.keras.optimizers.Adam(1e-4)

    @tf.function
    def train_step(images):
        noise = tf.random.normal([batch_size, NOISE_DIM])
        with tf.GradientTape() as gen_tape, tf.GradientTape() as disc_tape:
            generated_images = generator(noise, training=True)
            real_output = discriminator(images, training=True)
            fake_output = discriminator(generated_images, training=True)
            gen_loss = generator_loss(fake_output)
            disc_loss = discriminator_loss(real_output, fake_output)
        gradients_of_generator = gen_tape.gradient(gen_loss, generator.trainable_variables)
        gradients_of_discriminator = disc_tape.gradient(
            disc_loss, discriminator.trainable_variables)
        generator_optimizer.apply_gradients(
            zip(gradients_of_generator, generator.trainable_variables))
        discriminator_optimizer.apply_gradients(
            zip(gradients_of_discriminator, discriminator.trainable_variables))

    return train_step, generator


def _main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch_size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=20, help="timed steps per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup_steps", type=int, default=5)
    parser.add_argument("--data_dir", default="/usr/share/datasets/fashion-mnist",
                        help="MNIST-format IDX files (Debian's dataset-fashion-mnist)")
    parser.add_argument("--process_setup", action="store_true",
                        help="set the process up as the package's commands do")
    parser.add_argument("--train_epochs", type=int, default=0,
                        help="train this many epochs and write --samples (no timing)")
    parser.add_argument("--samples", help="the .npz the trained generator's images go to")
    parser.add_argument("--num_samples", type=int, default=10000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    import timing
    from dcgan_dist.data import idx  # numpy and gzip only

    train_images, _ = idx.read_split(args.data_dir, "train")
    train_images = (train_images.astype("float32") - 127.5) / 127.5  # as the article
    if args.train_epochs:
        _train_and_sample(train_images, args)
        return
    batches = iter(tf.data.Dataset.from_tensor_slices(train_images)
                   .shuffle(len(train_images)).batch(args.batch_size).repeat())
    train_step, generator = make_article_train_step(args.batch_size)

    def run_steps(n):
        for _ in range(n):
            train_step(next(batches))
        generator.trainable_variables[0].numpy()  # waits for the last update

    result = timing.steady_rate(run_steps, args.batch_size, args.steps, args.rounds,
                                args.warmup_steps)
    result.update(loop="article", batch_size=args.batch_size,
                  process_setup=args.process_setup)
    print(json.dumps(result), flush=True)


def _train_and_sample(train_images, args):
    """The article's `train(dataset, epochs)` without its images and checkpoints, then
    --num_samples images of the trained generator to --samples (written whole)."""
    import io
    import time

    import numpy as np

    from dcgan_dist import files, images as image_utils
    if not args.samples:
        sys.exit("--train_epochs needs --samples, the .npz to write the images to.")
    tf.keras.utils.set_random_seed(args.seed)  # weights, shuffling and noise
    dataset = (tf.data.Dataset.from_tensor_slices(train_images)
               .shuffle(len(train_images)).batch(args.batch_size))
    train_step, generator = make_article_train_step(args.batch_size)
    for epoch in range(args.train_epochs):
        start = time.time()
        for image_batch in dataset:
            train_step(image_batch)
        print(f"article | epoch {epoch + 1}: {time.time() - start:.1f} s", flush=True)
    noise = tf.random.stateless_normal([args.num_samples, NOISE_DIM], seed=[args.seed, 1])
    # Quantized as real images are stored: no detector can tell these fakes by their
    # range or rounding.
    images = image_utils.to_uint8(np.concatenate(
        [generator(noise[i:i + 1000], training=False).numpy()
         for i in range(0, args.num_samples, 1000)]))
    buffer = io.BytesIO()
    np.savez(buffer, images=images[..., 0])
    os.makedirs(os.path.dirname(os.path.abspath(args.samples)), exist_ok=True)
    files.write_bytes(args.samples, buffer.getvalue())
    print(f"article | {len(images)} images to {args.samples}", flush=True)


if __name__ == "__main__":
    _main()
