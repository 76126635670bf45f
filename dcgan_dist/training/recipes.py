"""Training recipes (--recipe): named groups of the hyper-parameters a practitioner may
change without touching the article's two networks. A flag given explicitly overrides
its recipe's value; `TrainConfig` resolves the two into one set of values, which is what
a workdir records and a resume must match.

- `article`: the seed article exactly: Adam(1e-4, beta1 0.9) for both networks, batch
  256, no weight averaging.
- `fast`: what measured runs showed reaches the article's 50-epoch quality soonest on
  the same networks (the README's "Recipes" section has the runs):
  - Adam(2e-4, beta1 0.5) for both networks, the DCGAN paper's setting: with beta1 0.9
    the two players oscillate (the article's FID rises and falls from epoch to epoch);
  - batch 64: four times the updates per image; on two CPU cores it runs 0.73x the
    images per second of batch 256, so 2.9x the updates per second, and early GAN
    progress is counted in updates. Smaller batches go further (at 16: the article's
    50-epoch FID in 102 s instead of 252 s; the README's first command trains at 8,
    docs/time_to_quality.md); one becomes fast's batch once a run to the article's
    full budget at it is measured, as batch 64's was;
  - an exponential moving average of the generator's weights (StyleGAN2's G_ema): a
    half-life of 10,000 images, ramped up over the first images seen (half-life at most
    5% of the images so far), so early averages do not drag in the random init. Measured
    (docs/time_to_quality.md): in the first two epochs it trails the raw generator.
"""

ARTICLE = "article"
FAST = "fast"

RECIPES = {
    ARTICLE: dict(batch_size=256, g_learning_rate=1e-4, d_learning_rate=1e-4, beta1=0.9,
                  beta2=0.999, ema_decay=None, ema_halflife_images=None, ema_rampup=0.0),
    FAST: dict(batch_size=64, g_learning_rate=2e-4, d_learning_rate=2e-4, beta1=0.5,
               beta2=0.999, ema_decay=None, ema_halflife_images=10000.0, ema_rampup=0.05),
}

# The hyper-parameters a recipe sets; each is a TrainConfig field and a --flag.
FIELDS = tuple(RECIPES[ARTICLE])
