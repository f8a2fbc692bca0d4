#!/usr/bin/env bash
# Trains the original (Gymnasium's default) body on Gymnasium's own course, as Ha (2018) scored
# it: course length 1 (200 terrain steps), fall penalty -100, 1,600 steps. Five training seeds,
# 3M frames each, from scratch, with the sample policy's noise schedule (0.5 -> 0.1 over the first
# 60%, experiments/sample_policy.sh); each study's best policy is chosen by the evaluation during
# training (its fixed evaluation seeds), never by the held-out terrains that score it
# (docs/ha2018.md). Resumable: run it again and each unfinished study continues.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# shellcheck source=experiments/train.sh
source experiments/train.sh

HA_COURSE="--terrain_length_scale=1 --fall_penalty=-100 --max_time_steps=1600"
for seed in 1 2 3 4 5; do
    # shellcheck disable=SC2086
    train "ha_original_s$seed" $HA_COURSE --seed="$seed" --total_frames=3e6 \
        --action_std_start=0.5 --action_std_final=0.1 --action_std_end=0.6
done
