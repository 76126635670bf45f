"""Replica scaling of the package's training step, and the share of a step spent in
the gradient all-reduce.

    python benchmarks/scaling.py                     # 1, 2, 4 logical CPUs; 2 workers
    python benchmarks/scaling.py --per_replica_batch=32 --steps=10

Each configuration runs in its own process (the logical-device split is fixed when
TensorFlow starts): MirroredStrategy over 1, 2 and 4 logical CPU devices, then
MultiWorkerMirroredStrategy with 2 worker processes on 127.0.0.1. The per-replica batch
is fixed, so the global batch grows with the replicas. For each it reports images/s and
the time of an all-reduce of the gradients alone (the same tensors a step sums: both
networks' trainable variables, 2,518,337 float32 values) as a share of the step.

All replicas here share the same 2 CPU cores, so this measures the overhead of going
distributed, not a speed-up; docs/measurements.md says what the same volumes mean on
GPUs.
"""

import json
import os
import subprocess
import sys
import time

from dcgan_dist import cli  # noqa: F401  first: TensorFlow's log, the process set up

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "launch"))  # tf_config.py

from absl import app, flags, logging  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_integer("per_replica_batch", 64, "Images per replica per step.")
flags.DEFINE_integer("steps", 10, "Timed steps (after 3 warm-up steps).")
flags.DEFINE_string("dataset", "fashion_mnist", "Dataset whose training images are used.")
flags.DEFINE_string("tfds_data_dir", None, "tfds data_dir.")
flags.DEFINE_string("json_out", "runs/scaling.json", "Where to write the results.")
flags.DEFINE_string("child", None, "Internal: run one configuration (mirrored:N or "
                    "multi_worker) and print its JSON.")

WARMUP_STEPS = 3


def _time(fn, repeats):
    fn()  # trace and warm up
    started = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - started) / repeats


def run_child(kind):
    import tensorflow as tf

    from dcgan_dist.data import pipeline, sources
    from dcgan_dist.training import settings, strategies, train_step
    from dcgan_dist.training.config import TrainConfig

    if kind == "multi_worker":
        strategy = strategies.make_strategy("multi_worker")
    else:
        strategy = strategies.make_strategy("mirrored", cpu_replicas=int(kind.split(":")[1]))
    replicas = strategy.num_replicas_in_sync
    global_batch = FLAGS.per_replica_batch * replicas
    data = sources.load(FLAGS.dataset, tfds_data_dir=FLAGS.tfds_data_dir)
    config, _ = settings.resolve(
        TrainConfig(workdir="unused", batch_size=global_batch, precision="fp32"), strategy,
        image_shape=data.image_shape)
    built = train_step.build(config, strategy, pipeline.tfds_images(data.builder, "train"))
    state, train_steps, iterator = built.state, built.train_steps, built.iterator()

    def step():
        float(train_steps(iterator, tf.constant(1))["g_loss"])  # waits for the step

    for _ in range(WARMUP_STEPS - 1):
        step()
    step_sec = _time(step, FLAGS.steps)

    variables = (state.generator.trainable_variables
                 + state.discriminator.trainable_variables)

    @tf.function
    def all_reduce():
        def replica_fn():
            grads = [tf.ones_like(v) for v in variables]
            return tf.distribute.get_replica_context().all_reduce("sum", grads)
        return strategy.run(replica_fn)[0]

    def reduce_once():
        strategy.experimental_local_results(all_reduce())[0].numpy()

    all_reduce_sec = _time(reduce_once, FLAGS.steps)
    print(json.dumps({
        "config": kind, "replicas": replicas, "global_batch": global_batch,
        "step_ms": round(step_sec * 1000, 1),
        "images_per_sec": round(global_batch / step_sec, 1),
        "all_reduce_ms": round(all_reduce_sec * 1000, 2),
        "all_reduce_share": round(all_reduce_sec / step_sec, 4),
        "all_reduce_values": int(sum(v.shape.num_elements() for v in variables)),
        "chief": strategies.is_chief(strategy),
    }), flush=True)


def _child_command(kind):
    command = [sys.executable, os.path.abspath(__file__), f"--child={kind}",
               f"--per_replica_batch={FLAGS.per_replica_batch}", f"--steps={FLAGS.steps}",
               f"--dataset={FLAGS.dataset}"]
    if FLAGS.tfds_data_dir:
        command.append(f"--tfds_data_dir={FLAGS.tfds_data_dir}")
    return command


def _last_json(text):
    return json.loads([line for line in text.splitlines() if line.startswith("{")][-1])


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)
    if FLAGS.child:
        run_child(FLAGS.child)
        return
    import local  # launch/local.py: loopback ports and TF_CONFIG
    import results as results_file

    results = []
    for replicas in (1, 2, 4):
        out = subprocess.run(_child_command(f"mirrored:{replicas}"), capture_output=True,
                             text=True, check=True)
        results.append(_last_json(out.stdout))
        print(json.dumps(results[-1]), flush=True)
    ports = local.free_ports(2)
    workers = [subprocess.Popen(_child_command("multi_worker"), stdout=subprocess.PIPE,
                                text=True,
                                env=dict(os.environ, TF_CONFIG=local.tf_config(ports, i)))
               for i in range(2)]
    outputs = [w.communicate()[0] for w in workers]
    if any(w.returncode for w in workers):
        sys.exit(f"a multi-worker benchmark process failed: {[w.returncode for w in workers]}")
    chief = next(r for r in map(_last_json, outputs) if r["chief"])
    chief["config"] = "multi_worker:2x1"
    results.append(chief)
    print(json.dumps(chief), flush=True)

    base = results[0]["images_per_sec"]
    print(f"\n{'config':<18}{'replicas':>9}{'batch':>7}{'step ms':>10}{'images/s':>10}"
          f"{'vs 1':>7}{'all-reduce ms':>15}{'share':>8}")
    for r in results:
        print(f"{r['config']:<18}{r['replicas']:>9}{r['global_batch']:>7}"
              f"{r['step_ms']:>10}{r['images_per_sec']:>10}"
              f"{r['images_per_sec'] / base:>7.2f}{r['all_reduce_ms']:>15}"
              f"{r['all_reduce_share']:>8.1%}")
    results_file.write_json(FLAGS.json_out, results)


if __name__ == "__main__":
    app.run(main)
