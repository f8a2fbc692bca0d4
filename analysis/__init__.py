"""Analysis of finished studies: learning curves, transfer metrics, zero-shot transfer.

- `data`: reading results pickles, sweep manifests, evaluation reports and compact exports;
  grouping studies that differ only by seed.
- `stats`: SciPy's percentile bootstrap behind every confidence interval, seeded; rliable's
  interquartile mean and probability of improvement.
- `metrics`: running averages on a common frame grid and the transfer metrics of Taylor & Stone
  (2009), per study and per group against its from-scratch baseline.
- `zero_shot`: policies evaluated on walkers they were not trained on.
- `report` (Markdown tables) and `plots` (PNG, matplotlib's Agg backend).

`analyze.py` is the command line. Nothing here imports torch or the trainer: the inputs are
plain files, so figures can be redrawn on any machine with numpy, scipy and matplotlib.
"""
