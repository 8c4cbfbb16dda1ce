"""Training: configuration, synthetic data, the loop, checkpoints, export of shipped weights, and
packs of the training data for machines that cannot read it."""
