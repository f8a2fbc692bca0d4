#!/usr/bin/env bash
# Trains the shipped design-conditioned policy trained_models/universal_24_46.pt: one policy for
# every leg length from 24 to 46 (each walker draws a new length at every episode and observes
# it), then evaluates it deterministically at every integer leg length in that range.
#   stage 1: 10M frames from scratch, noise 0.5 -> 0.1 over the first 6M (universal_24_46_stage1)
#   stage 2: 6M more frames from stage 1's best policy at noise 0.1 (the shipped policy). It
#            cut the falls at legs 30-45 from 10-80% of deterministic episodes to 0-30%.
# Both policies are shipped; rerunning stage 1 gives a different policy from the same recipe.
# Roughly 20-25 minutes on 2 cores with nothing else running (an estimate: stage 2 took 7.5-9
# minutes alone; stage 1 was timed only on a shared machine, 43.5 minutes). Resumable: run it
# again after an interruption; a finished stage resumes to no work.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# shellcheck source=experiments/train.sh
source experiments/train.sh

# A stage 1 that starts afresh makes any half-done stage 2 stale: it must start from the new one.
[ -f trained_models/universal_24_46_stage1.last.pt ] || rm -f trained_models/universal_24_46.last.pt
train universal_24_46_stage1 --config=experiments/configs/universal_24_46_stage1.json
train universal_24_46 --config=experiments/configs/universal_24_46.json

# Zero-shot at every integer leg length from 24 to 46, 10 deterministic episodes each (seeds
# 1000-1009), beside the fixed-design leg_34_trained; table and figure into docs/universal_*.
# The evaluations always run again (about a minute): a sweep would skip finished ones, made
# with whatever policy was here before.
rm -f results/universal_zeroshot__*
legs=$(seq -s, 24 46)
python sweep.py --name universal_zeroshot --grid leg_length="$legs" \
    --grid initial_model=universal_24_46,leg_34_trained --fixed eval_episodes=10 \
    --fixed seed=1000 --cpus_per_study=1
python analyze.py results/universal_zeroshot_manifest.json --out docs --prefix universal_ \
    --export docs/universal_studies.jsonl.gz
