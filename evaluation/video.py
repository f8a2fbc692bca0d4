"""Showing the walker: text overlay on rendered frames, the watch window, and video files.

Frames are the walker's `rgb_array` renders, arrays of shape (VIEWPORT_H, VIEWPORT_W, 3) = (400,
600, 3), uint8. The same overlay (leg length, episode, step, return) is drawn on the frames of
the window and of videos, with pygame's bundled font, which needs no display.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")  # pygame greets on stdout otherwise
import pygame  # noqa: E402 (after the variable above)
from gymnasium.envs.box2d.bipedal_walker import FPS  # noqa: E402

from common.checkpoint import current_umask  # noqa: E402
from common.config import VIDEO_SUFFIXES  # noqa: E402
from common.errors import UsageError  # noqa: E402

MP4_FPS = FPS
"""MP4 keeps every environment step: 50 frames per second is real time."""
GIF_FRAME_STRIDE = 2
"""A GIF keeps every 2nd frame (25 fps, still real time): half the size, memory and encoding time
(pillow holds a GIF's frames until it closes) and browsers play it at the intended speed."""
GIF_FPS = FPS / GIF_FRAME_STRIDE
FONT_SIZE = 20
TEXT_COLOUR = (20, 20, 40)
TEXT_BACKGROUND = (255, 255, 255, 170)


def frame_stride(path: Path) -> int:
    """Every how many rendered frames one is written to the video at `path`."""
    return GIF_FRAME_STRIDE if path.suffix.lower() == ".gif" else 1


def frames_in_video(episode_lengths: Sequence[int], path: Path) -> int:
    """Frames in a recording of episodes of these lengths: each episode renders its reset frame
    plus one per step (length + 1 frames), of which every `frame_stride`-th is kept, from the
    first."""
    stride = frame_stride(path)
    return sum(-(-(length + 1) // stride) for length in episode_lengths)


class Overlay:
    """Draws a few lines of text in the top-left corner of a frame, in place."""

    def __init__(self) -> None:
        pygame.font.init()
        self.font = pygame.font.Font(None, FONT_SIZE)  # None: the font pygame ships

    def draw(self, frame: np.ndarray, lines: Sequence[str]) -> np.ndarray:
        """Write `lines` onto `frame` (H, W, 3) uint8 and return it, C-contiguous."""
        frame = np.ascontiguousarray(frame)
        height, width = frame.shape[:2]
        # The surface shares the array's memory: drawing on it draws on the frame.
        surface = pygame.image.frombuffer(frame, (width, height), "RGB")
        rendered = [self.font.render(line, True, TEXT_COLOUR) for line in lines]
        box_width = max(text.get_width() for text in rendered) + 12
        box_height = sum(text.get_height() + 2 for text in rendered) + 8
        box = pygame.Surface((box_width, box_height), pygame.SRCALPHA)
        box.fill(TEXT_BACKGROUND)
        surface.blit(box, (4, 4))
        y = 8
        for text in rendered:
            surface.blit(text, (10, y))
            y += text.get_height() + 2
        return frame


def display_problem() -> str | None:
    """Why no window can be opened here, or None if one probably can."""
    driver = os.environ.get("SDL_VIDEODRIVER", "")
    if driver in ("dummy", "offscreen"):
        return f"SDL_VIDEODRIVER={driver} shows no window"
    if sys.platform in ("win32", "darwin"):
        return None
    if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
        return "there is no display (DISPLAY and WAYLAND_DISPLAY are unset)"
    return None


def no_window_error(reason: str) -> UsageError:
    return UsageError(f"--render: cannot open a window: {reason}; "
                      f"record a video instead with --record=walker.gif (or .mp4)")


class WindowClosed(Exception):
    """The person watching closed the window (or pressed Escape or q)."""


class Window:
    """A pygame window that shows frames at the walker's real-time rate."""

    def __init__(self, width: int, height: int, caption: str) -> None:
        problem = display_problem()
        if problem:
            raise no_window_error(problem)
        try:
            pygame.display.init()
            self.screen = pygame.display.set_mode((width, height))
        except pygame.error as error:
            pygame.display.quit()
            raise no_window_error(str(error) or "pygame could not open one") from None
        pygame.display.set_caption(caption)
        self.clock = pygame.time.Clock()

    def show(self, frame: np.ndarray, caption: str) -> None:
        """Draw `frame` (H, W, 3) uint8; raise WindowClosed if the window was closed."""
        for event in pygame.event.get():
            if event.type == pygame.QUIT or (
                event.type == pygame.KEYDOWN and event.key in (pygame.K_ESCAPE, pygame.K_q)
            ):
                raise WindowClosed
        frame = np.ascontiguousarray(frame)
        surface = pygame.image.frombuffer(frame, frame.shape[1::-1], "RGB")
        self.screen.blit(surface, (0, 0))
        pygame.display.set_caption(caption)
        pygame.display.flip()
        self.clock.tick(FPS)

    def close(self) -> None:
        pygame.display.quit()


def check_video_path(path: Path) -> None:
    """UsageError unless `path` names a video we can write (.gif, or .mp4 with imageio-ffmpeg)."""
    suffix = path.suffix.lower()
    if suffix not in VIDEO_SUFFIXES:
        raise UsageError(f"--record: must end in .gif or .mp4, got {str(path)!r}")
    if suffix == ".mp4":
        try:
            import imageio_ffmpeg

            imageio_ffmpeg.get_ffmpeg_exe()
        except (ImportError, RuntimeError):
            raise UsageError("--record: .mp4 needs the imageio-ffmpeg package "
                             "(pip install imageio-ffmpeg); or record a .gif") from None


class VideoFile:
    """Frames -> a .gif (pillow) or .mp4 (ffmpeg, H.264) at `path`.

    Written to a hidden temporary file beside `path` and renamed over it by `close()`, so an
    interrupted recording never leaves a truncated video; `discard()` removes the temporary file.
    Offer every environment frame to `offer`: it keeps one in `frame_stride(path)` and renders
    only those (rendering a walker far along the course is the slow part).
    """

    def __init__(self, path: Path) -> None:
        import imageio.v2 as imageio  # imported here: only recording needs them
        import imageio.v3 as iio

        check_video_path(path)
        self.path = path
        self.stride = frame_stride(path)
        self.fps = FPS / self.stride
        self.offered = 0
        self.written = 0
        handle, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.",
                                             suffix=path.suffix.lower())
        os.close(handle)
        self.temp_path = Path(temp_name)
        if path.suffix.lower() == ".gif":
            # Each frame is quantised to 256 colours (bits=8) as it arrives; loop=0: forever.
            self.gif = iio.imopen(self.temp_path, "w", plugin="pillow", extension=".gif")
            self.writer = self.gif
        else:
            self.gif = None
            # 600x400 is a multiple of 8, not of ffmpeg's default 16: no resizing with 8.
            self.writer = imageio.get_writer(self.temp_path, format="FFMPEG", mode="I",
                                             fps=MP4_FPS, codec="libx264", quality=8,
                                             macro_block_size=8)

    def offer(self, render: Callable[[], np.ndarray]) -> None:
        """One frame slot: `render()` gives the frame (H, W, 3) uint8, called only if it is kept."""
        if self.offered % self.stride == 0:
            frame = render()
            if self.gif is not None:
                self.gif.write(frame, is_batch=False, duration=1000 / GIF_FPS, loop=0, bits=8)
            else:
                self.writer.append_data(frame)
            self.written += 1
        self.offered += 1

    def end_episode(self) -> None:
        """Start the next episode's frames on the stride, with its reset frame."""
        self.offered = 0

    def close(self) -> None:
        self.writer.close()
        os.chmod(self.temp_path, 0o666 & ~current_umask())  # mkstemp made it private
        os.replace(self.temp_path, self.path)

    def discard(self) -> None:
        try:
            self.writer.close()
        finally:
            self.temp_path.unlink(missing_ok=True)
