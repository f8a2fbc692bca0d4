#!/usr/bin/env bash
# Does --policy_lag=true (the next batch collected while the update runs, one update behind)
# hurt learning? Leg 34 from scratch with the default hyperparameters, synchronous against
# policy lag, 3 seeds each, FRAMES frames; frames to a running average of 200, learning curves
# and intervals go to docs/policy_lag_*. Resumable: run it again after an interruption.
#   bash experiments/policy_lag.sh            (about 15 minutes on 2 cores)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
FRAMES=${FRAMES:-1500000}

python sweep.py --name policy_lag --grid policy_lag=false,true --grid seed=1,2,3 \
    --fixed leg_length=34 --fixed total_frames="$FRAMES" --cpus_per_study=1
python analyze.py results/policy_lag_manifest.json --threshold 200 --out docs \
    --prefix policy_lag_ --export docs/policy_lag_studies.jsonl.gz
