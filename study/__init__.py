"""A study's life around the algorithm: building it, the training loop, signals and resume
(`trainer`), evaluation during training, progress, the banner and TensorBoard. What it shares
with the rest of the tool (configuration, checkpoints, file names, errors) is in `common/`."""
