"""Mathematically equivalent rewrites of the article's big layers, timed against them.

    python benchmarks/conv_rewrites.py                  # bf16 (the CPU default), batch 256
    python benchmarks/conv_rewrites.py --dtype=float32

Each rewrite computes exactly what the plain op computes, from the same 5x5 kernel:
- the generator's 7x7 256->128 stride-1 transposed convolution as a convolution with the
  kernel flipped and its channels swapped;
- a stride-2 transposed convolution ("same", 5x5) as a 3x3 convolution to 4x the
  channels plus depth_to_space: output pixel (2m+p) only meets kernel taps of parity p;
- the discriminator's stride-2 convolution as space_to_depth plus a 3x3 convolution.
The script times forward plus both gradients of each pair and prints their largest
relative differences; tests/test_conv_rewrites.py checks the equivalence in float32.
Measured, none was faster (docs/measurements.md), so the models keep the plain
Keras layers.
"""

import time

from dcgan_dist import cli  # noqa: F401  first: TensorFlow's log, the process set up

from absl import app, flags  # noqa: E402

FLAGS = flags.FLAGS


def _define_flags():
    # Defined only when run as a script: tests import this module beside
    # dcgan_dist.train, whose global flags (batch_size) would clash.
    flags.DEFINE_enum("dtype", "bfloat16", ["bfloat16", "float32"], "Compute dtype.")
    flags.DEFINE_integer("batch_size", 256, "Images per call (the discriminator sees 2x).")
    flags.DEFINE_integer("rounds", 4, "Alternating timing rounds; the best is reported.")

# Zero-padding the 5x5 kernel to 6x6 makes index 5 a zero tap.
_TRANSPOSED_TAPS = ([3, 1, 5], [4, 2, 0])  # output parity -> kernel tap of each 3x3 row
_STRIDED_TAPS = ([5, 0], [1, 2], [3, 4])  # 3x3 row -> kernel tap of each input parity


def transposed_conv(x, kernel, stride):
    """The plain op: Conv2DTranspose's "same" transposed convolution, kernel [5,5,out,in]."""
    import tensorflow as tf
    batch, height, width, _ = x.shape
    shape = [batch, height * stride, width * stride, kernel.shape[2]]
    return tf.nn.conv2d_transpose(x, kernel, shape, stride, "SAME")


def transposed_conv_stride1_as_conv(x, kernel):
    import tensorflow as tf
    return tf.nn.conv2d(x, tf.transpose(tf.reverse(kernel, [0, 1]), [0, 1, 3, 2]), 1, "SAME")


def transposed_conv_stride2_as_subpixel(x, kernel):
    import tensorflow as tf
    padded = tf.pad(kernel, [[0, 1], [0, 1], [0, 0], [0, 0]])
    parts = [tf.transpose(tf.gather(tf.gather(padded, _TRANSPOSED_TAPS[py], axis=0),
                                    _TRANSPOSED_TAPS[px], axis=1), [0, 1, 3, 2])
             for py in range(2) for px in range(2)]  # each [3, 3, in, out]
    out_channels = kernel.shape[2]
    conv_kernel = tf.reshape(tf.stack(parts, axis=3),
                             [3, 3, kernel.shape[3], 4 * out_channels])
    return tf.nn.depth_to_space(tf.nn.conv2d(x, conv_kernel, 1, "SAME"), 2)


def strided_conv(x, kernel):
    """The plain op: Conv2D's "same" stride-2 convolution, kernel [5,5,in,out]."""
    import tensorflow as tf
    return tf.nn.conv2d(x, kernel, 2, "SAME")


def strided_conv_as_space_to_depth(x, kernel):
    import tensorflow as tf
    padded = tf.pad(kernel, [[0, 1], [0, 1], [0, 0], [0, 0]])
    rows = [[[[padded[_STRIDED_TAPS[jy][qy], _STRIDED_TAPS[jx][qx]] for qx in range(2)]
              for qy in range(2)] for jx in range(3)] for jy in range(3)]
    conv_kernel = tf.reshape(tf.stack(rows), [3, 3, 4 * kernel.shape[2], kernel.shape[3]])
    return tf.nn.conv2d(tf.nn.space_to_depth(x, 2), conv_kernel, 1, "SAME")


def cases(batch_size):
    """(name, input shape, kernel shape, plain fn, rewritten fn) of each layer."""
    return [
        ("generator 7x7 256->128 transposed, stride 1", [batch_size, 7, 7, 256],
         [5, 5, 128, 256], lambda x, k: transposed_conv(x, k, 1),
         transposed_conv_stride1_as_conv),
        ("generator 7x7->14x14 128->64 transposed, stride 2", [batch_size, 7, 7, 128],
         [5, 5, 64, 128], lambda x, k: transposed_conv(x, k, 2),
         transposed_conv_stride2_as_subpixel),
        ("discriminator 14x14->7x7 64->128, stride 2", [2 * batch_size, 14, 14, 64],
         [5, 5, 64, 128], strided_conv, strided_conv_as_space_to_depth),
    ]


def forward_and_gradients(fn, x, kernel, dtype):
    """fn's output and the gradients of sum(output^2) for the input and the kernel."""
    import tensorflow as tf
    with tf.GradientTape() as tape:
        tape.watch([x, kernel])
        y = fn(tf.cast(x, dtype), tf.cast(kernel, dtype))
        loss = tf.reduce_sum(tf.square(tf.cast(y, tf.float32)))
    return [y, *tape.gradient(loss, [x, kernel])]


def main(argv):
    del argv
    import tensorflow as tf
    for name, x_shape, k_shape, plain, rewritten in cases(FLAGS.batch_size):
        x = tf.random.stateless_normal(x_shape, [1, 2])
        kernel = tf.random.stateless_normal(k_shape, [3, 4]) * 0.05
        fns = {label: tf.function(lambda x, k, fn=fn: forward_and_gradients(
            fn, x, k, FLAGS.dtype)) for label, fn in (("plain", plain),
                                                       ("rewrite", rewritten))}
        outputs = {label: fn(x, kernel) for label, fn in fns.items()}  # traces too
        errors = [float(tf.reduce_max(tf.abs(tf.cast(a, tf.float32) - tf.cast(b, tf.float32)))
                        / tf.reduce_max(tf.abs(tf.cast(a, tf.float32))))
                  for a, b in zip(outputs["plain"], outputs["rewrite"])]
        best = dict.fromkeys(fns, float("inf"))
        for _ in range(FLAGS.rounds):
            for label, fn in fns.items():
                started = time.perf_counter()
                for _ in range(5):
                    result = fn(x, kernel)
                result[2].numpy()
                best[label] = min(best[label], (time.perf_counter() - started) / 5 * 1e3)
        print(f"{name}: plain {best['plain']:.1f} ms, rewrite {best['rewrite']:.1f} ms "
              f"(forward and both gradients); largest relative difference of output, "
              f"input gradient, kernel gradient: "
              + ", ".join(f"{e:.1e}" for e in errors))


if __name__ == "__main__":
    _define_flags()
    app.run(main)
