"""Per-platform defaults for `--precision=auto` and `--jit_compile=auto`.

Each choice comes with the reason the log prints. The CPU choices were measured with
`benchmarks/epoch_time.py` on this project's 2-core machines (docs/measurements.md);
the GPU and TPU choices follow what those chips are built for (no accelerator was lent
to measure them here), and either flag overrides them.
"""

import dataclasses
from typing import Optional

import tensorflow as tf

from dcgan_dist.options import AUTO

# CPU features that make bf16 matrix multiplies fast (oneDNN uses them).
_BF16_CPU_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})


def cpu_flags(path="/proc/cpuinfo"):
    """The CPU feature flags the kernel reports (empty where there is no /proc/cpuinfo)."""
    try:
        with open(path) as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


@dataclasses.dataclass(frozen=True)
class Platform:
    """What the auto choices look at: a TPU, the first GPU's CUDA compute capability
    (None: no GPU; (): a GPU that reports none), and the CPU's feature flags."""

    tpu: bool = False
    gpu_capability: Optional[tuple] = None
    cpu_flags: frozenset = frozenset()


def describe(strategy, cpuinfo="/proc/cpuinfo"):
    """The Platform this process runs `strategy` on."""
    return Platform(tpu=isinstance(strategy, (tf.distribute.TPUStrategy,
                                              tf.distribute.experimental.TPUStrategy)),
                    gpu_capability=_gpu_compute_capability(),
                    cpu_flags=frozenset(cpu_flags(cpuinfo)))


def _gpu_compute_capability():
    """(major, minor) of the first GPU, () if it has none, or None without GPUs."""
    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return None
    details = tf.config.experimental.get_device_details(gpus[0])
    return tuple(details.get("compute_capability", ()))  # () on non-CUDA GPUs


def choose_precision(platform):
    """(precision, reason) for --precision=auto."""
    if platform.tpu:
        return "bf16", "TPUs compute in bfloat16 natively"
    capability = platform.gpu_capability
    if capability == ():
        return "fp32", "this GPU reports no CUDA compute capability"
    if capability is not None:
        if capability >= (7, 0):
            return "fp16", (f"GPU compute capability {capability[0]}.{capability[1]} has "
                            "float16 tensor cores")
        return "fp32", (f"GPU compute capability {capability[0]}.{capability[1]} has no "
                        "float16 tensor cores")
    found = sorted(_BF16_CPU_FLAGS & platform.cpu_flags)
    if found:
        return "bf16", (f"this CPU has {'/'.join(found)}, where bf16 measured faster than "
                        "fp32")
    return "fp32", "this CPU has no bfloat16 instructions"


def choose_jit_compile(platform):
    """(jit_compile, reason) for --jit_compile=auto."""
    if platform.tpu:
        return False, "TPUStrategy compiles every step with XLA already"
    if platform.gpu_capability is not None:
        return False, "not measured on GPUs here; try --jit_compile=true"
    return False, "on CPUs, XLA's convolutions measured slower than oneDNN's"


def resolve(config, strategy, platform=None):
    """`config` with precision and jit_compile chosen where they are auto (for
    `platform`, by default this process's); the reasons."""
    if config.precision != AUTO and config.jit_compile is not None:
        return config, []  # nothing open: no need to probe the platform
    platform = platform or describe(strategy)
    notes = []
    changes = {}
    if config.precision == AUTO:
        changes["precision"], why = choose_precision(platform)
        notes.append(f"precision {changes['precision']} ({why})")
    if config.jit_compile is None:
        changes["jit_compile"], why = choose_jit_compile(platform)
        notes.append(f"jit_compile {changes['jit_compile']} ({why})")
    return dataclasses.replace(config, **changes), notes
