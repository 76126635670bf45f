"""Times the package's training step against the article's, in one process, alternating.

    python benchmarks/epoch_time.py                    # the package's defaults, batch 256
    python benchmarks/epoch_time.py --precision=fp32 --cpu_replicas=2
    python benchmarks/epoch_time.py --op_breakdown     # and where the package's step goes
    python benchmarks/epoch_time.py --quick            # under a minute, for a smoke check

Both loops train on the same real images (Fashion-MNIST through the package's data
lookup) at the same global batch. Each round times `--steps` steps of the article's
`train_step` (benchmarks/article.py) and then `--steps` steps of the package's loop;
tracing and compilation are excluded by a warm-up of both. Reports the median images/s
of each, their ratio, the projected seconds per 60,000-image epoch (the article quotes
~600 s on its laptop), the process's peak memory, and writes the same as JSON.
"""

import json
import os
import resource
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from absl import app, flags, logging  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_integer("batch_size", 256, "Global batch size of both loops.")
flags.DEFINE_enum("recipe", "article", ["article", "fast"], "The package's recipe (its "
                  "Adam settings and generator averaging; --batch_size stays as given).")
flags.DEFINE_integer("cpu_replicas", 1, "Replicas of the package's loop (logical CPUs).")
flags.DEFINE_enum("precision", "auto", ["auto", "fp32", "bf16", "fp16"],
                  "The package's precision (auto: as the training CLI chooses).")
flags.DEFINE_enum("jit_compile", "auto", ["auto", "true", "false"],
                  "XLA for the package's step (auto: as the training CLI chooses).")
flags.DEFINE_bool("op_breakdown", False, "Also profile a few package steps and print "
                  "the time per TensorFlow op type.")
flags.DEFINE_integer("steps_per_loop", 1, "The package's steps per tf.function call.")
flags.DEFINE_integer("steps", 20, "Timed steps per loop per round.")
flags.DEFINE_integer("rounds", 3, "Alternating rounds (article, package).")
flags.DEFINE_integer("warmup_steps", 3, "Untimed steps of each loop first.")
flags.DEFINE_bool("quick", False, "A smoke run: 2 rounds of 5 steps.")
flags.DEFINE_string("dataset", "fashion_mnist", "Dataset whose training images are used.")
flags.DEFINE_string("tfds_data_dir", None, "tfds data_dir.")
flags.DEFINE_string("json_out", "runs/epoch_time.json", "Where to write the results.")

ARTICLE_EPOCH_SECONDS = 600  # "each epoch takes approximately 10 minutes"
EPOCH_IMAGES = 60000


def _timed(run_steps, steps):
    started = time.perf_counter()
    run_steps(steps)
    return steps * FLAGS.batch_size / (time.perf_counter() - started)


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)
    import article
    import numpy as np
    import op_profile
    import results as results_file
    import tensorflow as tf
    import tensorflow_datasets as tfds

    from dcgan_dist import cli
    from dcgan_dist.data import pipeline, sources
    from dcgan_dist.training import settings, strategies, train_step
    from dcgan_dist.training.config import TrainConfig

    steps, rounds = (5, 2) if FLAGS.quick else (FLAGS.steps, FLAGS.rounds)
    strategy = strategies.make_strategy("mirrored", FLAGS.cpu_replicas)
    builder = sources.load_builder(FLAGS.dataset, tfds_data_dir=FLAGS.tfds_data_dir)
    images_fn, count = pipeline.tfds_images(builder, "train")

    # The article's loop, fed as the article feeds it.
    train_images = np.stack([ex for ex in tfds.as_numpy(images_fn())]).astype("float32")
    train_images = (train_images - 127.5) / 127.5
    article_batches = iter(tf.data.Dataset.from_tensor_slices(train_images)
                           .shuffle(len(train_images)).batch(FLAGS.batch_size,
                                                             drop_remainder=True).repeat())
    article_step, article_generator = article.make_article_train_step(FLAGS.batch_size)

    def run_article(n):
        for _ in range(n):
            article_step(next(article_batches))
        article_generator.trainable_variables[0].numpy()  # waits for the last update

    # The package's loop, exactly as train_lib runs it.
    jit_compile = cli.TRISTATE[FLAGS.jit_compile]
    config = TrainConfig(workdir="unused", recipe=FLAGS.recipe, batch_size=FLAGS.batch_size,
                         precision=FLAGS.precision, jit_compile=jit_compile,
                         # XLA cannot compile synchronized batch norm (settings.py).
                         sync_batch_norm=False if jit_compile else None)
    config, choices = settings.resolve(config, strategy)
    for choice in choices:
        print(f"package | auto: {choice}")
    built = train_step.build(config, strategy, (images_fn, count))
    config, train_steps, iterator = built.config, built.train_steps, built.iterator()

    def run_package(n):
        for _ in range(n // FLAGS.steps_per_loop):
            metrics = train_steps(iterator, tf.constant(FLAGS.steps_per_loop))
        float(metrics["g_loss"])  # waits for the device

    run_article(FLAGS.warmup_steps)
    run_package(max(FLAGS.warmup_steps, FLAGS.steps_per_loop))
    article_ips, package_ips = [], []
    for r in range(rounds):
        article_ips.append(_timed(run_article, steps))
        package_ips.append(_timed(run_package, steps))
        print(f"round {r + 1}/{rounds} | article: {article_ips[-1]:.1f} images/s | "
              f"package: {package_ips[-1]:.1f} images/s", flush=True)

    article_median = statistics.median(article_ips)
    package_median = statistics.median(package_ips)
    result = {
        "recipe": FLAGS.recipe, "generator_averaging": config.ema,
        "batch_size": FLAGS.batch_size, "cpu_replicas": FLAGS.cpu_replicas,
        "precision": config.precision, "jit_compile": config.jit_compile,
        "steps_per_loop": FLAGS.steps_per_loop,
        "steps_per_round": steps, "rounds": rounds,
        "article_images_per_sec": round(article_median, 1),
        "package_images_per_sec": round(package_median, 1),
        "speedup": round(package_median / article_median, 3),
        "article_epoch_sec": round(EPOCH_IMAGES / article_median, 1),
        "package_epoch_sec": round(EPOCH_IMAGES / package_median, 1),
        "article_quoted_epoch_sec": ARTICLE_EPOCH_SECONDS,
        "speedup_vs_quoted_epoch": round(ARTICLE_EPOCH_SECONDS
                                         / (EPOCH_IMAGES / package_median), 2),
        "peak_memory_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "device": "cpu" if not tf.config.list_physical_devices("GPU") else "gpu",
    }
    if FLAGS.op_breakdown:
        result["op_breakdown_ms_per_step"] = op_profile.breakdown(
            lambda: run_package(FLAGS.steps_per_loop * max(1, 5 // FLAGS.steps_per_loop)),
            steps=FLAGS.steps_per_loop * max(1, 5 // FLAGS.steps_per_loop))
        print(op_profile.format_table(result["op_breakdown_ms_per_step"]))
    print(json.dumps(result, indent=2))
    results_file.write_json(FLAGS.json_out, result)


if __name__ == "__main__":
    app.run(main)
