#!/usr/bin/env bash
# Trains the shipped design-conditioned policy trained_models/universal_24_46.pt: one policy for
# every leg length from 24 to 46 (each walker draws a new length at every episode and observes
# it), then evaluates it deterministically at every integer leg length in that range.
# Resumable: run it again after an interruption.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# An interrupted run resumes; otherwise the study starts again, replacing the shipped policy.
again=--overwrite=true
[ -f trained_models/universal_24_46.last.pt ] && again=--resume=true
python run.py --save_name=universal_24_46 --leg_length=24:46 --seed=1 --total_frames=10e6 \
    --action_std_start=0.5 --action_std_final=0.1 --action_std_end=0.6 "$again" --quiet=true

# Zero-shot at every integer leg length from 24 to 46, 10 deterministic episodes each (seeds
# 1000-1009), beside the fixed-design leg_34_trained; table and figure into docs/universal_*.
legs=$(seq -s, 24 46)
python sweep.py --name universal_zeroshot --grid leg_length="$legs" \
    --grid initial_model=universal_24_46,leg_34_trained --fixed eval_episodes=10 \
    --fixed seed=1000 --cpus_per_study=1
python analyze.py results/universal_zeroshot_manifest.json --out docs --prefix universal_ \
    --export docs/universal_studies.jsonl.gz
