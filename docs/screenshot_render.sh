#!/usr/bin/env bash
# Screenshot of the `--render=True` window, made on a virtual display; writes docs/render_window.png.
#
#   apt-get install -y xvfb twm imagemagick xdotool
#   xvfb-run -a -s "-screen 0 800x600x24" bash docs/screenshot_render.sh \
#       --save_name=leg_34_trained --leg_length=34
#
# Flags are passed to run.py (which adds --render=True). WAIT (default 8) is how many seconds
# the walker runs before the shot; OUT (default docs/render_window.png) where it goes.
# twm is only there to draw the title bar, so the caption shows in the picture.
set -euo pipefail
set -m  # job control: background jobs keep SIGINT, so `kill -INT` below acts like Ctrl-C
cd "$(dirname "${BASH_SOURCE[0]}")/.."
out="${OUT:-docs/render_window.png}"

twm >/dev/null 2>&1 &
wm_pid=$!
sleep 1
python run.py "$@" --render=True &
run_pid=$!
sleep "${WAIT:-8}"
window_id="$(xdotool search --pid "${run_pid}" | head -n 1)"
import -frame -window "${window_id}" "${out}"
kill -INT "${run_pid}"
wait "${run_pid}"
kill "${wm_pid}"
echo "wrote ${out}"
