#!/usr/bin/env bash
# Fine-tuning from the design-conditioned policy: leg-28 and leg-42 walkers trained from
# universal_24_46, from leg_34_trained (both with `initialize`) and from scratch, 3 seeds each,
# all groups under the same noise schedule (STD_START -> 0.1 over the first 60% of the budget).
# Frames to a running average of 300 and the other transfer metrics go to docs/<NAME>_*.
# Resumable: run it again after an interruption.
#   bash experiments/universal_finetune.sh                                   (the shipped schedule)
#   NAME=finetune_lownoise FRAMES=300000 STD_START=0.2 bash experiments/universal_finetune.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
NAME=${NAME:-finetune}
FRAMES=${FRAMES:-500000}
STD_START=${STD_START:-0.5}
common=(--grid leg_length=28,42 --grid seed=1,2,3 --fixed total_frames="$FRAMES"
        --fixed action_std_start="$STD_START" --fixed action_std_final=0.1
        --fixed action_std_end=0.6 --fixed num_envs=8 --cpus_per_study=1)

python sweep.py --name "$NAME" --grid strategy=scratch,initialize \
    --fixed initial_model=leg_34_trained "${common[@]}"
python sweep.py --name "${NAME}_universal" --grid strategy=initialize \
    --fixed initial_model=universal_24_46 "${common[@]}"

python analyze.py "results/${NAME}_manifest.json" "results/${NAME}_universal_manifest.json" \
    --threshold 300 --out docs --prefix "${NAME}_" --export "docs/${NAME}_studies.jsonl.gz"
