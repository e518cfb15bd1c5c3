"""Training: the Accelerate trainer, each modality's recipe, losses, discriminators, EMA, checkpoints, export."""
