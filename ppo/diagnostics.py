"""Per-update diagnostics: the numbers an RL engineer reads first to judge a PPO run.

Everything is computed from tensors the update already has (the ratio's logarithm, the two
losses, the gradient norm that clipping returns, the batch's returns and advantages). A
gradient step only keeps references to them; the arithmetic runs once per update, on all the
steps' tensors together, and is read back with one host synchronisation, not one per minibatch
and metric (which on a GPU would stall the update 80 times per batch).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass

import torch

UPDATE_COLUMNS = ("frames", "policy_loss", "value_loss", "approx_kl", "clip_fraction",
                  "explained_variance", "grad_norm", "action_std", "learning_rate",
                  "frames_per_s")
"""One entry per update. `frames`: the study's frame count when the update ran. The losses, KL,
clip fraction and gradient norm are means over the update's minibatches (gradient steps)."""

MINIBATCH_METRICS = ("policy_loss", "value_loss", "approx_kl", "clip_fraction", "grad_norm")


@dataclass(frozen=True)
class LossTerms:
    """The PPO loss of one minibatch and the parts of it the diagnostics read.

    `log_ratio` is (minibatch,) log pi_new(a|s) - log pi_old(a|s) for the sampled actions.
    """

    total: torch.Tensor
    policy_loss: torch.Tensor
    value_loss: torch.Tensor
    log_ratio: torch.Tensor


def approx_kl(log_ratio: torch.Tensor) -> torch.Tensor:
    """KL(pi_old || pi_new) estimated from samples of pi_old: the mean of (r - 1) - log r.

    Unbiased like the plain mean of -log r, but never negative and of far lower variance
    (Schulman, "Approximating KL divergence", 2020; CleanRL's and SB3's `approx_kl`).
    `expm1` keeps r - 1 exact near r = 1, where the two terms nearly cancel.
    """
    return (torch.expm1(log_ratio) - log_ratio).mean()


def clip_fraction(log_ratio: torch.Tensor, clip: float) -> torch.Tensor:
    """Share of samples whose ratio left [1 - clip, 1 + clip], where the surrogate is flat."""
    return ((torch.exp(log_ratio) - 1).abs() > clip).float().mean()


def explained_variance(predicted: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """1 - Var[targets - predicted] / Var[targets].

    1: the critic predicts the returns exactly; 0: no better than their mean; below 0: worse.
    NaN when the targets do not vary (nothing to explain).
    """
    target_variance = targets.var()
    explained = 1 - (targets - predicted).var() / target_variance
    return torch.where(target_variance > 0, explained, torch.nan)  # no host sync


class UpdateDiagnostics:
    """Collects one update's per-minibatch tensors; all the arithmetic waits for `summary`.

    A gradient step only keeps references to (detached) tensors it computed anyway: a dozen
    small tensor operations per step would cost more than the once-per-update pass over the
    concatenated ratios, and on a GPU each `.item()` would stall the step.
    """

    def __init__(self, clip: float) -> None:
        self.clip = clip
        self.policy_losses: list[torch.Tensor] = []
        self.value_losses: list[torch.Tensor] = []
        self.log_ratios: list[torch.Tensor] = []
        self.grad_norms: list[torch.Tensor] = []

    def add(self, terms: LossTerms, grad_norm: torch.Tensor) -> None:
        """Record one gradient step: its loss terms, and the gradient norm before clipping."""
        self.policy_losses.append(terms.policy_loss.detach())
        self.value_losses.append(terms.value_loss.detach())
        self.log_ratios.append(terms.log_ratio.detach())
        self.grad_norms.append(grad_norm.detach())

    def summary(self, values: torch.Tensor, returns: torch.Tensor) -> dict[str, float]:
        """Means over the update's gradient steps, and the explained variance of the batch's
        `returns` by the critic's `values` at collection time (both (batch,)).

        KL and clip fraction are taken over all the steps' samples at once: the minibatches
        are equally large, so that is the mean of the per-minibatch values.
        """
        if not self.log_ratios:
            raise ValueError("no gradient step was recorded")
        with torch.no_grad():
            log_ratios = torch.cat(self.log_ratios)
            numbers = torch.stack([
                torch.stack(self.policy_losses).mean(),
                torch.stack(self.value_losses).mean(),
                approx_kl(log_ratios),
                clip_fraction(log_ratios, self.clip),
                torch.stack(self.grad_norms).to(log_ratios.dtype).mean(),
                explained_variance(values, returns).to(log_ratios.dtype),
            ]).tolist()  # the one synchronisation
        return dict(zip((*MINIBATCH_METRICS, "explained_variance"), numbers, strict=True))


def columns_to_csv(columns: dict[str, list[float]], names: Sequence[str]) -> str:
    """CSV text of equally long columns, a header row of `names` first (the updates' and the
    episodes' logs alike)."""
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(names)
    writer.writerows(zip(*(columns[name] for name in names), strict=True))
    return text.getvalue()


class UpdateLog:
    """Columns of UPDATE_COLUMNS, one entry per update, as saved in checkpoints and results."""

    def __init__(self, columns: dict[str, list[float]] | None = None) -> None:
        self.columns: dict[str, list[float]] = {name: [] for name in UPDATE_COLUMNS}
        for name in UPDATE_COLUMNS:
            self.columns[name] += (columns or {}).get(name, [])

    def __len__(self) -> int:
        return len(self.columns["frames"])

    def add(self, row: dict[str, float]) -> None:
        """Append one update; `row` must hold every column."""
        missing = set(UPDATE_COLUMNS) - set(row)
        if missing:
            raise KeyError(f"update row lacks {sorted(missing)}")
        for name in UPDATE_COLUMNS:
            self.columns[name].append(row[name])

    def last(self) -> dict[str, float]:
        return {name: values[-1] for name, values in self.columns.items()}

    def to_csv(self) -> str:
        return columns_to_csv(self.columns, UPDATE_COLUMNS)
