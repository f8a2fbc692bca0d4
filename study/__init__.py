"""A study's life around the algorithm: its configuration, the training loop, checkpoints, its
files and lock, results, progress, the banner, TensorBoard, and the errors `run.py` reports."""
