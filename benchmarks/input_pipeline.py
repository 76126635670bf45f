"""The training input pipeline alone, in images/s, so input and compute can be told apart.

    python benchmarks/input_pipeline.py                 # batch 256, the package's dtype
    python benchmarks/input_pipeline.py --cpu_replicas=2 --compare_to=runs/epoch_time.json

Drains the package's own distributed dataset (pipeline.make_dataset_fn under the same
strategy as training) inside a compiled loop, as the training step consumes it, and
reports the first epoch (reading the prepared tfds files into the cache) and the epochs
after it (from the in-memory cache: shuffle, batch, slice per replica, scale). With
--compare_to, it also prints how many times faster than that run's training step it is.
"""

import json
import time

from dcgan_dist import cli  # first: TensorFlow's log, and the process set up as the CLI does

from absl import app, flags, logging  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_integer("batch_size", 256, "Global batch size.")
flags.DEFINE_integer("cpu_replicas", 1, "Replicas (logical CPUs) the batches are split over.")
cli.define_precision_flag("Decides the dtype the pipeline delivers (auto: as the "
                          "training CLI).")
flags.DEFINE_integer("epochs", 3, "Epochs to drain: the first fills the cache.")
flags.DEFINE_string("dataset", "fashion_mnist", "Dataset whose training images are used.")
flags.DEFINE_string("tfds_data_dir", None, "tfds data_dir.")
flags.DEFINE_string("compare_to", "", "JSON written by epoch_time.py: print the ratio.")
flags.DEFINE_string("json_out", "runs/input_pipeline.json", "Where to write the results.")


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)
    import results as results_file
    import tensorflow as tf

    from dcgan_dist import process_setup
    from dcgan_dist.data import pipeline, sources
    from dcgan_dist.training import settings, strategies
    from dcgan_dist.training.config import TrainConfig

    strategy = strategies.make_strategy("mirrored", FLAGS.cpu_replicas)
    config, _ = settings.resolve(TrainConfig(workdir="unused", batch_size=FLAGS.batch_size,
                                             precision=FLAGS.precision), strategy)
    builder = sources.load_builder(FLAGS.dataset, tfds_data_dir=FLAGS.tfds_data_dir)
    images_fn, count = pipeline.tfds_images(builder, "train")
    per_epoch = pipeline.steps_per_epoch(count, FLAGS.batch_size)
    iterator = iter(strategy.distribute_datasets_from_function(pipeline.make_dataset_fn(
        images_fn, count, FLAGS.batch_size, 0, dtype=config.compute_dtype)))
    process_setup.restore_malloc()  # as train_step.Built.iterator does

    def touch(images):  # reads one value per image, so no batch can be skipped
        return tf.reduce_sum(tf.cast(images[:, 0, 0, 0], tf.float32))

    @tf.function
    def drain(num_batches):
        total = tf.constant(0.0)
        for _ in tf.range(num_batches):
            total += strategy.reduce(tf.distribute.ReduceOp.SUM,
                                     strategy.run(touch, args=(next(iterator),)), axis=None)
        return total

    rates = []
    for epoch in range(FLAGS.epochs):
        started = time.perf_counter()
        float(drain(tf.constant(per_epoch)))
        rates.append(per_epoch * FLAGS.batch_size / (time.perf_counter() - started))
        print(f"epoch {epoch + 1}: {rates[-1]:.0f} images/s"
              + (" (reads the files into the cache; includes tracing)" if epoch == 0 else ""))
    cached = max(rates[1:]) if len(rates) > 1 else rates[0]
    result = {"batch_size": FLAGS.batch_size, "cpu_replicas": FLAGS.cpu_replicas,
              "dtype": config.compute_dtype, "first_epoch_images_per_sec": round(rates[0]),
              "cached_images_per_sec": round(cached)}
    if FLAGS.compare_to:
        with open(FLAGS.compare_to) as f:
            step = json.load(f)["package_images_per_sec"]
        result["training_step_images_per_sec"] = step
        result["pipeline_over_step"] = round(cached / step, 1)
    print(json.dumps(result, indent=2))
    results_file.write_json(FLAGS.json_out, result)


if __name__ == "__main__":
    app.run(main)
