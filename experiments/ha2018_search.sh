#!/usr/bin/env bash
# The learned body of Ha (2018) here: the staged design search (docs/design_search.md) over his
# eight per-leg parameters (each within ±75% of Gymnasium's), with the design-space policy
# ha_design (experiments/ha2018_design.sh: train it first), on Gymnasium's own course, ranked by
# the deterministic score with at most 10% falls. Its final stage trains the best body and the
# original body (--baseline) equally, five new seeds each, and compares them paired on held-out
# terrains (--seed 1000: stage terrains 1000 + 100,000 x stage; experiments/ha2018_score.py's
# terrains lie outside them). Resumable: run it again and the search continues (--resume).
# Budgets and folders are variables, so that a smoke check runs this very command small.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

TRIALS=${TRIALS:-200}
EPISODES=${EPISODES:-10}
RESCORE=${RESCORE:-10:30}
FINETUNE=${FINETUNE:-3:5:1000000:30}
FINAL=${FINAL:-1:5:3000000:100}
MAX_FALL_RATE=${MAX_FALL_RATE:-0.1}
SAVE_NAME=${SAVE_NAME:-ha_learned}
RESULTS_DIR=${RESULTS_DIR:-results}
MODELS_DIR=${MODELS_DIR:-trained_models}

HA_COURSE="--terrain_length_scale=1 --fall_penalty=-100 --max_time_steps=1600"
HA_BOX="--left_thigh_length=8.5:59.5 --right_thigh_length=8.5:59.5
    --left_shin_length=8.5:59.5 --right_shin_length=8.5:59.5
    --left_thigh_width=2:14 --right_thigh_width=2:14
    --left_shin_width=1.6:11.2 --right_shin_width=1.6:11.2"
ORIGINAL="left_thigh_length=34,right_thigh_length=34,left_shin_length=34,right_shin_length=34"
ORIGINAL+=",left_thigh_width=8,right_thigh_width=8,left_shin_width=6.4,right_shin_width=6.4"
again=()
[ -f "$RESULTS_DIR/$SAVE_NAME.db" ] && again=(--resume=true)
# shellcheck disable=SC2086
python design.py --save_name="$SAVE_NAME" --initial_model=ha_design $HA_COURSE $HA_BOX \
    --objective=score --max_fall_rate="$MAX_FALL_RATE" --seed=1000 --parallel=2 \
    --trials="$TRIALS" --episodes="$EPISODES" --rescore="$RESCORE" --finetune="$FINETUNE" \
    --final="$FINAL" --baseline="$ORIGINAL" --results_dir="$RESULTS_DIR" \
    --models_dir="$MODELS_DIR" "${again[@]}"
