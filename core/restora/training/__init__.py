"""Training: configuration, synthetic data, the loop, checkpoints and export of shipped weights."""
