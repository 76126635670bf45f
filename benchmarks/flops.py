"""The floating-point operations of one training step, counted from the models' layers.

Per image, a multiply-add is 2 FLOPs; a layer's forward pass costs
- Dense: inputs x units;
- Conv2D: output pixels x output channels x kernel area x input channels;
- Conv2DTranspose: input pixels x input channels x kernel area x output channels;
and each of its two gradients (the input's and the kernel's) is a convolution of the
forward's size. Batch norm, activations, dropout and the optimizers are elementwise and
left out (well under 1% here).

One step of the article's `train_step` (and the package's, which has the same two tapes)
runs the generator forward once and the discriminator forward twice (real and fake
batch). Counted are only the gradients the compiled step computes; TensorFlow builds
no others (a gradient function skips inputs that lead to no source, and grappler
prunes outputs nothing reads):
- kernel gradients: the generator's, and the discriminator's on both batches (its loss);
- input gradients: the discriminator's on the fake batch alone, through every layer,
  so that the generator's loss reaches the generator; and the generator's, except its
  first layer's (its input is the noise).
Step = (g + 2d) + (g + 2d) + (g - g_first + d). For the article's networks: 0.411 GFLOP
per image. (Counting every gradient of every backward pass, as this module did before
2026-12-02, gives 0.476: the figures measured with that count overstate GFLOP/s by 16%.)
"""

import keras


def _forward_macs(layer):
    """Multiply-adds of one image through `layer` (0 for elementwise layers)."""
    if isinstance(layer, keras.layers.Dense):
        return layer.kernel.shape[0] * layer.kernel.shape[1]
    if isinstance(layer, keras.layers.Conv2DTranspose):
        height, width, channels_in = layer.input.shape[1:]
        kernel_h, kernel_w, channels_out, _ = layer.kernel.shape
        return height * width * channels_in * kernel_h * kernel_w * channels_out
    if isinstance(layer, keras.layers.Conv2D):
        height, width, channels_out = layer.output.shape[1:]
        kernel_h, kernel_w, channels_in, _ = layer.kernel.shape
        return height * width * channels_out * kernel_h * kernel_w * channels_in
    return 0


def forward_flops(model):
    """FLOPs of one image through `model`, a built Keras model (of any nesting)."""
    return 2 * sum(_forward_macs(layer) for layer in _layers(model))


def _layers(model):
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from _layers(layer)
        else:
            yield layer


def train_step_flops(generator, discriminator):
    """FLOPs per image of one GAN training step (see the module docstring)."""
    g, d = forward_flops(generator), forward_flops(discriminator)
    g_first = 2 * next(macs for macs in map(_forward_macs, _layers(generator)) if macs)
    return (g + 2 * d) + (g + 2 * d) + (g - g_first + d)
