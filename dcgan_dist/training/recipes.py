"""Training recipes (--recipe): named groups of the hyper-parameters a practitioner may
change without touching the article's two networks. A flag given explicitly overrides
its recipe's value; `TrainConfig` resolves the two into one set of values, which is what
a workdir records and a resume must match.

- `article`: the seed article exactly: Adam(1e-4, beta1 0.9) for both networks, batch
  256, no weight averaging.
- `fast`: what measured runs showed reaches the article's 50-epoch quality soonest on
  the same networks (docs/time_to_quality.md has the runs and their figures):
  - Adam(2e-4, beta1 0.5) for both networks, the DCGAN paper's setting: with beta1 0.9
    the two players oscillate (the article's FID rises and falls from epoch to epoch);
  - batch 64: more updates per image, and early GAN progress is counted in updates.
    Smaller batches go further in the first minutes (the README's first command trains
    at 8); one becomes fast's batch once a run to the article's full budget at it is
    measured, as batch 64's was;
  - an exponential moving average of the generator's weights (StyleGAN2's G_ema): a
    half-life of 10,000 images, ramped up over the first images seen (half-life at most
    5% of the images so far), so early averages do not drag in the random init. It
    trails the raw generator early and beats it at the article's full budget.
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
