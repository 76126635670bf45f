"""Using a trained run: its networks restored for inference, seeded samples, the
discriminator's scores, and the SavedModels that `export` writes."""
