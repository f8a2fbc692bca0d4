#!/usr/bin/env bash
# Does --policy_lag=true (the next batch collected while the update runs, one update behind)
# hurt learning? Leg 34 from scratch with the default hyperparameters, synchronous against
# policy lag, 3 seeds each, FRAMES frames; frames to a running average of 200, learning curves
# and intervals go to docs/policy_lag_*. Needs requirements-extra.txt (Ray, SciPy, matplotlib).
# Writes 6 policies to trained_models/policy_lag__*, their results and update diagnostics to
# results/policy_lag__* and TensorBoard events to runs/.
# Resumable: run it again after an interruption. Finished studies are skipped, so to measure
# again after a code change, delete results/policy_lag__* and trained_models/policy_lag__*.
#   bash experiments/policy_lag.sh                     (about 9 minutes on 2 cores)
#   FRAMES=2000000 bash experiments/policy_lag.sh      (a longer budget)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
FRAMES=${FRAMES:-1500000}

python sweep.py --name policy_lag --grid policy_lag=false,true --grid seed=1,2,3 \
    --fixed leg_length=34 --fixed total_frames="$FRAMES" --cpus_per_study=1
python analyze.py results/policy_lag_manifest.json --threshold 200 --out docs \
    --prefix policy_lag_ --export docs/policy_lag_studies.jsonl.gz
