#!/usr/bin/env bash
# Fine-tuning from the design-conditioned policy: leg-28 and leg-42 walkers trained from
# universal_24_46, from leg_34_trained (both with `initialize`) and from scratch, 3 seeds each,
# 500k frames each, all under the noise schedule the sample policy was trained with (0.5 -> 0.1
# over the first 60% of the budget). Frames to a running average of 300 and the other transfer
# metrics go to docs/finetune_*. Resumable: run it again after an interruption.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
FRAMES=${FRAMES:-500000}
common=(--grid leg_length=28,42 --grid seed=1,2,3 --fixed total_frames="$FRAMES"
        --fixed action_std_start=0.5 --fixed action_std_final=0.1 --fixed action_std_end=0.6
        --fixed num_envs=8 --fixed num_workers=0 --cpus_per_study=1)

python sweep.py --name finetune --grid strategy=scratch,initialize \
    --fixed initial_model=leg_34_trained "${common[@]}"
python sweep.py --name finetune_universal --grid strategy=initialize \
    --fixed initial_model=universal_24_46 "${common[@]}"

python analyze.py results/finetune_manifest.json results/finetune_universal_manifest.json \
    --threshold 300 --out docs --prefix finetune_ --export docs/finetune_studies.jsonl.gz
