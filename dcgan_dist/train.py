"""Train the article's DCGAN under a tf.distribute strategy.

One device or all GPUs of this host:
    python -m dcgan_dist.train --strategy=mirrored --dataset=fashion_mnist
Several replicas on a machine without GPUs (logical CPU devices):
    python -m dcgan_dist.train --strategy=mirrored --cpu_replicas=4
Several hosts (TF_CONFIG set on each, see launch/):
    python -m dcgan_dist.train --strategy=multi_worker --workdir=/shared/run
A Cloud TPU:
    python -m dcgan_dist.train --strategy=tpu --tpu=NAME --precision=bf16
Your own images (class subfolders give labels), in colour at 64x64:
    python -m dcgan_dist.train --data_dir=FOLDER --image_size=64 --channels=3
A generator that draws the class it is asked for (labelled data):
    python -m dcgan_dist.train --dataset=fashion_mnist --conditional
Then: tensorboard --logdir=WORKDIR

Every flag: --helpfull, or docs/flags.md. Exit statuses: dcgan_dist/errors.py.
"""

from absl import flags

from dcgan_dist import cli  # first: it quiets TensorFlow's C++ log before TF loads
from dcgan_dist.options import GENERATORS  # noqa: E402

FLAGS = flags.FLAGS
cli.define_strategy_flags()
cli.define_data_flags()
flags.DEFINE_integer("image_size", None, "Square image size the networks are built for "
                     "(28, 32, 64, ...; default: the data's own). Larger images are "
                     "centre-cropped and resized; smaller ones are refused.")
flags.DEFINE_integer("channels", None, "1 (grey) or 3 (colour); default: the data's own.")
flags.DEFINE_string("split", "train", "tfds split to train on, e.g. train or train[:10%].")
flags.DEFINE_string("workdir", "runs/dcgan", "Checkpoints, images, GIF and TensorBoard "
                    "events; a run resumes from the latest checkpoint here.")
flags.DEFINE_integer("epochs", 50, "Epochs to train (the article: 50).")
flags.DEFINE_enum("recipe", "article", ["article", "fast"],
                  "Hyper-parameters: article (the seed's: Adam 1e-4, beta1 0.9, batch 256, "
                  "no averaging) or fast (Adam 2e-4, beta1 0.5, batch 64, an averaged "
                  "generator). The flags below override single values; see "
                  "training/recipes.py.")
flags.DEFINE_enum("generator", "dcgan", list(GENERATORS),
                  "Generator architecture: the article's transposed convolutions, "
                  "nearest-neighbour or bilinear upsampling then convolution (resize_conv, "
                  "bilinear), or sub-pixel convolution (subpixel, depth-to-space).")
flags.DEFINE_string("diffaugment", "", "Differentiable augmentation of every image the "
                    "discriminator sees, real and generated (DiffAugment): a "
                    "comma-separated list of color, translation, cutout; empty: off. For "
                    "a discriminator that memorises its images (D(x) climbing toward 1 "
                    "as FID rises); measured slower on 600-60,000 images in minutes-long "
                    "runs (docs/small_data.md). On grey images color is brightness and "
                    "contrast.")
flags.DEFINE_bool("conditional", False, "Class-conditional training: the generator "
                  "draws the class it is asked for, the discriminator judges each image "
                  "with its class (a projection discriminator). Needs labelled data (a "
                  "tfds dataset with labels, IDX labels, or class subfolders); generate "
                  "--class then picks classes (docs/usage.md#class-conditional-runs).")
flags.DEFINE_enum("conditioning", "batchnorm", ["batchnorm", "input"],
                  "With --conditional, how the generator takes the class: conditional "
                  "batch norm, a scale and shift per class in every batch norm "
                  "(batchnorm), or a learned class embedding beside the noise (input); "
                  "measured in docs/conditional.md.")
flags.DEFINE_float("class_loss", None, "With --conditional, the weight of a "
                   "classification loss on the discriminator's logit of every class: D "
                   "learns to tell the real images' classes, G to draw images of the class "
                   "asked for (default: 1; 0: the projection alone; docs/conditional.md).")
flags.DEFINE_integer("batch_size", None, "Global batch size, over all replicas "
                     "(default: the recipe's).")
flags.DEFINE_integer("max_steps", 0, "Stop at this global step (0: no limit).")
flags.DEFINE_integer("seed", 0, "Seed of data order, noise, dropout and initial weights.")
flags.DEFINE_float("learning_rate", None, "Adam learning rate of both networks "
                   "(default: the recipe's).")
flags.DEFINE_float("g_learning_rate", None, "The generator's Adam learning rate.")
flags.DEFINE_float("d_learning_rate", None, "The discriminator's Adam learning rate.")
flags.DEFINE_float("beta1", None, "Adam's beta1, both networks (default: the recipe's).")
flags.DEFINE_float("beta2", None, "Adam's beta2, both networks (default: the recipe's).")
flags.DEFINE_float("ema_decay", None, "Average the generator's weights with this fixed "
                   "decay per step (0: no averaging). Grids, GIF, evaluation, generate "
                   "and export then use the averaged generator.")
flags.DEFINE_float("ema_halflife_images", None, "Or average them with this half-life, "
                   "in images seen (StyleGAN2's G_ema).")
flags.DEFINE_float("ema_rampup", None, "With --ema_halflife_images: the half-life is at "
                   "most this share of the images seen so far (0: no ramp-up).")
flags.DEFINE_integer("checkpoint_every_epochs", 5, "Save a checkpoint every N epochs "
                     "(and at the end).")
flags.DEFINE_integer("keep_checkpoints", 5, "Checkpoints to keep.")
flags.DEFINE_integer("save_every_steps", 0, "Also save every N global steps, bounding "
                     "what a hard kill can lose (0: only per --checkpoint_every_epochs).")
flags.DEFINE_bool("deterministic", False, "TensorFlow op determinism: a resumed run ends "
                  "bitwise equal to an uninterrupted one (slower on some devices).")
flags.DEFINE_string("steps_per_loop", "auto", "Training steps per tf.function call "
                    "(auto: enough for about 2,048 images, so small batches do not pay "
                    "Python's per-call cost every step; 1 at batch 2,048 and above). "
                    "Summaries are the mean of each call's steps.")
flags.DEFINE_enum("sync_batch_norm", "auto", ["auto", "true", "false"],
                  "Synchronize batch-norm statistics across replicas (auto: when there "
                  "are several).")
cli.define_precision_flag(
    "Compute precision: bf16 and fp16 are Keras mixed precision (fp16 with dynamic loss "
    "scaling); logits, losses and batch-norm statistics stay float32. auto: bf16 on TPUs "
    "and on CPUs with AVX512_BF16/AMX, fp16 on GPUs with tensor cores, else fp32; the log "
    "says which and why.")
flags.DEFINE_enum("jit_compile", "auto", ["auto", "true", "false"],
                  "Compile each step's forward and backward pass with XLA. auto: off on "
                  "CPUs and GPUs (slower on CPUs, as measured), TPUs always compile.")
flags.DEFINE_enum("on_nan", "stop", ["stop", "rollback"],
                  "A NaN or infinite loss: stop with an error, or roll back to the last "
                  "checkpoint with the learning rates halved (at most 3 times).")
flags.DEFINE_integer("eval_every_epochs", 0, "Every N epochs, measure FID, KID, "
                     "classifier score, class coverage, precision/recall and the "
                     "discriminator's ROC-AUC (as python -m dcgan_dist.evaluate does) and "
                     "record them in TensorBoard and metrics.jsonl (0: never).")
flags.DEFINE_integer("eval_samples", 10000, "Generated (and real test) images per "
                     "evaluation.")
flags.DEFINE_integer("eval_every_images", 0, "Also evaluate every N images trained "
                     "(rounded up to whole steps; 0: never).")
flags.DEFINE_bool("eval_earlier", True, "Each evaluation also scores the discriminator "
                  "against the generator of every earlier checkpoint in the workdir "
                  "(one generation of --eval_samples images each).")
flags.DEFINE_enum("progress_bar", "auto", ["auto", "true", "false"],
                  "Progress bar within an epoch (auto: when stdout is a terminal).")


def _config_from_flags():
    from dcgan_dist.training import recipes
    from dcgan_dist.training.config import TrainConfig
    return TrainConfig(
        workdir=FLAGS.workdir, strategy=FLAGS.strategy, cpu_replicas=FLAGS.cpu_replicas,
        tpu=FLAGS.tpu, deterministic=FLAGS.deterministic, dataset=FLAGS.dataset,
        data_dir=FLAGS.data_dir, tfds_data_dir=FLAGS.tfds_data_dir, split=FLAGS.split,
        image_size=FLAGS.image_size, channels=FLAGS.channels,
        epochs=FLAGS.epochs, max_steps=FLAGS.max_steps, seed=FLAGS.seed, recipe=FLAGS.recipe,
        generator=FLAGS.generator, diffaugment=FLAGS.diffaugment,
        conditional=FLAGS.conditional, conditioning=FLAGS.conditioning,
        class_loss=FLAGS.class_loss,
        learning_rate=FLAGS.learning_rate,
        **{name: getattr(FLAGS, name) for name in recipes.FIELDS},
        checkpoint_every_epochs=FLAGS.checkpoint_every_epochs,
        keep_checkpoints=FLAGS.keep_checkpoints, save_every_steps=FLAGS.save_every_steps,
        steps_per_loop=cli.steps_per_loop(FLAGS.steps_per_loop),
        sync_batch_norm=cli.TRISTATE[FLAGS.sync_batch_norm], precision=FLAGS.precision,
        jit_compile=cli.TRISTATE[FLAGS.jit_compile],
        on_nan=FLAGS.on_nan, progress_bar=cli.TRISTATE[FLAGS.progress_bar],
        eval_every_epochs=FLAGS.eval_every_epochs, eval_samples=FLAGS.eval_samples,
        eval_every_images=FLAGS.eval_every_images, eval_earlier=FLAGS.eval_earlier)


def train():
    config = _config_from_flags()  # a bad value is reported before TensorFlow loads
    for note in cli.PROCESS_NOTES:  # what cli chose for this process, and why
        print(f"train | auto: {note}", flush=True)

    import tensorflow as tf

    from dcgan_dist.errors import WorkerLostError
    from dcgan_dist.training import trainer
    try:
        trainer.train(config)
    except (tf.errors.UnavailableError, tf.errors.AbortedError,
            tf.errors.DeadlineExceededError) as e:
        # What collectives raise when a peer worker dies or the coordination service
        # loses it (a missed heartbeat: DeadlineExceeded): the job cannot go on with
        # fewer workers.
        raise WorkerLostError(
            f"a worker of this job was lost ({str(e).splitlines()[0][:300]}); restart the "
            "whole job with the same flags, it resumes from the last checkpoint.") from None


if __name__ == "__main__":
    cli.run(train)
