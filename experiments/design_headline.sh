#!/usr/bin/env bash
# The headline design study (docs/design_headline.md), redone as one staged search (issue 32)
# with the shipped design-space policy universal_design over the box it was made for (thigh and
# shin 24-46, leg width 5-11, motor torque 60-120):
#   screen   60 candidates x 10 terrains, zero-shot (TPE)
#   rescore  the top 12 on 30 fresh terrains
#   finetune the top 4, 5 seeds each, FINETUNE_FRAMES frames, ranked at 4 frame checkpoints
#   final    the top 1 and the default body, 5 new seeds, FINAL_FRAMES frames, 30 held-out
#            terrains per policy, paired; writes docs/design_headline/final.json
# One resumable command: rerun it after a stop and it continues the stage that stopped.
# Environment overrides (the tiny end-to-end check uses them; the headline does not):
#   RESULTS_DIR MODELS_DIR OUT_DIR TRIALS FINETUNE FINAL EXTRA
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

RESULTS_DIR=${RESULTS_DIR:-results}
MODELS_DIR=${MODELS_DIR:-trained_models}
OUT_DIR=${OUT_DIR:-docs/design_headline}
TRIALS=${TRIALS:-60}
RESCORE=${RESCORE:-12:30}
FINETUNE=${FINETUNE:-4:5:1000000:30}
FINAL=${FINAL:-1:5:1000000:30}
EXTRA=${EXTRA:-}
NAME=headline_staged

again() { [ -f "$RESULTS_DIR/$NAME.db" ] && echo --resume=true || echo --overwrite=true; }
# shellcheck disable=SC2086
python design.py --save_name=$NAME --initial_model=universal_design \
    --thigh_length=24:46 --shin_length=24:46 --leg_width=5:11 --motor_torque=60:120 \
    --objective=score --finish_bonus=500 --trials="$TRIALS" --episodes=10 --parallel=2 \
    --rescore="$RESCORE" --finetune="$FINETUNE" --checkpoints=4 --final="$FINAL" \
    --results_dir="$RESULTS_DIR" --models_dir="$MODELS_DIR" $EXTRA "$(again)" --quiet

mkdir -p "$OUT_DIR"
cp "$RESULTS_DIR/${NAME}_final.json" "$OUT_DIR/final.json"
cp "$RESULTS_DIR/${NAME}_design.md" "$RESULTS_DIR/${NAME}_design_params.png" \
    "$RESULTS_DIR/${NAME}_design_progress.png" "$OUT_DIR/"
