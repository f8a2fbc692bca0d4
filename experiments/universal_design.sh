#!/usr/bin/env bash
# Trains the shipped design-space policy trained_models/universal_design.pt: one policy for every
# body in the box thigh 24-46, shin 24-46, leg width 5-11, motor torque 60-120. Each walker draws a
# new body at every episode (only bodies that start standing: shin <= 2 x thigh) and observes its
# thigh, shin, width and torque, read off the built body and scaled to [-1, 1] over the training
# ranges.
#   Training ranges: about 10% wider than the box on each side (thigh and shin 22-48, width 4-12,
#   torque 55-125), so that the box's edges and corners are inside what the policy sees, not at
#   the rim of it (universal_24_46, trained exactly on 24-46, was weakest at its edge, leg 24).
#   stage 1: 15M frames from scratch, noise 0.5 -> 0.1 over all of them (universal_design_stage1)
#   stage 2: 6M more frames from stage 1's best policy at noise 0.1 (universal_design_stage2). Its
#            best policy by the training running average came after 120k frames; its last, after
#            6M, fell more often in deterministic episodes (51% against 32%, 24 designs x 5
#            episodes), so more of the same noise did not help.
#   stage 3: 4M frames from stage 2's best at noise 0.1 with a fall penalty of -150 instead of
#            -50 (falling costs more than the walk it interrupts earns), the best policy chosen by
#            deterministic evaluation every 250k frames (30 fixed episodes over the ranges): the
#            shipped policy. It is evaluated, like every policy, on the default course (-50).
# Stages 1 and 2 choose their best policy by the running average, as they did when they were
# trained (before evaluation during training existed), and ran on that session's code: the
# shipped stage 1 was started with a 24M-frame budget whose schedule ended at 15M
# (--action_std_end=0.625) and cut to 15M on resume (the same schedule in frames as below), and
# its reward scaling was carried into stage 2 with its whole count (now capped at 10,000 frames,
# docs/guide.md#transfer-learning): rerunning them gives other policies from the same recipe.
# Wall times on 2 cores shared with tests and evaluations: docs/universal_design.md.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# shellcheck source=experiments/train.sh
source experiments/train.sh

# A stage that starts afresh makes any half-done later stage stale: it must start from the new one.
[ -f trained_models/universal_design_stage1.last.pt ] || rm -f trained_models/universal_design_stage2.last.pt
[ -f trained_models/universal_design_stage2.last.pt ] || rm -f trained_models/universal_design.last.pt
train universal_design_stage1 --config=experiments/configs/universal_design_stage1.json
train universal_design_stage2 --config=experiments/configs/universal_design_stage2.json
train universal_design --config=experiments/configs/universal_design.json

# Deterministic evaluation over the box (16 corners, 40 random designs; 30 episodes each, seeds
# 1000-1029) of the shipped policy and the two it is compared with, plus the heat maps' grid
# (10 episodes per cell); table and figure into docs/universal_design_*. Resumes: evaluations
# already in the JSON-lines file are not run again (delete it after retraining).
python experiments/evaluate_design_box.py --grid \
    --policies universal_design,leg_34_trained,universal_24_46
python experiments/evaluate_design_box.py --report docs/universal_design \
    --policies universal_design,leg_34_trained,universal_24_46
