"""The values that flags take, named once, below everything that uses them: the
command lines (cli.py) define flags with them and the training config checks them,
without either importing the other. No TensorFlow here.
"""

AUTO = "auto"  # decide per platform, and say why (training/settings.py)
# --precision: the Keras dtype policy of each choice. "auto" is resolved per platform by
# `hardware.choose_precision` before anything is built.
PRECISIONS = {"fp32": "float32", "bf16": "mixed_bfloat16", "fp16": "mixed_float16"}
COMPUTE_DTYPES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}
ON_NAN = ("stop", "rollback")
# --diffaugment: DiffAugment's policies (training/augment.py), comma-separated.
DIFFAUGMENT_POLICIES = ("color", "translation", "cutout")
# --conditioning: how a --conditional generator takes its class (models.py):
# class-dependent batch-norm scales and shifts (the default, measured better:
# docs/conditional.md), or an embedding beside the noise.
CONDITIONINGS = ("batchnorm", "input")
GENERATORS = ("dcgan", "resize_conv", "bilinear", "subpixel")  # models.GENERATORS, named without importing Keras
# --strategy (training/strategies.make_strategy).
STRATEGIES = ("default", "one_device", "mirrored", "multi_worker", "tpu")
# --dataset when neither it nor --data_dir is given, and what a run recorded before the
# dataset was recorded trained on: the article's.
DEFAULT_DATASET = "mnist"
