"""Training: the DeepSpeed engine configuration, the step loop, checkpoints and progress."""
