"""TensorBoard events of a study, under CleanRL's keys with the frame count as the step.

A study writes into `<--tensorboard>/<save_name>/`, so the studies of a sweep land side by
side and one `tensorboard --logdir runs` compares them. Events are written after each batch's
checkpoint, never ahead of it, so a resumed study (which continues from its last checkpoint)
continues the curves where they stop, without duplicated steps. Its writer also marks the
steps after its checkpoint as superseded (`purge_step`), a safety net that TensorBoard's event
accumulator honours; the `tensorboard` server (2.21) ignores it.
"""

from __future__ import annotations

from pathlib import Path

from common.config import Config
from common.errors import UsageError
from common.results import EpisodeLog
from study.evaluations import TENSORBOARD_TAGS as EVALUATION_TAGS
from study.evaluations import EvaluationLog

DISABLED = "none"
EPISODE_TAGS = {"reward": "charts/episodic_return", "length": "charts/episodic_length"}
"""Episode column -> tag; one point per episode, at the frame it ended."""
UPDATE_TAGS = {
    "frames_per_s": "charts/SPS",
    "action_std": "charts/action_std",
    "learning_rate": "charts/learning_rate",
    "policy_loss": "losses/policy_loss",
    "value_loss": "losses/value_loss",
    "approx_kl": "losses/approx_kl",
    "clip_fraction": "losses/clipfrac",
    "explained_variance": "losses/explained_variance",
    "grad_norm": "losses/grad_norm",
}
"""Update column (`ppo.diagnostics.UPDATE_COLUMNS`) -> tag; one point per update."""
QUEUE_EVENTS = 1000
"""Events buffered before an `add` waits for the writer thread: a batch of short episodes
logs hundreds, and a small queue (torch's default is 10) makes the study wait on the disk."""
FLUSH_S = 10
"""A running study's curves reach the board at most this many seconds late."""


def tensorboard_folder(config: Config) -> Path | None:
    """Where the study's events go; None with `--tensorboard=none`."""
    if config.tensorboard.strip().lower() == DISABLED:
        return None
    return Path(config.tensorboard) / config.save_name


class TensorBoardLog:
    """Writes a study's committed episodes and updates as TensorBoard scalars."""

    def __init__(self, folder: Path, frames: int, episodes: int, evaluations: int = 0) -> None:
        """`frames`, `episodes`, `evaluations`: what the study has already done (a resumed
        study's)."""
        try:
            from torch.utils.tensorboard import SummaryWriter  # only paid for when used
        except ImportError:
            raise UsageError("--tensorboard: the tensorboard package is not installed (pip "
                             "install -r requirements.txt); or turn events off with "
                             "--tensorboard=none") from None
        self.writer = SummaryWriter(str(folder), purge_step=frames + 1, max_queue=QUEUE_EVENTS,
                                    flush_secs=FLUSH_S)
        self.episodes_written = episodes
        self.evaluations_written = evaluations

    def add_batch(self, log: EpisodeLog, update: dict[str, float],
                  evaluations: EvaluationLog) -> None:
        """The episodes that ended since the last call, then the update (`frames` is its step)
        and the evaluation that followed it, if any.

        Steps never decrease from one event to the next: TensorBoard takes a step that goes
        back for a restart and would hide the points after it.
        """
        for index in range(self.episodes_written, len(log)):
            step = int(log.columns["frames"][index])
            for column, tag in EPISODE_TAGS.items():
                self.writer.add_scalar(tag, log.columns[column][index], step)
        self.episodes_written = len(log)
        step = int(update["frames"])
        for column, tag in UPDATE_TAGS.items():
            self.writer.add_scalar(tag, update[column], step)
        for index in range(self.evaluations_written, len(evaluations)):
            row = evaluations.row(index)
            for column, tag in EVALUATION_TAGS.items():
                self.writer.add_scalar(tag, row[column], int(row["frames"]))
        self.evaluations_written = len(evaluations)

    def close(self) -> None:
        self.writer.close()


class NoTensorBoard:
    """`--tensorboard=none`: the same calls, nothing written."""

    def add_batch(self, log: EpisodeLog, update: dict[str, float],
                  evaluations: EvaluationLog) -> None:
        pass

    def close(self) -> None:
        pass


def remove_events(config: Config) -> None:
    """`--overwrite=true`: the earlier study's curves go with its other files."""
    folder = tensorboard_folder(config)
    if folder is not None and folder.is_dir():
        for events in folder.glob("events.out.tfevents.*"):
            events.unlink(missing_ok=True)


def open_tensorboard(config: Config, frames: int, episodes: int, evaluations: int = 0
                     ) -> TensorBoardLog | NoTensorBoard:
    folder = tensorboard_folder(config)
    return (NoTensorBoard() if folder is None
            else TensorBoardLog(folder, frames, episodes, evaluations))
