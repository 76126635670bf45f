"""The floating-point operations of one training step, counted from the models' layers.

Per image, a multiply-add is 2 FLOPs; a layer's forward pass costs
- Dense: inputs x units;
- Conv2D: output pixels x output channels x kernel area x input channels;
- Conv2DTranspose: input pixels x input channels x kernel area x output channels;
and its backward pass twice its forward (the input gradient and the kernel gradient,
each a convolution of the forward's size). Batch norm, activations, dropout and the
optimizers are elementwise and left out (well under 1% here).

One step of the article's `train_step` runs the generator forward once and the
discriminator forward twice (real and fake batch); it differentiates the discriminator
for both batches (its loss), and the fake batch once more through the generator (the
generator's loss, on its own tape): backward = 2 x (D real + D fake + D fake + G).
For the article's networks: about 0.475 GFLOP per image.
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
    return (g + 2 * d) + 2 * (3 * d + g)
