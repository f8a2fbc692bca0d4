"""Draw a few walker designs side by side, at rest after reset: docs/designs.png (symmetric
designs, for the guide) and docs/designs_asymmetric.png (legs that differ, docs/ha2018.md).

    python docs/draw_designs.py [--set symmetric|asymmetric] [--out PATH]

Every panel is cut from the walker's own rendered frame ("rgb_array", no display needed) through
the same window relative to the start pad, so the bodies are drawn to one scale. Labels use
Pillow's scalable default font (Pillow >= 10.1; pillow comes with imageio).
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import gymnasium as gym
import numpy as np
from gymnasium.envs.box2d.bipedal_walker import SCALE, TERRAIN_HEIGHT, VIEWPORT_H
from PIL import Image, ImageDraw, ImageFont

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(REPO_ROOT))

from envs import ENV_ID  # noqa: E402 (needs the repository on the path)


@dataclass(frozen=True)
class Panel:
    title: str
    design: dict[str, float]


PANELS = (
    Panel("default", {}),
    Panel("short thighs", {"thigh_length": 20}),
    Panel("long shins", {"shin_length": 60}),
    Panel("wide legs", {"leg_width": 18}),
    Panel("long legs", {"leg_length": 60}),
)
"""Each panel's changes to the default walker (leg 34, width 8, torque 80)."""
ASYMMETRIC_PANELS = (
    Panel("default", {}),
    Panel("short left leg", {"left_thigh_length": 17, "left_shin_length": 17}),
    Panel("long right shin", {"right_shin_length": 55}),
    Panel("thin left, wide right", {"left_thigh_width": 3, "left_shin_width": 2.4,
                                    "right_thigh_width": 14, "right_shin_width": 11.2}),
    Panel("Ha's extremes", {"left_thigh_length": 8.5, "left_shin_length": 17,
                            "right_thigh_length": 59.5, "right_shin_length": 59.5}),
)
"""Bodies whose legs differ (the left leg is drawn behind the right one)."""
PANEL_SETS = {"symmetric": (PANELS, "designs.png"),
              "asymmetric": (ASYMMETRIC_PANELS, "designs_asymmetric.png")}

PANEL_WIDTH_PX = 140
"""Rendered pixels kept around the hull's centre: the hull and legs, not the start flag."""
MARGIN_PX = 16
"""Sky above the tallest walker and ground below the start pad, in rendered pixels."""
ZOOM = 2
"""Each rendered pixel becomes ZOOM x ZOOM: crisp on high-density screens; show the picture at
1/ZOOM of its width (README: width=...) to see it at the walker's own scale."""
LABEL_HEIGHT_PX = 48 * ZOOM
FONT_SIZE = 15 * ZOOM
SEED = 0
BACKGROUND = (255, 255, 255)
TEXT_COLOUR = (40, 40, 40)
SUBTITLE_COLOUR = (100, 100, 100)


def render_at_rest(design: dict[str, float]) -> tuple[np.ndarray, gym.Env]:
    """The walker's frame right after a seeded reset (its one settling step)."""
    env = gym.make(ENV_ID, render_mode="rgb_array", **design)
    env.reset(seed=SEED)
    # Gymnasium sweeps one lidar ray per frame across the first twenty frames; start the sweep
    # past its end so that no red ray crosses the picture.
    env.unwrapped.lidar_render = 99
    return env.render(), env


def walker_top(walker) -> float:
    """World y of the highest vertex of the hull or a leg."""
    return max((body.transform * vertex)[1]
               for body in [walker.hull, *walker.legs]
               for vertex in body.fixtures[0].shape.vertices)


def crop_around_hull(frame: np.ndarray, walker, top_y: float) -> np.ndarray:
    """PANEL_WIDTH_PX centred on the hull, from `top_y` (world) down to below the start pad."""
    hull = walker.hull
    hull_xs = [(hull.transform * vertex)[0] for vertex in hull.fixtures[0].shape.vertices]
    centre_px = round(((min(hull_xs) + max(hull_xs)) / 2 - walker.scroll) * SCALE)
    left = centre_px - PANEL_WIDTH_PX // 2
    top = round(VIEWPORT_H - top_y * SCALE) - MARGIN_PX
    bottom = round(VIEWPORT_H - TERRAIN_HEIGHT * SCALE) + MARGIN_PX
    return frame[max(top, 0):bottom, left:left + PANEL_WIDTH_PX]


def describe(walker) -> str:
    design = walker.design
    left, right = design.leg("left"), design.leg("right")
    if left == right:
        return (f"thigh {design.thigh_length:g} · shin {design.shin_length:g}\n"
                f"width {design.leg_width:g} · torque {design.motor_torque:g}")
    # Per side: thigh/shin lengths, then thigh/shin widths.
    return "\n".join(f"{side[0].upper()} {thigh:g}/{shin:g} · {thigh_w:g}/{shin_w:g}"
                     for side, (thigh, shin, thigh_w, shin_w) in (("left", left),
                                                                 ("right", right)))


def labelled(image: Image.Image, title: str, subtitle: str) -> Image.Image:
    """`image` under a bold title and a two-line subtitle."""
    title_font = ImageFont.load_default(size=FONT_SIZE)
    subtitle_font = ImageFont.load_default(size=FONT_SIZE * 3 // 4)
    panel = Image.new("RGB", (image.width, image.height + LABEL_HEIGHT_PX), BACKGROUND)
    panel.paste(image, (0, LABEL_HEIGHT_PX))
    draw = ImageDraw.Draw(panel)
    centre = image.width // 2
    draw.text((centre, 3 * ZOOM), title, font=title_font, fill=TEXT_COLOUR, anchor="ma")
    draw.multiline_text((centre, 6 * ZOOM + FONT_SIZE), subtitle, font=subtitle_font,
                        fill=SUBTITLE_COLOUR, anchor="ma", align="center", spacing=2 * ZOOM)
    return panel


def side_by_side(panels: list[Image.Image], gap_px: int = 4 * ZOOM) -> Image.Image:
    width = sum(panel.width for panel in panels) + gap_px * (len(panels) - 1)
    height = max(panel.height for panel in panels)
    sheet = Image.new("RGB", (width, height), BACKGROUND)
    x = 0
    for panel in panels:
        sheet.paste(panel, (x, 0))
        x += panel.width + gap_px
    return sheet


def draw_designs(out: Path, panels: tuple[Panel, ...] = PANELS) -> None:
    renders = []
    for panel in panels:
        frame, env = render_at_rest(panel.design)
        renders.append((panel, frame, env))
    # One window for all panels, tall enough for the tallest walker: one scale for every body.
    top_y = max(walker_top(env.unwrapped) for _, _, env in renders)
    images = []
    for panel, frame, env in renders:
        crop = Image.fromarray(crop_around_hull(frame, env.unwrapped, top_y))
        crop = crop.resize((crop.width * ZOOM, crop.height * ZOOM), Image.Resampling.NEAREST)
        images.append(labelled(crop, panel.title, describe(env.unwrapped)))
        env.close()
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".{out.name}.partial.png")
    side_by_side(images).save(partial)
    partial.replace(out)  # atomic: never a half-written picture


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", choices=PANEL_SETS, default="symmetric",
                        help="which designs: symmetric (docs/designs.png) or asymmetric "
                             "(docs/designs_asymmetric.png)")
    parser.add_argument("--out", type=Path, default=None,
                        help="where to write the picture (default: the set's, in docs/)")
    args = parser.parse_args()
    panels, name = PANEL_SETS[args.set]
    out = args.out or REPO_ROOT / "docs" / name
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")  # render off-screen, no window
    draw_designs(out, panels)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
