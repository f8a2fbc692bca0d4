#!/usr/bin/env bash
# Trains the shipped design-space policy trained_models/universal_design.pt: one policy for every
# body in the box thigh 24-46, shin 24-46, leg width 5-11, motor torque 60-120. Each walker draws a
# new body at every episode (only bodies that start standing: shin <= 2 x thigh) and observes its
# thigh, shin, width and torque, read off the built body and scaled to [-1, 1] over the training
# ranges.
#   Training ranges: about 10% wider than the box on each side (thigh and shin 22-48, width 4-12,
#   torque 55-125), so that the box's edges and corners are inside what the policy sees, not at
#   the rim of it (universal_24_46, trained exactly on 24-46, was weakest at its edge, leg 24).
#   stage 1: 24M frames from scratch, noise 0.5 -> 0.1 over the first 15M (universal_design_stage1)
#   stage 2: 8M more frames from stage 1's best policy at noise 0.1 (the shipped policy): in
#            universal_24_46 this stage cut the falls of deterministic episodes most.
# Then the deterministic evaluation of docs/universal_design.md (experiments/evaluate_design_box.py).
# Resumable: run it again after an interruption; a finished stage resumes to no work.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# Trains save_name with the given flags: resumes it if it has a resume checkpoint (a finished
# study resumes to no work), otherwise starts it afresh, replacing any policy of that name.
train() {
    local name=$1; shift
    local again=--overwrite=true
    [ -f "trained_models/$name.last.pt" ] && again=--resume=true
    python run.py --save_name="$name" "$@" "$again" --quiet=true
}

BOX="--thigh_length=22:48 --shin_length=22:48 --leg_width=4:12 --motor_torque=55:125"
# A stage 1 that starts afresh makes any half-done stage 2 stale: it must start from the new one.
[ -f trained_models/universal_design_stage1.last.pt ] || rm -f trained_models/universal_design.last.pt
# shellcheck disable=SC2086
train universal_design_stage1 $BOX --seed=1 --total_frames=24e6 \
    --action_std_start=0.5 --action_std_final=0.1 --action_std_end=0.625
# shellcheck disable=SC2086
train universal_design $BOX --initial_model=universal_design_stage1 --seed=2 \
    --total_frames=8e6 --action_std=0.1
