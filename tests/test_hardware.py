"""--precision=auto and --jit_compile=auto on platforms this machine is not: fake
/proc/cpuinfo contents and fake GPU and TPU descriptions through hardware's functions."""

import dataclasses

import pytest
import tensorflow as tf

from conftest import mirrored
from dcgan_dist.training import hardware, settings
from dcgan_dist.training.config import TrainConfig
from dcgan_dist.errors import ConfigError

XEON_AMX = "avx512f avx512_bf16 amx_bf16 amx_tile amx_int8"
EPYC = "avx2 avx512f avx512_vnni avx512_bf16"
OLD = "sse4_2 avx avx2 fma"


def _cpuinfo(tmp_path, flags):
    path = tmp_path / "cpuinfo"
    path.write_text(f"processor\t: 0\nmodel name\t: test\nflags\t\t: fpu {flags}\n\n"
                    f"processor\t: 1\nflags\t\t: fpu {flags}\n")
    return str(path)


@pytest.mark.parametrize("flags, precision, reason", [
    (XEON_AMX, "bf16", "amx_bf16/avx512_bf16"),
    (EPYC, "bf16", "this CPU has avx512_bf16"),
    (OLD, "fp32", "no bfloat16 instructions"),
])
def test_cpus_by_their_cpuinfo(flags, precision, reason, tmp_path):
    platform = hardware.describe(tf.distribute.get_strategy(), _cpuinfo(tmp_path, flags))
    assert not platform.tpu and platform.gpu_capability is None  # this machine: no GPU
    chosen, why = hardware.choose_precision(platform)
    assert chosen == precision and reason in why
    assert hardware.choose_jit_compile(platform) == (
        False, "on CPUs, XLA's convolutions measured slower than oneDNN's")


def test_no_cpuinfo_means_no_flags(tmp_path):
    assert hardware.cpu_flags(str(tmp_path / "missing")) == set()
    assert hardware.choose_precision(hardware.Platform())[0] == "fp32"


@pytest.mark.parametrize("capability, precision, reason", [
    ((9, 0), "fp16", "9.0 has float16 tensor cores"),
    ((7, 0), "fp16", "7.0 has float16 tensor cores"),
    ((6, 1), "fp32", "6.1 has no float16 tensor cores"),
    ((), "fp32", "reports no CUDA compute capability"),
])
def test_gpus_by_their_compute_capability(capability, precision, reason):
    # A GPU decides, whatever the host CPU has.
    platform = hardware.Platform(gpu_capability=capability, cpu_flags=frozenset(EPYC.split()))
    chosen, why = hardware.choose_precision(platform)
    assert chosen == precision and reason in why
    assert hardware.choose_jit_compile(platform)[0] is False
    assert "not measured on GPUs" in hardware.choose_jit_compile(platform)[1]


def test_tpus_take_bf16_and_compile_anyway():
    platform = hardware.Platform(tpu=True, cpu_flags=frozenset(OLD.split()))
    assert hardware.choose_precision(platform) == ("bf16", "TPUs compute in bfloat16 natively")
    assert hardware.choose_jit_compile(platform) == (
        False, "TPUStrategy compiles every step with XLA already")


def test_resolve_fills_only_what_is_auto():
    strategy = tf.distribute.get_strategy()
    gpu = hardware.Platform(gpu_capability=(8, 0))
    config, notes = hardware.resolve(TrainConfig(workdir="unused"), strategy, gpu)
    assert (config.precision, config.jit_compile) == ("fp16", False)
    assert notes == ["precision fp16 (GPU compute capability 8.0 has float16 tensor cores)",
                     "jit_compile False (not measured on GPUs here; try "
                     "--jit_compile=true)"]
    explicit = TrainConfig(workdir="unused", precision="fp32", jit_compile=True)
    assert hardware.resolve(explicit, strategy, gpu) == (explicit, [])


def test_library_defaults_are_the_command_line_defaults():
    """TrainConfig() trains as `python -m dcgan_dist.train` does with no flags."""
    from absl import flags
    from dcgan_dist import cli, train  # noqa: F401  (defines the flags)
    config = TrainConfig(workdir="unused")
    for name in ("jit_compile", "sync_batch_norm", "progress_bar"):  # auto|true|false
        assert getattr(config, name) == cli.TRISTATE[flags.FLAGS[name].default], name
    for name in ("precision", "recipe", "dataset", "split", "epochs", "seed", "on_nan", "generator",
                 "checkpoint_every_epochs", "keep_checkpoints", "strategy", "cpu_replicas",
                 "tpu", "deterministic"):
        assert getattr(config, name) == flags.FLAGS[name].default, name
    assert config.steps_per_loop == cli.steps_per_loop(flags.FLAGS["steps_per_loop"].default)
    assert config.batch_size == 256 and config.g_learning_rate == 1e-4  # the recipe's


def test_settings_are_resolved_once_and_resolving_again_changes_nothing():
    """settings.resolve: the workdir's recorded precision over the platform's choice, the
    batch-norm default by replica count, and XLA refused with synchronized batch norm."""
    epyc = hardware.Platform(cpu_flags=frozenset(EPYC.split()))
    config = TrainConfig(workdir="unused", batch_size=32)
    one, notes = settings.resolve(config, mirrored(1), platform=epyc)
    assert (one.precision, one.jit_compile, one.sync_batch_norm) == ("bf16", False, False)
    assert settings.resolve(one, mirrored(1), platform=epyc) == (one, [])
    resumed, notes = settings.resolve(config, mirrored(1), recorded={"precision": "fp32"},
                                      platform=epyc)
    assert resumed.precision == "fp32"
    assert notes[0] == "precision fp32 (the workdir was trained with it)"
    four, _ = settings.resolve(config, mirrored(4), platform=epyc)
    assert four.sync_batch_norm is True
    with pytest.raises(ConfigError, match="cannot compile synchronized batch norm"):
        settings.resolve(dataclasses.replace(config, jit_compile=True), mirrored(4),
                         platform=epyc)
    xla, _ = settings.resolve(dataclasses.replace(config, jit_compile=True,
                                                  sync_batch_norm=False), mirrored(4),
                              platform=epyc)
    assert (xla.jit_compile, xla.sync_batch_norm) == (True, False)
    with pytest.raises(ConfigError, match="does not divide across 4 replicas"):
        settings.resolve(dataclasses.replace(config, batch_size=30), mirrored(4))
