#!/usr/bin/env bash
# The headline design study of docs/design_headline.md, with the shipped design-space policy
# universal_design over the box it was made for (thigh and shin 24-46, leg width 5-11, motor
# torque 60-120):
#   (a) the best design by score (mean return plus a bonus of 500 x the share of the 1,500-step
#       limit left when the walker finishes: it separates walkers that all finish), screened
#       zero-shot over 60 trials x 10 terrains, then the top 11 and the default body fine-tuned
#       from the policy (100k frames, 3 seeds each) and re-scored on 30 new terrains;
#   (b) the lightest legs that still walk: min_leg_area with a deterministic mean return >= 300
#       over 10 terrains, then its winner checked on 30 terrains (seeds 5000-5029).
# Resumable: design.py resumes a search and its confirmation runs; rerun after an interruption.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

BOX="--thigh_length=24:46 --shin_length=24:46 --leg_width=5:11 --motor_torque=60:120"
again() { [ -f "results/$1.db" ] && echo --resume=true || echo --overwrite=true; }
# shellcheck disable=SC2086
python design.py --save_name=headline_score $BOX --objective=score --finish_bonus=500 \
    --trials=60 --episodes=10 --parallel=2 --confirm=11 --confirm_frames=100000 \
    "$(again headline_score)" --quiet
# shellcheck disable=SC2086
python design.py --save_name=headline_light $BOX --objective=min_leg_area --min_score=300 \
    --trials=60 --episodes=10 --parallel=2 "$(again headline_light)" --quiet
