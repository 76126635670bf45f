"""This CPU's matrix-multiply throughput in float32 and bfloat16: the ceiling that
bounds how much mixed precision can speed a training step up.

    python benchmarks/matmul_peak.py          # --json: one JSON line instead
"""

import json
import sys
import time

from dcgan_dist import cli  # noqa: F401  first: TensorFlow's log, the process set up

import tensorflow as tf  # noqa: E402

SIZE = 2048


def gflops(dtype, repeats=10, rounds=5):
    a = tf.cast(tf.random.stateless_normal([SIZE, SIZE], [1, 2]), dtype)
    b = tf.cast(tf.random.stateless_normal([SIZE, SIZE], [3, 4]), dtype)
    matmul = tf.function(tf.matmul)
    matmul(a, b).numpy()  # traced and warm
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        for _ in range(repeats):
            c = matmul(a, b)
        c.numpy()
        best = min(best, (time.perf_counter() - started) / repeats)
    return 2 * SIZE ** 3 / best / 1e9


if __name__ == "__main__":
    fp32, bf16 = gflops(tf.float32), gflops(tf.bfloat16)
    if "--json" in sys.argv:
        print(json.dumps({"float32": round(fp32, 1), "bfloat16": round(bf16, 1)}))
    else:
        print(f"float32: {fp32:.0f} GFLOP/s | bfloat16: {bf16:.0f} GFLOP/s | "
              f"ratio: {bf16 / fp32:.2f}")
