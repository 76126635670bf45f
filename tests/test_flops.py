"""benchmarks/flops.py: a step's FLOPs counted from the layers, by hand for the article's."""

import flops
from dcgan_dist import models


def test_the_article_step_counts_the_gradients_the_step_computes():
    generator = models.make_generator_model()
    discriminator = models.make_discriminator_model()
    # Multiply-adds per image, layer by layer (see flops.py for the rule of each kind).
    dense = 100 * 7 * 7 * 256
    g = dense + 7 * 7 * 256 * 25 * 128 + 7 * 7 * 128 * 25 * 64 + 14 * 14 * 64 * 25 * 1
    d = 14 * 14 * 64 * 25 * 1 + 7 * 7 * 128 * 25 * 64 + 7 * 7 * 128
    assert flops.forward_flops(generator) == 2 * g == 103_488_000
    assert flops.forward_flops(discriminator) == 2 * d
    # Forward: G, D twice. Kernel gradients: G, D twice. Input gradients: D on the fake
    # batch, G but for its first layer (the noise needs none).
    expected = 2 * ((g + 2 * d) + (g + 2 * d) + (g - dense + d))
    assert flops.train_step_flops(generator, discriminator) == expected == 411_505_920
