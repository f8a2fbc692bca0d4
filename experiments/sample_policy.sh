#!/usr/bin/env bash
# Trains the shipped sample policy trained_models/leg_34_trained.pt and evaluates it.
# About an hour on a 2-core box. Resumable: run it again after an interruption.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# An interrupted run resumes; otherwise the study starts again, replacing the shipped policy.
again=--overwrite=true
[ -f trained_models/leg_34_trained.last.pt ] && again=--resume=true
python run.py --config=experiments/configs/leg_34_trained.json "$again"

# Deterministic evaluation on the default walker (terrain scale 2, 1500 steps, fall penalty -50).
python run.py --save_name=leg_34_trained --leg_length=34 --eval_episodes=20 --seed=1000
