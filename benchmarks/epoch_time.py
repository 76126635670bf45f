"""Times the package's training step against the article's, each loop in its own process.

    python benchmarks/epoch_time.py                       # batch 256, the article recipe
    python benchmarks/epoch_time.py --batch_size=8 --recipe=fast
    python benchmarks/epoch_time.py --precision=fp32 --cpu_replicas=2
    python benchmarks/epoch_time.py --op_breakdown        # and where the package's step goes
    python benchmarks/epoch_time.py --quick               # a smoke check
    python benchmarks/epoch_time.py --colour_sizes=       # without the colour loops
    python benchmarks/epoch_time.py --variants=diffaugment  # and what augmentation costs

Three loops, each a fresh process, alternated `--repeats` times:
- `article`: the article's loop as its reader runs it, a plain process
  (benchmarks/article.py);
- `article_setup`: the same under the package's process setup (process_setup.py), so a
  gain splits into what the process setup gives and what the package's step gives;
- `package`: the package's loop exactly as `python -m dcgan_dist.train` runs it (the
  command's process setup, `train_step.build`, `--steps_per_loop` steps per call).
Each process warms up (tracing, caches), then times `--rounds` rounds of `--steps`
steps (timing.py); a loop's figure is the median over its processes. Beside images/s:
minor page faults per step, peak memory, and GFLOP/s, from one step's FLOPs counted
from the models' layers (flops.py), against this CPU's matrix-multiply peak in fp32 and
bf16 (matmul_peak.py, its own process).

With `--variants`, the package's loop again with each named option on
(`diffaugment`: --diffaugment=color,translation,cutout; `conditional`: --conditional,
on the data's labels; `conditional_input`: with --conditioning=input), alternated with
the others:
each variant's images/s and its cost against the plain package loop of the same run.

Then the package alone in colour, at each of `--colour_sizes` (32x32x3 and 64x64x3) on
real colour images (Debian's oxygen icons, benchmarks/colour_images.py, or
`--colour_dir`): images/s, peak memory and GFLOP/s against the same peak, since the
article has no colour loop to compare with. Writes everything as JSON.
"""

import json
import os
import statistics
import subprocess
import sys
import tempfile

from dcgan_dist import cli  # first: TensorFlow's log, and the process set up as the CLI does

from absl import app, flags, logging  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
FLAGS = flags.FLAGS
flags.DEFINE_integer("batch_size", 256, "Global batch size of every loop.")
flags.DEFINE_enum("recipe", "article", ["article", "fast"], "The package's recipe (its "
                  "Adam settings and generator averaging; --batch_size stays as given).")
cli.define_strategy_flags("The package's loop: ")
cli.define_precision_flag("The package's precision (auto: as the training CLI chooses).")
flags.DEFINE_enum("jit_compile", "auto", ["auto", "true", "false"],
                  "XLA for the package's step (auto: as the training CLI chooses).")
flags.DEFINE_string("steps_per_loop", "auto", "The package's steps per tf.function call "
                    "(auto: as the training CLI chooses).")
flags.DEFINE_bool("op_breakdown", False, "Also profile a few package steps and print "
                  "the time per TensorFlow op type.")
flags.DEFINE_integer("steps", 20, "Timed steps per round.")
flags.DEFINE_integer("rounds", 3, "Timed rounds per process.")
flags.DEFINE_integer("warmup_steps", 5, "Untimed steps first.")
flags.DEFINE_integer("repeats", 2, "Processes of each loop, alternated.")
flags.DEFINE_bool("quick", False, "A smoke run: one process of each, 2 rounds of 5 steps.")
# The article's loop reads --data_dir's IDX files with numpy, the package's --dataset by tfds.
cli.define_data_flags(dataset="fashion_mnist", data_dir="/usr/share/datasets/fashion-mnist",
                      what="The images both loops train on: ")
flags.DEFINE_string("json_out", "runs/epoch_time.json", "Where to write the results.")
flags.DEFINE_list("colour_sizes", ["32", "64"], "Also time the package in colour at these "
                  "image sizes (empty: not).")
flags.DEFINE_string("colour_dir", None, "Folder of colour images for those loops "
                    "(default: the oxygen icons, written to a temporary folder).")
flags.DEFINE_list("variants", [], "Also time the package's loop with each of these on: "
                  "diffaugment (every policy), conditional (the default conditioning), "
                  "conditional_input (--conditioning=input).")
flags.DEFINE_enum("child", None, ["package"], "Internal: run one loop and print its JSON.")
flags.DEFINE_string("diffaugment", "", "Internal: the package loop's --diffaugment.")
flags.DEFINE_bool("conditional", False, "Internal: the package loop's --conditional.")
flags.DEFINE_string("conditioning", "batchnorm", "Internal: its --conditioning.")
flags.DEFINE_integer("image_size", None, "Internal: the package loop's image size.")

# --variants: the package loop's extra flags for each.
VARIANTS = {"diffaugment": ["--diffaugment=color,translation,cutout"],
            "conditional": ["--conditional"],
            "conditional_input": ["--conditional", "--conditioning=input"]}
ARTICLE_EPOCH_SECONDS = 600  # "each epoch takes approximately 10 minutes"
EPOCH_IMAGES = 60000


def _package_loop(steps, rounds):
    """The package's loop in this process: its steady rate (timing.py) as a dict."""
    import flops
    import op_profile
    import tensorflow as tf
    import timing

    from dcgan_dist.data import pipeline, sources
    from dcgan_dist.training import settings, strategies, train_step
    from dcgan_dist.training.config import TrainConfig

    jit_compile = cli.TRISTATE[FLAGS.jit_compile]
    colour = FLAGS.image_size is not None
    data = sources.load(FLAGS.dataset, FLAGS.colour_dir if colour else None,
                        FLAGS.tfds_data_dir, FLAGS.image_size, 3 if colour else None)
    config = TrainConfig(
        workdir="unused", strategy=FLAGS.strategy, cpu_replicas=FLAGS.cpu_replicas,
        recipe=FLAGS.recipe, batch_size=FLAGS.batch_size, precision=FLAGS.precision,
        jit_compile=jit_compile, steps_per_loop=cli.steps_per_loop(FLAGS.steps_per_loop),
        # XLA cannot compile synchronized batch norm (settings.py).
        sync_batch_norm=False if jit_compile else None, progress_bar=False,
        diffaugment=FLAGS.diffaugment, conditional=FLAGS.conditional,
        conditioning=FLAGS.conditioning)
    strategy = strategies.make_strategy(config.strategy, config.cpu_replicas, config.tpu)
    config, choices = settings.resolve(
        config, strategy, image_shape=data.image_shape,
        class_names=sources.class_names(data.builder, FLAGS.dataset,
                                        FLAGS.colour_dir if colour else None))
    built = train_step.build(config, strategy, pipeline.tfds_images(
        data.builder, "train", data.image_shape, labels=config.conditional))
    iterator, per_call = built.iterator(), config.steps_per_loop

    def run_steps(n):
        metrics = timing.run_in_calls(
            lambda k: built.train_steps(iterator, tf.constant(k)), n, per_call)
        float(metrics["g_loss"])  # waits for the device

    result = timing.steady_rate(run_steps, FLAGS.batch_size, steps, rounds,
                                FLAGS.warmup_steps)
    result.update(loop="package", choices=choices, precision=config.precision,
                  jit_compile=config.jit_compile, steps_per_loop=per_call,
                  generator_averaging=config.ema, diffaugment=config.diffaugment,
                  conditional=config.conditional,
                  replicas=strategy.num_replicas_in_sync,
                  image_shape=list(data.image_shape),
                  flops_per_image=flops.train_step_flops(built.state.generator,
                                                         built.state.discriminator))
    if FLAGS.op_breakdown:
        profiled = per_call * max(1, 5 // per_call)
        result["op_breakdown_ms_per_step"] = op_profile.breakdown(
            lambda: run_steps(profiled), steps=profiled)
    return result


def _last_json(command):
    out = subprocess.run(command, capture_output=True, text=True, cwd=os.getcwd())
    if out.returncode:
        sys.exit(f"{' '.join(command)} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _commands(steps, rounds):
    timing = [f"--batch_size={FLAGS.batch_size}", f"--steps={steps}", f"--rounds={rounds}",
              f"--warmup_steps={FLAGS.warmup_steps}"]
    article = [sys.executable, os.path.join(HERE, "article.py"), *timing,
               f"--data_dir={FLAGS.data_dir}"]
    package = [sys.executable, os.path.abspath(__file__), "--child=package", *timing,
               *(f"--{name}={getattr(FLAGS, name)}" for name in (
                   "recipe", "strategy", "cpu_replicas", "precision", "jit_compile",
                   "steps_per_loop", "dataset", "op_breakdown")),
               *([f"--tfds_data_dir={FLAGS.tfds_data_dir}"] if FLAGS.tfds_data_dir else [])]
    return {"article": article, "article_setup": article + ["--process_setup"],
            "package": package,
            **{f"package_{name}": package + VARIANTS[name] for name in FLAGS.variants}}


def _colour(package_command, peaks):
    """{"32x32x3": the package's figures in colour, ...} at each of --colour_sizes."""
    import colour_images
    results = {}
    with tempfile.TemporaryDirectory() as scratch:
        folder = FLAGS.colour_dir or colour_images.write_icon_folder(
            os.path.join(scratch, "icons"), size=128)
        # Prepared once, in the scratch folder, unless --tfds_data_dir keeps it.
        tfds_dir = [] if FLAGS.tfds_data_dir else [f"--tfds_data_dir={scratch}/tfds"]
        for size in map(int, FLAGS.colour_sizes):
            result = _last_json(package_command + [f"--image_size={size}",
                                                   f"--colour_dir={folder}", *tfds_dir])
            step_gflop = result["flops_per_image"] / 1e9
            ceiling = peaks["bfloat16" if result["precision"] == "bf16" else "float32"]
            results[f"{size}x{size}x3"] = {
                "images_per_sec": round(result["images_per_sec"], 1),
                "peak_memory_mib": result["peak_memory_mib"],
                "minor_faults_per_step": result["minor_faults_per_step"],
                "precision": result["precision"],
                "gflop_per_image_step": round(step_gflop, 4),
                "gflops": round(result["images_per_sec"] * step_gflop, 1),
                "share_of_matmul_peak": round(result["images_per_sec"] * step_gflop
                                              / ceiling, 3)}
            print(f"colour {size}x{size}x3 | package: {result['images_per_sec']} images/s "
                  f"| peak {result['peak_memory_mib']} MiB", flush=True)
    return results


def _summary(runs, peaks):
    """One JSON object: each loop's median over its processes, the ratios, GFLOP/s."""
    median = {loop: statistics.median(r["images_per_sec"] for r in results)
              for loop, results in runs.items()}
    package = runs["package"][0]
    step_gflop = package["flops_per_image"] / 1e9
    summary = {
        "batch_size": FLAGS.batch_size, "recipe": FLAGS.recipe,
        "package_precision": package["precision"], "package_choices": package["choices"],
        "steps_per_loop": package["steps_per_loop"], "replicas": package["replicas"],
        "generator_averaging": package["generator_averaging"],
        "images_per_sec": {loop: round(value, 1) for loop, value in median.items()},
        "speedup_vs_article": round(median["package"] / median["article"], 3),
        # The split of that gain: the process setup alone, then the package's step.
        "process_setup_gain": round(median["article_setup"] / median["article"], 3),
        "step_gain": round(median["package"] / median["article_setup"], 3),
        "minor_faults_per_step": {loop: statistics.median(
            r["minor_faults_per_step"] for r in results) for loop, results in runs.items()},
        "peak_memory_mib": {loop: max(r["peak_memory_mib"] for r in results)
                            for loop, results in runs.items()},
        "gflop_per_image_step": round(step_gflop, 4),
        "gflops": {loop: round(value * step_gflop, 1) for loop, value in median.items()},
        "matmul_peak_gflops": peaks,
        "epoch_sec": {loop: round(EPOCH_IMAGES / value, 1) for loop, value in median.items()},
        "article_quoted_epoch_sec": ARTICLE_EPOCH_SECONDS,
        "cpu": _cpu_name(), "runs": runs,
    }
    # The share of this CPU's ceiling each loop reaches, in the precision it computes in.
    ceiling = {"article": peaks["float32"], "article_setup": peaks["float32"],
               "package": peaks["bfloat16" if package["precision"] == "bf16"
                                else "float32"]}
    summary["share_of_matmul_peak"] = {
        loop: round(median[loop] * step_gflop / ceiling.get(loop, ceiling["package"]), 3)
        for loop in median}
    if "op_breakdown_ms_per_step" in package:
        summary["op_breakdown_ms_per_step"] = package["op_breakdown_ms_per_step"]
    # What each --variants option costs: the share of the plain step's rate it loses.
    summary["variant_cost"] = {loop[len("package_"):]: round(1 - median[loop]
                                                              / median["package"], 3)
                               for loop in median if loop.startswith("package_")}
    return summary


def _cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            model = next(line for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return "unknown"
    from dcgan_dist.training import hardware
    bf16 = sorted({"avx512_bf16", "amx_bf16"} & hardware.cpu_flags())
    return f"{model.split(':', 1)[1].strip()} ({os.cpu_count()} cores; bf16: " \
           f"{'/'.join(bf16) or 'none'})"


def main(argv):
    del argv
    unknown = sorted(set(FLAGS.variants) - set(VARIANTS))
    if unknown:
        raise app.UsageError(f"--variants: {', '.join(unknown)} unknown; use "
                             f"{', '.join(VARIANTS)}.")
    logging.set_verbosity(logging.WARNING)
    steps, rounds = (5, 2) if FLAGS.quick else (FLAGS.steps, FLAGS.rounds)
    if FLAGS.child == "package":
        print(json.dumps(_package_loop(steps, rounds)), flush=True)
        return
    import op_profile
    import results as results_file
    peaks = _last_json([sys.executable, os.path.join(HERE, "matmul_peak.py"), "--json"])
    commands = _commands(steps, rounds)
    runs = {loop: [] for loop in commands}
    for repeat in range(1 if FLAGS.quick else FLAGS.repeats):
        for loop, command in commands.items():
            runs[loop].append(_last_json(command))
            print(f"repeat {repeat + 1} | {loop}: {runs[loop][-1]['images_per_sec']} "
                  f"images/s | {runs[loop][-1]['minor_faults_per_step']} faults/step",
                  flush=True)
    summary = _summary(runs, peaks)
    if FLAGS.colour_sizes:
        summary["colour"] = _colour(commands["package"], peaks)
    if "op_breakdown_ms_per_step" in summary:
        print(op_profile.format_table(summary["op_breakdown_ms_per_step"]))
    print(json.dumps({k: v for k, v in summary.items() if k != "runs"}, indent=2))
    results_file.write_json(FLAGS.json_out, summary)


if __name__ == "__main__":
    app.run(main)
