"""Evaluation: what a generator learned and how well a discriminator spots its images
(FID, KID, classifier score, coverage, precision/recall, ROC-AUC), measured in the
feature space of a classifier trained on the dataset."""
