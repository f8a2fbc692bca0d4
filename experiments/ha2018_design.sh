#!/usr/bin/env bash
# Trains ha_design, the design-space policy for Ha (2018)'s eight-parameter body space: the
# length and the width of each leg's thigh and shin, each within ±75% of Gymnasium's values
# (lengths 8.5-59.5, thigh widths 2-14, shin widths 1.6-11.2; motor torque 80), on Gymnasium's
# own course (docs/ha2018.md). Every walker draws a new body at each episode, with each
# parameter at an end of its range half of the time (--design_draw=edges), so that the box's
# edges and corners are trained on, not only its middle (universal_design's three failing
# corners were all at its edges); only bodies that start standing are drawn (a shin at most twice
# its thigh, on each leg). 20M frames from scratch, noise 0.5 -> 0.1 over the first 15M, the best
# policy chosen by the evaluation during training every 500k frames (20 fixed episodes over the
# box), never by the terrains that score it. Resumable: run it again and it continues.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# shellcheck source=experiments/train.sh
source experiments/train.sh

HA_COURSE="--terrain_length_scale=1 --fall_penalty=-100 --max_time_steps=1600"
HA_BOX="--left_thigh_length=8.5:59.5 --right_thigh_length=8.5:59.5
    --left_shin_length=8.5:59.5 --right_shin_length=8.5:59.5
    --left_thigh_width=2:14 --right_thigh_width=2:14
    --left_shin_width=1.6:11.2 --right_shin_width=1.6:11.2"
# shellcheck disable=SC2086
train ha_design $HA_COURSE $HA_BOX --design_draw=edges --seed=1 --total_frames=20e6 \
    --action_std_start=0.5 --action_std_final=0.1 --action_std_end=0.75 \
    --eval_every=500000 --eval_episodes_during=20
