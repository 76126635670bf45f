"""The training state and the compiled step, with the one builder that wires them to
the data:

    built = build(config, strategy, images)  # resolved config, state, compiled step
    metrics = built.train_steps(built.iterator(step), tf.constant(num_steps))

Orbit's seam: this module is what one compiled call does (a `tf.range` loop over
`strategy.run`, on every replica); loop.py is the Python loop around it, and trainer.py
wires both to summaries and checkpoints. Benchmarks and tests build through `build` too,
so they time and test exactly what training runs.
"""

import dataclasses
import functools
import hashlib

import keras
import numpy as np
import tensorflow as tf

from dcgan_dist import models, process_setup, rng
from dcgan_dist import workdir as layout
from dcgan_dist.data import pipeline
from dcgan_dist.training import augment, ema, losses, strategies
from dcgan_dist.options import PRECISIONS

METRICS = ("g_loss", "d_loss", "d_real", "d_fake")  # D(x) and D(G(z)) are means of sigmoid


@dataclasses.dataclass
class TrainState:
    """Everything a checkpoint holds: what shapes the next step."""

    generator: keras.Model
    discriminator: keras.Model
    generator_optimizer: keras.optimizers.Optimizer
    discriminator_optimizer: keras.optimizers.Optimizer
    noise_rng: tf.random.Generator  # one seed per step for the generator's noise
    step: tf.Variable               # global steps trained
    epoch: tf.Variable              # epochs completed
    generator_ema: keras.Model = None  # the averaged generator, with averaging on

    def checkpoint(self):
        # Each field by its name, the averaged generator by the key the tools restore
        # (workdir.AVERAGED_KEY). Not dataclasses.asdict: that deep-copies the models.
        objects = {field.name: value for field in dataclasses.fields(self)
                   if (value := getattr(self, field.name)) is not None
                   and value is not self.generator_ema}
        if self.generator_ema is not None:
            objects[layout.AVERAGED_KEY] = self.generator_ema
        return tf.train.Checkpoint(**objects)

    @property
    def shown_generator(self):
        """The generator users see: the averaged one when there is one."""
        return self.generator if self.generator_ema is None else self.generator_ema


class FusedAdam(keras.optimizers.Adam):
    """Keras' Adam with each variable's update in one TensorFlow kernel
    (ResourceApplyAdam) instead of about ten elementwise ones.

    The arithmetic is Keras' (m += (g - m)(1 - beta1), v += (g^2 - v)(1 - beta2),
    var -= alpha m / (sqrt(v) + epsilon), alpha from the bias corrections), and so are
    the slots, the checkpoints and the distribution (`update_step` runs per device inside
    `extended.update`); the fused kernel may round the last bit differently. On a CPU at
    a small batch, the unfused update's passes over 2.5M parameters cost more than the
    convolutions (docs/measurements.md).
    """

    def update_step(self, gradient, variable, learning_rate):
        if self.amsgrad:
            return super().update_step(gradient, variable, learning_rate)
        dtype = variable.dtype
        local_step = tf.cast(self.iterations + 1, dtype)
        index = self._get_variable_index(variable)

        def handle(v):  # the tf.Variable (this device's copy, under a strategy)
            return (v.value if isinstance(v, keras.Variable) else v).handle

        beta_1, beta_2 = tf.cast(self.beta_1, dtype), tf.cast(self.beta_2, dtype)
        tf.raw_ops.ResourceApplyAdam(
            var=handle(variable), m=handle(self._momentums[index]),
            v=handle(self._velocities[index]), beta1_power=tf.pow(beta_1, local_step),
            beta2_power=tf.pow(beta_2, local_step), lr=tf.cast(learning_rate, dtype),
            beta1=beta_1, beta2=beta_2, epsilon=tf.cast(self.epsilon, dtype),
            grad=tf.cast(gradient, dtype))


def create_state(config, strategy):
    """Models, optimizers and counters, created (and built) inside the strategy's scope,
    for a resolved `config` (settings.resolve).

    With fp16 each network's Adam is wrapped in a Keras `LossScaleOptimizer`, whose
    dynamic loss scale and its step counter are checkpointed with the rest. With
    averaging on (`config.ema`), a second generator starts as a copy of the first.
    """
    if config.precision not in PRECISIONS or config.sync_batch_norm is None:
        raise ValueError("create_state needs a resolved config: use settings.resolve")
    dtype = PRECISIONS[config.precision]
    classes = ({"num_classes": config.num_classes, "conditioning": config.conditioning}
               if config.conditional else {})  # none: the article's networks
    with strategy.scope():
        generator = models.make_generator(config.generator, dtype=dtype, seed=config.seed,
                                          sync_batch_norm=config.sync_batch_norm,
                                          image_shape=config.image_shape, **classes)
        discriminator = models.make_discriminator_model(
            seed=config.seed, dtype=dtype, image_shape=config.image_shape,
            num_classes=config.num_classes)
        # Keras 3 creates optimizer slots lazily; under a strategy that must happen here,
        # in the scope, not inside the first tf.function call.
        optimizers = []
        for model, rate in ((generator, config.g_learning_rate),
                            (discriminator, config.d_learning_rate)):
            optimizer = FusedAdam(rate, beta_1=config.beta1, beta_2=config.beta2)
            if config.precision == "fp16":
                optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
            optimizer.build(model.trainable_variables)
            optimizers.append(optimizer)
        averaged = None
        if config.ema:
            averaged = models.make_generator(config.generator, dtype=dtype,
                                             seed=config.seed,
                                             image_shape=config.image_shape, **classes)
            ema.copy(averaged, generator)
        return TrainState(
            generator=generator, discriminator=discriminator,
            generator_optimizer=optimizers[0], discriminator_optimizer=optimizers[1],
            noise_rng=tf.random.Generator.from_seed(config.seed, alg="philox"),
            step=tf.Variable(0, dtype=tf.int64, trainable=False, name="step"),
            epoch=tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch"),
            generator_ema=averaged)


def _skip_together(gen_grads, disc_grads):
    """fp16: makes every replica's gradients of both networks non-finite when any is.

    Each LossScaleOptimizer skips its step (and halves its scale) when its own local
    gradients are not finite. That alone would let one network step while the other
    skips, or one replica's overflow go unseen by another. One all-reduced flag, folded
    into all the gradients, makes both optimizers on every replica decide the same way;
    multiplying by 1.0 changes nothing otherwise.
    """
    local_ok = tf.reduce_all([tf.reduce_all(tf.math.is_finite(g))
                              for g in gen_grads + disc_grads])
    bad = tf.distribute.get_replica_context().all_reduce(
        tf.distribute.ReduceOp.SUM, 1.0 - tf.cast(local_ok, tf.float32))
    factor = tf.where(bad > 0.0, float("nan"), 1.0)
    return ([g * tf.cast(factor, g.dtype) for g in gen_grads],
            [g * tf.cast(factor, g.dtype) for g in disc_grads])


def make_train_steps(state, strategy, global_batch_size, jit_compile=False,
                     ema_schedule=None, augmentations=(), class_loss=0.0):
    """A tf.function `train_steps(iterator, num_steps)` returning mean metrics.

    jit_compile: compile each replica's forward and backward pass with XLA. The
    optimizer updates stay outside XLA: their gradient all-reduce is a cross-replica
    call that XLA cannot hold under every strategy.
    ema_schedule: with `state.generator_ema`, a function of the images seen giving the
    averaging decay of that step (`ema.decay`, bound to the config).
    augmentations: DiffAugment policies (augment.py) applied to every image the
    discriminator sees, real and generated, in both networks' losses; () for none.

    A conditional state (`models.class_count` of its generator) trains on (images,
    labels) batches: D judges each real image with its label, and each generated one
    with the label G was asked for, drawn uniformly per global row (`_fake_labels`).
    class_loss: with a conditional state, the weight of a classification loss on D's
    logit of every class (models.class_logits): D's of the real images' labels, G's of
    the labels it was asked for; 0: none.
    """
    generator, discriminator = state.generator, state.discriminator
    num_classes = models.class_count(generator)
    if state.generator_ema is not None and ema_schedule is None:
        raise ValueError("the state averages its generator: pass ema_schedule")
    if class_loss and not num_classes:
        raise ValueError("class_loss weighs a loss on the classes: the state's networks "
                         "must be conditional")
    loss_scaling = isinstance(state.generator_optimizer,
                              keras.optimizers.LossScaleOptimizer)

    def gradients(real_batch, noise_seed):
        real_images, real_labels = real_batch if num_classes else (real_batch, None)
        batch = tf.shape(real_images)[0]
        # This replica's rows of the global batch's noise: the same numbers whatever the
        # replica count (see rng.py).
        noise = rng.normal_rows([batch, models.NOISE_DIM], noise_seed,
                                rng.replica_row_offset(batch))
        fake_labels = (_fake_labels(batch, num_classes, _derived_seed(noise_seed, 3))
                       if num_classes else None)

        def conditioned(inputs, labels):  # a conditional network also takes the labels
            return [inputs, labels] if num_classes else inputs

        def judge(images, labels):
            """D's logits [N, 1] of `images` as `labels`; with the classification loss
            also those of every class, [N, classes], from the same pass."""
            if not class_loss:
                return discriminator(conditioned(images, labels), training=True), None
            every = models.class_logits(discriminator, images, training=True)
            return tf.gather(every, labels[:, None], batch_dims=1), every

        with tf.GradientTape() as gen_tape, tf.GradientTape() as disc_tape:
            fake_images = generator(conditioned(noise, fake_labels), training=True)
            if augmentations:  # seeds of their own, derived from the step's: see augment
                real_images = augment.augment(real_images, augmentations,
                                              _derived_seed(noise_seed, 1))
                fake_images = augment.augment(fake_images, augmentations,
                                              _derived_seed(noise_seed, 2))
            real_logits, real_classes = judge(real_images, real_labels)
            fake_logits, fake_classes = judge(fake_images, fake_labels)
            gen_loss = losses.generator_loss(fake_logits, global_batch_size)
            disc_loss = losses.discriminator_loss(real_logits, fake_logits,
                                                  global_batch_size)
            if class_loss:  # D learns to classify real images, G to be classified
                gen_loss += class_loss * losses.class_loss(fake_classes, fake_labels,
                                                           global_batch_size)
                disc_loss += class_loss * losses.class_loss(real_classes, real_labels,
                                                            global_batch_size)
            if loss_scaling:  # fp16: scaled up so small gradients survive float16
                gen_target = state.generator_optimizer.scale_loss(gen_loss)
                disc_target = state.discriminator_optimizer.scale_loss(disc_loss)
            else:
                gen_target, disc_target = gen_loss, disc_loss
        gen_grads = gen_tape.gradient(gen_target, generator.trainable_variables)
        disc_grads = disc_tape.gradient(disc_target, discriminator.trainable_variables)
        # Each value is this replica's share of a global-batch mean: summing the replicas
        # gives the mean.
        metrics = {"g_loss": gen_loss, "d_loss": disc_loss,
                   "d_real": tf.reduce_sum(tf.sigmoid(real_logits)) / global_batch_size,
                   "d_fake": tf.reduce_sum(tf.sigmoid(fake_logits)) / global_batch_size}
        return gen_grads, disc_grads, metrics

    if jit_compile:
        gradients = tf.function(gradients, jit_compile=True)

    def replica_step(real_batch, noise_seed):
        gen_grads, disc_grads, metrics = gradients(real_batch, noise_seed)
        if loss_scaling:
            gen_grads, disc_grads = _skip_together(gen_grads, disc_grads)
        # apply_gradients in replica context sums the gradients over replicas (and,
        # with loss scaling, unscales them or skips the step).
        state.generator_optimizer.apply_gradients(
            zip(gen_grads, generator.trainable_variables))
        state.discriminator_optimizer.apply_gradients(
            zip(disc_grads, discriminator.trainable_variables))
        return metrics

    @tf.function
    def train_steps(iterator, num_steps):
        totals = {name: tf.constant(0.0) for name in METRICS}
        for _ in tf.range(num_steps):
            noise_seed = state.noise_rng.make_seeds(1)[:, 0]
            per_replica = strategy.run(replica_step, args=(next(iterator), noise_seed))
            # Rebuilt, not updated in place: autograph tracks loop variables by name.
            totals = {name: totals[name] + strategy.reduce(
                tf.distribute.ReduceOp.SUM, per_replica[name], axis=None)
                for name in METRICS}
            state.step.assign_add(1)
            if state.generator_ema is not None:  # cross-replica: see ema.py
                ema.update(state.generator_ema, generator,
                           ema_schedule(state.step * global_batch_size))
        return {name: total / tf.cast(num_steps, tf.float32)
                for name, total in totals.items()}

    return train_steps


def _derived_seed(seed, stream):
    """A seed for random stream `stream` of a step, from the step's `seed`: the noise
    keeps `seed` itself, so runs without augmentation draw exactly what they did.
    Streams: 1 and 2, DiffAugment of real and generated images; 3, the fake labels."""
    return tf.random.experimental.stateless_fold_in(seed, stream)


def _fake_labels(rows, num_classes, seed):
    """int32 [rows]: this replica's rows of the step's labels for G, uniform over the
    classes per global row (as the noise: the same whatever the replica count)."""
    uniform = rng.uniform_rows([rows], seed, rng.replica_row_offset(rows))
    return tf.minimum(tf.cast(uniform * num_classes, tf.int32), num_classes - 1)


def weights_fingerprint(state):
    """A short hash of the networks' weights (batch-norm statistics and the averaged
    generator included).

    Every replica and every worker must hold the same weights; each worker prints this
    at the end so that can be checked from the logs alone.
    """
    digest = hashlib.sha256()
    averaged = state.generator_ema.weights if state.generator_ema is not None else []
    for variable in state.generator.weights + state.discriminator.weights + averaged:
        digest.update(np.ascontiguousarray(variable.numpy()).tobytes())
    return digest.hexdigest()[:16]


@dataclasses.dataclass
class Built:
    """What `build` returns: everything one training process steps."""

    config: object        # the resolved TrainConfig
    strategy: object
    state: TrainState
    train_steps: object   # tf.function(iterator, num_steps) -> mean metrics
    images_fn: object     # () -> tf.data.Dataset of the split's uint8 images (and
                          # int32 labels, for a conditional run: pipeline.tfds_images)
    num_examples: int

    @property
    def steps_per_epoch(self):
        return pipeline.steps_per_epoch(self.num_examples, self.config.batch_size)

    def iterator(self, step=0):
        """The distributed batches from global `step` on: a resume sees the batches an
        uninterrupted run would (pipeline.py)."""
        config = self.config
        iterator = iter(self.strategy.distribute_datasets_from_function(
            pipeline.make_dataset_fn(self.images_fn, self.num_examples, config.batch_size,
                                     config.seed, step, config.compute_dtype),
            options=strategies.input_options(self.strategy)))
        # A multi-device iterator (every strategy but a CPU MirroredStrategy) pins
        # glibc's mmap threshold at 128 KiB as it is created (TensorFlow's
        # GeneratorDataset kernel calls mallopt): set ours again, or every step faults
        # its large buffers in anew, up to 2x slower on CPUs (process_setup.py).
        process_setup.restore_malloc()
        return iterator


def build(config, strategy, images):
    """The state and its compiled step for a settled `config` (settings.resolve, once per
    run). images: (images_fn, number of images), e.g. pipeline.tfds_images."""
    if not config.settled:
        raise ValueError("build needs a settled config, every auto choice made: call "
                         "settings.resolve(config, strategy) first")
    state = create_state(config, strategy)
    train_steps = make_train_steps(state, strategy, config.batch_size, config.jit_compile,
                                   functools.partial(ema.decay, config),
                                   config.augmentations, config.class_loss)
    return Built(config, strategy, state, train_steps, *images)
