"""Expert fine-tuning: losses, the two-stage loop, checkpoints that resume exactly, and each source's training data."""
