"""Serving: a trained run's networks restored from its checkpoints, seeded samples,
the discriminator's scores, and the SavedModels that `export` writes."""
