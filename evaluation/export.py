"""The deterministic policy as an ONNX model, for a product that runs it without this tool.

The model maps the walker's raw observation, float32 (n, 24), to the mean action, float32
(n, 4) in [-1, 1]: the observation normaliser is inside it, and a design-conditioned policy's
design inputs are constants inside it, for the one design it was exported for (a product is one
body; another body is another export). Its actions are the tool's to float32 rounding (torch's
and onnxruntime's matrix kernels against the NumPy pass of `Policy.predict`); docs/export.md
shows a controller loop with onnxruntime alone.

Written by torch's TorchScript exporter (`dynamo=False`): it needs only the `onnx` package,
where the default exporter also needs `onnxscript` and is much slower on this small network
(measured in docs/export.md). torch 2.13 marks it deprecated; its warning is silenced here.
"""

from __future__ import annotations

import importlib.util
import io
import warnings
from pathlib import Path

import torch
from torch import nn

import envs
from common.checkpoint import atomic_write_bytes
from common.config import Config
from common.errors import UsageError
from common.study_files import check_output_file
from evaluation.evaluate import describe_policy, load_policy, warn_if_outside
from evaluation.policy import Policy

INPUT_NAME = "observation"
OUTPUT_NAME = "action"
OPSET = 17
"""Run by onnxruntime 1.14 and later; the network needs nothing newer (Gemm, Tanh, Clip)."""


class DeterministicController(nn.Module):
    """The walker's raw observation (n, 24) -> the policy's mean action (n, act_dim), with the
    design inputs (none for a fixed-design policy) appended as constants."""

    def __init__(self, policy: Policy) -> None:
        super().__init__()
        if policy.design_observation is None:
            raise ValueError("design: a design-conditioned policy is exported for one design; "
                             "give it: Policy.load(..., design={...})")
        self.network = policy.network
        self.conditioned = policy.conditioned
        self.register_buffer("design", torch.from_numpy(policy.design_observation))

    def forward(self, observation: torch.Tensor) -> torch.Tensor:
        if self.conditioned:
            design = self.design.expand(observation.shape[0], -1)
            observation = torch.cat([observation, design], dim=1)
        return self.network.mean_action(observation)


def onnx_model(policy: Policy) -> bytes:
    """The serialised ONNX model of `policy`'s deterministic actions for its design."""
    buffer = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript exporter's
        torch.onnx.export(
            DeterministicController(policy).eval(), (torch.zeros(1, envs.BODY_OBS_DIM),),
            buffer, dynamo=False, opset_version=OPSET, input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}})
    return buffer.getvalue()


def export_onnx(policy: Policy, path: str | Path) -> None:
    """Write `policy` as an ONNX model to `path`, atomically: no half-written file, ever."""
    atomic_write_bytes(Path(path), onnx_model(policy))


def export(config: Config) -> int:
    """--export=FILE.onnx: the policy the flags name, for the body the design flags give
    (baked in for a design-conditioned policy); run.py's exit status."""
    path = Path(config.export)
    check_output_file(path, "export")  # before loading anything
    if importlib.util.find_spec("onnx") is None:
        raise UsageError("--export: needs the onnx package: pip install -r "
                         "requirements-extra.txt")
    network, checkpoint, policy_path = load_policy(config)
    print(describe_policy(policy_path, checkpoint, config))
    warn_if_outside(policy_path, checkpoint, config)
    policy = Policy(network, checkpoint, design=config.design(), path=policy_path)
    export_onnx(policy, path)
    baked = (f"; design inputs baked in: {envs.describe_design(config.env_kwargs())}"
             if policy.conditioned else "")
    print(f"onnx: {path}: input {INPUT_NAME!r} float32 (n, {envs.BODY_OBS_DIM}), output "
          f"{OUTPUT_NAME!r} float32 (n, {policy.action_size}){baked}")
    return 0
