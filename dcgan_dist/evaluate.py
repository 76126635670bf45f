"""Evaluate a training run's checkpoint: FID, KID, classifier score, class coverage,
precision/recall and the discriminator's ROC-AUC as a detector of generated images.

The latest checkpoint of a workdir, against the real test split (10,000 images):
    python -m dcgan_dist.evaluate --workdir=runs/dcgan
A named one (a step, or a checkpoint path), on fewer images:
    python -m dcgan_dist.evaluate --workdir=runs/dcgan --checkpoint=2340 --num_samples=2000

Prints one line of metrics, appends them as a JSON line to WORKDIR/metrics.jsonl (with
the step and the checkpoint path) and writes them to TensorBoard under WORKDIR/eval.
The first evaluation of a dataset trains its feature classifier (~20 s on two cores) and
caches it beside the prepared data.

Exit statuses: dcgan_dist/errors.py (3: a missing or damaged checkpoint, or missing
data, a --data_dir without the t10k test files included).
"""

from absl import flags

from dcgan_dist import cli

FLAGS = flags.FLAGS
cli.define_checkpoint_flags()
flags.DEFINE_integer("num_samples", 10000, "Generated images, and real test images.")
flags.DEFINE_integer("seed", 0, "The samples are those of seeds seed .. seed+N-1.")
cli.define_data_flags(of_run=True)
flags.DEFINE_string("classifier_dir", None, "Where to cache the feature classifier "
                    "(default: beside the prepared data).")
flags.DEFINE_bool("compare_earlier", True, "Also score the discriminator against the "
                  "samples of the workdir's earlier checkpoints.")


def evaluate():
    from dcgan_dist import workdir as layout
    from dcgan_dist.inference import runs
    path = layout.resolve_checkpoint(FLAGS.workdir, FLAGS.checkpoint)
    # The run's own images by default: a run trained on an IDX folder evaluates against
    # that folder's test files without --data_dir given again.
    dataset, data_dir = layout.record_data(layout.checkpoint_record(path), FLAGS.dataset,
                                           FLAGS.data_dir)
    # TensorFlow: only once the flags are known good.
    from dcgan_dist.evaluation import evaluator
    scorer = evaluator.Evaluator(
        dataset, data_dir, FLAGS.tfds_data_dir, workdir=FLAGS.workdir,
        num_samples=FLAGS.num_samples, seed=FLAGS.seed,
        classifier_dir=FLAGS.classifier_dir, compare_earlier=FLAGS.compare_earlier,
        image_shape=runs.image_shape(path))
    if scorer.note:
        print(f"evaluate | note: {scorer.note}.", flush=True)
    generator, discriminator, step = runs.load_networks(path, FLAGS.raw_generator)
    results = scorer(generator, discriminator, step, checkpoint=path)
    scorer.close()
    print(f"evaluate | step: {step} | checkpoint: {path} | "
          + evaluator.format_results(results), flush=True)


if __name__ == "__main__":
    cli.run(evaluate)
