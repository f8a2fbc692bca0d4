"""Sweeps: grids of run.py studies run as Ray tasks (`sweep.py` is the command line).

- `sweeps.grid`: the axes, each point's run.py flags and its name.
- `sweeps.state`: each study's command line and state on disk (finished, interrupted,
  conflicting), and the manifest.
- `sweeps.task`: what a Ray task runs, on whichever node: run.py in a scratch folder.
- `sweeps.execution`: launching, collecting, retrying and stopping the tasks on Ray.
"""
