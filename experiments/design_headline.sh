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

# (b)'s winner (the top of the ranked table), checked on 30 terrains the search never saw.
read -r -a lightest < <(python -c "
import json
best = json.load(open('results/headline_light_design.json'))['trials'][0]['params']
print(' '.join(f'--{name}={value:.2f}' for name, value in best.items()))")
python run.py --initial_model=universal_design "${lightest[@]}" --eval_episodes=30 --seed=5000 \
    --save_name=headline_light_check --overwrite=true --quiet

# What docs/design_headline.md shows.
mkdir -p docs/design_headline
cp results/headline_score_design.md results/headline_light_design.md \
    results/headline_score_design_params.png results/headline_score_design_progress.png \
    results/headline_light_design_params.png results/headline_light_design_progress.png \
    results/headline_score_confirm.json \
    results/headline_light_check_eval.json docs/design_headline/
