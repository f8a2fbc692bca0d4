#!/usr/bin/env bash
# Screenshot of TensorBoard showing two tiny studies side by side; writes docs/tensorboard.png.
#
#   apt-get install -y chromium
#   bash docs/screenshot_tensorboard.sh
#
# Trains two 100,000-frame studies at leg length 30, from scratch and by transfer from the
# shipped leg-34 policy (a few minutes on 2 cores), into WORK (default: a new temporary folder),
# serves their events with `tensorboard` on 127.0.0.1:PORT (default 6123), and has headless
# Chromium take the picture. OUT (default docs/tensorboard.png) is where it goes; SIZE (default
# 1500,2950, tall enough for every chart) the browser window, in pixels.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
work="${WORK:-$(mktemp -d)}"
out="${OUT:-docs/tensorboard.png}"
port="${PORT:-6123}"

study=(--leg_length=30 --total_frames=100000 --batch_size=5000 --minibatch_size=500
       --train_steps=40 --quiet --models_dir="${work}/models" --results_dir="${work}/results"
       --tensorboard="${work}/runs")
[[ -f "${work}/results/leg30_scratch.p" ]] || python run.py --save_name=leg30_scratch "${study[@]}"
[[ -f "${work}/results/leg30_initialize.p" ]] ||
    python run.py --save_name=leg30_initialize --initial_model=leg_34_trained "${study[@]}"

tensorboard --logdir "${work}/runs" --host 127.0.0.1 --port "${port}" \
    >"${work}/tensorboard.log" 2>&1 &
tensorboard_pid=$!
trap 'kill "${tensorboard_pid}"' EXIT
for _ in $(seq 60); do
    curl -fs "http://127.0.0.1:${port}/data/runs" | grep -q leg30 && break
    sleep 1
done

# Nothing leaves the machine: no sync, no component or field-trial downloads. The charts are
# drawn as SVG (TensorBoard's forceSVG): without a GPU, WebGL falls back to a software renderer
# that leaves most of a page of charts blank.
chromium --headless --no-sandbox --disable-gpu --disable-background-networking \
    --disable-component-update --disable-sync --no-first-run --hide-scrollbars \
    --window-size="${SIZE:-1500,2950}" --virtual-time-budget=20000 \
    --screenshot="$(realpath -m "${out}")" "http://127.0.0.1:${port}/?forceSVG=true#timeseries"
# 256 colours lose nothing visible in a chart page and save two thirds of the file.
python -c "import sys; from PIL import Image
Image.open(sys.argv[1]).quantize(256).save(sys.argv[1], optimize=True)" "${out}"
echo "wrote ${out} (studies in ${work})"
