"""Transfer learning: loading, freezing, the thaw schedule, reset and noise."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch

import common.models
import transfer
import transfer.loading
from common.checkpoint import load_checkpoint, save_policy
from common.config import Config
from common.errors import UsageError
from common.models import resolve_model_path
from ppo.algorithm import absorb_observations, gaussian_log_prob, ppo_loss
from ppo.network import OUTPUT_GAINS, ActorCritic, linear_layers
from ppo.normalize import RewardScaler
from ppo.schedules import Schedules, thaw_frames
from study.trainer import ppo_settings

OBS_DIM, ACT_DIM = 24, 4  # the walker's
HIDDEN = (16, 16, 16, 16)  # 5 Linear layers per network


def make_policy(hidden: tuple[int, ...] = HIDDEN, seed: int = 0) -> ActorCritic:
    torch.manual_seed(seed)
    return ActorCritic(OBS_DIM, ACT_DIM, hidden)


def trained_looking(policy: ActorCritic, seed: int = 1) -> ActorCritic:
    """Random non-zero weights, biases and normaliser statistics, as after training.

    A fresh policy has zero biases (their std is 0, so noise would not show) and an identity
    normaliser (so a test could not tell whether the normaliser was loaded).
    """
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in policy.parameters():
            param.copy_(torch.randn(param.shape, generator=generator) * 0.3)
    policy.obs_normalizer.update(
        (torch.randn(500, OBS_DIM, generator=generator) * 3 + 1).numpy())
    return policy


def fresh_scaler() -> RewardScaler:
    return RewardScaler(num_envs=1, gamma=0.98)


def prepare(policy: ActorCritic, config: Config, scaler: RewardScaler | None = None) -> str:
    """`transfer.prepare` as a study starting now calls it."""
    return transfer.prepare(policy, scaler or fresh_scaler(), config, Schedules.resolve(config),
                            transfer.load_source(config))


def thaw(policy: ActorCritic, config: Config, frame: int) -> list[str]:
    """`transfer.apply_thaw_schedule` with the schedules of a study started with `config`."""
    return transfer.apply_thaw_schedule(policy, config.transfer_learning,
                                        Schedules.resolve(config), frame)


def save_weights(path: Path, policy: ActorCritic, **metadata: object) -> Path:
    """A minimal checkpoint (what `load_checkpoint` requires), independent of `save_policy`."""
    torch.save({"state_dict": policy.state_dict(), **metadata}, path)
    return path


def snapshot(policy: ActorCritic) -> dict[str, torch.Tensor]:
    return {key: value.detach().clone() for key, value in policy.state_dict().items()}


def layer_keys(network_name: str, policy: ActorCritic, indices: range | list[int]) -> list[str]:
    """state_dict keys of the Linear layers at `indices` (input first) of one network."""
    network = getattr(policy, network_name)
    positions = [i for i, module in enumerate(network) if isinstance(module, torch.nn.Linear)]
    return [f"{network_name}.{positions[i]}.{kind}" for i in indices for kind in ("weight", "bias")]


def trainable_indices(network: torch.nn.Sequential) -> set[int]:
    return {i for i, layer in enumerate(linear_layers(network))
            if all(p.requires_grad for p in layer.parameters())}


def study_config(tmp_path: Path, **overrides: object) -> Config:
    settings = {"save_name": "target", "hidden_layers": HIDDEN, "seed": 3,
                "models_dir": str(tmp_path / "models"), "results_dir": str(tmp_path / "results"),
                "tensorboard": str(tmp_path / "runs"), **overrides}
    return Config(**settings)


@pytest.fixture(autouse=True)
def isolated_repo_models(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Stand-in for the repository's trained_models/, so listings do not depend on the checkout."""
    repo_models = tmp_path / "repo_models"
    repo_models.mkdir()
    monkeypatch.setattr(common.models, "REPO_MODELS_DIR", repo_models)
    return repo_models


@pytest.fixture
def source(tmp_path: Path) -> tuple[ActorCritic, Path]:
    """A trained-looking policy saved as models/source.pt."""
    (tmp_path / "models").mkdir()
    policy = trained_looking(make_policy(seed=10))
    return policy, save_weights(tmp_path / "models" / "source.pt", policy,
                                env={"leg_length": 30.0}, score=123.4, frames=5000)


# ----- real optimiser steps ------------------------------------------------------------------

def ppo_like_step(policy: ActorCritic, optimizer: torch.optim.Optimizer, step: int,
                  set_to_none: bool = True) -> None:
    """One step of the trainer's own loss, zeroing and clipping as the trainer does."""
    generator = torch.Generator().manual_seed(100 + step)
    obs = torch.randn(64, OBS_DIM, generator=generator)
    actions = torch.randn(64, ACT_DIM, generator=generator)
    advantages = torch.randn(64, generator=generator)
    returns = torch.randn(64, generator=generator)
    with torch.no_grad():  # an "old" policy a little away from this one, so ratios are not 1
        old_log_probs = gaussian_log_prob(actions, policy.actor(obs), 0.5)
        old_log_probs += 0.1 * torch.randn(64, generator=generator)
    loss = ppo_loss(policy, obs, actions, old_log_probs, advantages, returns, 0.5,
                    ppo_settings(Config(save_name="frozen"))).total
    optimizer.zero_grad(set_to_none=set_to_none)
    loss.backward()
    torch.nn.utils.clip_grad_norm_([p for p in policy.parameters() if p.grad is not None], 0.5)
    optimizer.step()


OPTIMIZER_FACTORIES = {
    "adam": lambda params: torch.optim.Adam(params, lr=1e-2),
    "adam_fused_as_the_trainer": lambda params: torch.optim.Adam(params, lr=1e-2, fused=True),
    "sgd_momentum_weight_decay": lambda params: torch.optim.SGD(
        params, lr=1e-2, momentum=0.9, weight_decay=1e-2),
    "rmsprop": lambda params: torch.optim.RMSprop(params, lr=1e-2, momentum=0.5),
    "adagrad": lambda params: torch.optim.Adagrad(params, lr=1e-2, weight_decay=1e-2),
}


@pytest.mark.parametrize("optimizer_name", sorted(OPTIMIZER_FACTORIES))
def test_frozen_layers_stay_bit_identical_through_optimizer_steps(
    tmp_path: Path, source: tuple[ActorCritic, Path], optimizer_name: str
) -> None:
    policy = make_policy()
    prepare(policy, study_config(tmp_path, initial_model="source",
                                          transfer_learning="freeze_all_but_final"))
    before = snapshot(policy)
    optimizer = OPTIMIZER_FACTORIES[optimizer_name](policy.parameters())  # all, as the trainer
    for step in range(6):
        ppo_like_step(policy, optimizer, step)

    after = snapshot(policy)
    for name in ("actor", "critic"):
        for key in layer_keys(name, policy, range(4)):
            assert torch.equal(after[key], before[key]), key
        assert not torch.equal(after[f"{name}.8.weight"], before[f"{name}.8.weight"])


NORMALIZER_KEYS = ("obs_normalizer.mean", "obs_normalizer.var", "obs_normalizer.count")


def test_observation_normaliser_follows_the_data_only_while_the_input_layer_trains() -> None:
    """The normaliser is part of the input layer: frozen, it keeps the statistics that layer was
    trained with (the trainer folds every rollout in through `absorb_observations`)."""
    policy = make_policy()
    transfer.set_trainable(policy.actor, first_trainable=4, network_name="actor")
    raw_obs = np.random.default_rng(0).normal(3.0, 2.0, size=(16, 8, OBS_DIM))
    before = snapshot(policy)
    absorb_observations(policy, raw_obs)
    after = snapshot(policy)
    assert all(torch.equal(after[key], before[key]) for key in NORMALIZER_KEYS)
    transfer.set_trainable(policy.actor, first_trainable=0, network_name="actor")
    absorb_observations(policy, raw_obs)
    thawed = snapshot(policy)
    assert not any(torch.equal(thawed[key], before[key]) for key in NORMALIZER_KEYS)


def test_layer_frozen_after_building_momentum_stays_bit_identical() -> None:
    """Freezing a layer that already has momentum and weight decay state must stop it dead,
    even if gradients were zeroed instead of set to None (where lr-0 freezing fails)."""
    policy = make_policy()
    optimizer = torch.optim.SGD(policy.parameters(), lr=1e-2, momentum=0.9, weight_decay=0.1)
    for step in range(3):
        ppo_like_step(policy, optimizer, step)
    transfer.set_trainable(policy.actor, first_trainable=4, network_name="actor")
    before = snapshot(policy)
    for step in range(3, 6):
        ppo_like_step(policy, optimizer, step, set_to_none=False)
    after = snapshot(policy)
    for key in layer_keys("actor", policy, range(4)):
        assert torch.equal(after[key], before[key]), key
    assert not torch.equal(after["critic.0.weight"], before["critic.0.weight"])


def test_freeze_then_thaw_trains_each_layer_only_after_it_thaws(
    tmp_path: Path, source: tuple[ActorCritic, Path]
) -> None:
    config = study_config(tmp_path, initial_model="source", transfer_learning="freeze_then_thaw",
                          total_frames=1000, tl_end=0.5)
    policy = make_policy()
    prepare(policy, config)
    optimizer = torch.optim.Adam(policy.parameters(), lr=1e-2)
    start = snapshot(policy)
    for step, frame in enumerate((0, 100, 200)):  # layer 4/5 thaws at 125, 3/5 at 250
        thaw(policy, config, frame)
        ppo_like_step(policy, optimizer, step)
    after = snapshot(policy)
    for name in ("actor", "critic"):
        for key in layer_keys(name, policy, range(3)):
            assert torch.equal(after[key], start[key]), key
        for key in layer_keys(name, policy, [3, 4]):
            assert not torch.equal(after[key], start[key]), key


# ----- the thaw schedule ---------------------------------------------------------------------

@pytest.mark.parametrize(
    ("frame", "trainable"),
    [(0, {4}), (124, {4}), (125, {3, 4}), (249, {3, 4}), (250, {2, 3, 4}), (375, {1, 2, 3, 4}),
     (499, {1, 2, 3, 4}), (500, {0, 1, 2, 3, 4}), (1000, {0, 1, 2, 3, 4})],
)
def test_freeze_then_thaw_schedule(tmp_path: Path, frame: int, trainable: set[int]) -> None:
    """5 layers, tl_end * total_frames = 500: the k-th from the output thaws at k/4 * 500."""
    config = study_config(tmp_path, transfer_learning="freeze_then_thaw", total_frames=1000,
                          tl_end=0.5)
    policy = make_policy()
    thaw(policy, config, frame)
    assert trainable_indices(policy.actor) == trainable_indices(policy.critic) == trainable
    assert Schedules.resolve(config).frozen_layer_count(frame) == min(trainable)


def test_thaw_frames_are_exact_where_floats_are_not() -> None:
    """4 layers over 0.1 * 1000 frames: thresholds 33.3, 66.7 and 100, though in floats
    3 * 0.1 * 1000 / 3 is 100.00000000000001 and would thaw the last layer a batch late."""
    schedules = Schedules(0.5, 0.5, 0, thaw_frames(1000, 0.1, 4))
    counts = [schedules.frozen_layer_count(frame) for frame in (33, 34, 66, 67, 99, 100)]
    assert counts == [3, 2, 2, 1, 1, 0]
    assert schedules.thaw_frames == (34, 67, 100)


def test_thaw_schedule_is_idempotent_and_reports_what_thawed(tmp_path: Path) -> None:
    config = study_config(tmp_path, transfer_learning="freeze_then_thaw", total_frames=1000,
                          tl_end=0.5)
    policy = make_policy()
    assert thaw(policy, config, 0) == []
    assert thaw(policy, config, 0) == []
    assert thaw(policy, config, 130) == [
        "actor layer 4/5", "critic layer 4/5"]
    assert thaw(policy, config, 130) == []
    assert sorted(thaw(policy, config, 10_000)) == sorted(
        f"{name} layer {i}/5" for name in ("actor", "critic") for i in (1, 2, 3))
    assert thaw(policy, config, 10_000) == []


@pytest.mark.parametrize(
    ("strategy", "trainable"),
    [("none", {0, 1, 2, 3, 4}), ("initialize", {0, 1, 2, 3, 4}), ("freeze_all_but_final", {4})],
)
def test_fixed_strategies_never_change(tmp_path: Path, strategy: str, trainable: set[int]) -> None:
    config = study_config(tmp_path, transfer_learning=strategy, total_frames=1000)
    policy = make_policy()
    transfer.set_trainable(policy.actor, first_trainable=2, network_name="actor")
    for frame in (0, 500, 1000, 10_000):
        thaw(policy, config, frame)
        assert trainable_indices(policy.actor) == trainable_indices(policy.critic) == trainable


# ----- reset and noise -----------------------------------------------------------------------

def test_reset_final_layer_changes_only_the_final_layers() -> None:
    policy = trained_looking(make_policy())
    before = snapshot(policy)
    global_rng = torch.get_rng_state()
    transfer.reset_final_layer(policy, torch.Generator().manual_seed(5))
    assert torch.equal(torch.get_rng_state(), global_rng)

    after = snapshot(policy)
    final_keys = {"actor.8.weight", "actor.8.bias", "critic.8.weight", "critic.8.bias"}
    for key in before:
        assert torch.equal(after[key], before[key]) == (key not in final_keys), key
    fresh = make_policy(seed=7)
    for name, network in (("actor", policy.actor), ("critic", policy.critic)):
        final = linear_layers(network)[-1]
        fresh_final = linear_layers(getattr(fresh, name))[-1]
        assert torch.count_nonzero(final.bias) == 0
        # Orthogonal init: every singular value equals the gain, as in a fresh policy.
        singular = torch.linalg.svdvals(final.weight.detach())
        fresh_singular = torch.linalg.svdvals(fresh_final.weight.detach())
        assert torch.allclose(singular, torch.full_like(singular, OUTPUT_GAINS[name]), rtol=1e-4)
        assert torch.allclose(fresh_singular, singular, rtol=1e-4)


def test_noise_has_the_right_scale_and_touches_only_the_final_layers() -> None:
    policy = trained_looking(make_policy(hidden=(256, 256)))  # 3 layers; noise on the last 2
    with torch.no_grad():
        policy.actor[2].weight.mul_(4.0)  # layers of different scales get different noise
    before = snapshot(policy)
    alpha = 0.5
    transfer.add_noise(policy, num_layers=2, alpha=alpha,
                       generator=torch.Generator().manual_seed(0))
    after = snapshot(policy)

    noised = {f"{name}.{i}.{kind}" for name in ("actor", "critic") for i in (2, 4)
              for kind in ("weight", "bias")}
    for key in before:
        if key not in noised:
            assert torch.equal(after[key], before[key]), key
            continue
        change = after[key] - before[key]
        expected_std = alpha * before[key].std(correction=0)
        if before[key].numel() == 1:  # the critic's output bias: std 0, so no noise (not NaN)
            assert torch.equal(after[key], before[key]), key
        elif before[key].numel() < 256:
            assert torch.all(change != 0), key
        else:
            assert abs(change.std() / expected_std - 1) < 0.15, key
            assert abs(change.mean()) < 0.2 * expected_std, key


def test_noise_is_reproducible_by_seed() -> None:
    results = []
    for seed in (1, 1, 2):
        policy = trained_looking(make_policy())
        transfer.add_noise(policy, 2, 1.0, torch.Generator().manual_seed(seed))
        results.append(policy.actor[8].weight.detach().clone())
    assert torch.equal(results[0], results[1])
    assert not torch.equal(results[0], results[2])


def test_zero_noise_layers_change_nothing_and_too_many_is_an_error() -> None:
    policy = trained_looking(make_policy())
    before = snapshot(policy)
    transfer.add_noise(policy, 0, 1.0, torch.Generator().manual_seed(0))
    assert all(torch.equal(value, before[key]) for key, value in policy.state_dict().items())
    with pytest.raises(UsageError, match=r"^--add_noise_layers: .*\[0, 5\].*got 6$"):
        transfer.add_noise(policy, 6, 1.0, torch.Generator().manual_seed(0))


# ----- loading -------------------------------------------------------------------------------

def test_without_initial_model_prepare_does_nothing(tmp_path: Path) -> None:
    policy = make_policy()
    before = snapshot(policy)
    assert prepare(policy, study_config(tmp_path)) == ""
    assert all(torch.equal(value, before[key]) for key, value in policy.state_dict().items())
    assert all(param.requires_grad for param in policy.parameters())


def test_prepare_loads_weights_and_normaliser_and_summarises(
    tmp_path: Path, source: tuple[ActorCritic, Path]
) -> None:
    source_policy, path = source
    policy = make_policy()
    summary = prepare(policy, study_config(
        tmp_path, initial_model="source", transfer_learning="freeze_then_thaw",
        total_frames=1000, tl_end=0.5))
    for key, value in source_policy.state_dict().items():
        assert torch.equal(policy.state_dict()[key], value), key
    assert str(path) in summary
    assert "source walker leg_length 30" in summary and "score 123.4" in summary
    assert "freeze_then_thaw" in summary and "at frame 500" in summary


@pytest.mark.parametrize("strategy", ["none", "initialize"])
def test_loading_without_freezing_is_called_initialize_not_none(
    tmp_path: Path, source: tuple[ActorCritic, Path], strategy: str
) -> None:
    """`--transfer_learning=none` with a model is `initialize`; "transfer: none" read as no
    transfer at all."""
    summary = prepare(make_policy(), study_config(
        tmp_path, initial_model="source", transfer_learning=strategy))
    schedule = summary.splitlines()[-1]
    assert schedule.startswith("transfer: initialize: started from the loaded weights")
    assert "all 5 layers of actor and critic train" in schedule and "none" not in summary


def test_reset_and_noise_after_loading_are_seeded(
    tmp_path: Path, source: tuple[ActorCritic, Path]
) -> None:
    source_policy, _ = source
    results = []
    for seed in (4, 4, 5):
        policy = make_policy()
        summary = prepare(policy, study_config(
            tmp_path, initial_model="source", seed=seed, reset_final_layer=True,
            add_noise_layers=2, add_noise_alpha=0.1))
        results.append(snapshot(policy))
    assert "re-initialised the final layer" in summary and "final 2 layer(s)" in summary
    assert all(torch.equal(value, results[1][key]) for key, value in results[0].items())
    assert not torch.equal(results[0]["actor.8.weight"], results[2]["actor.8.weight"])
    assert torch.equal(results[0]["actor.4.weight"], source_policy.state_dict()["actor.4.weight"])
    assert not torch.equal(results[0]["actor.6.weight"],
                           source_policy.state_dict()["actor.6.weight"])


def test_checkpoint_from_save_policy_loads_into_a_fresh_policy(tmp_path: Path) -> None:
    source_policy = trained_looking(make_policy(seed=10))
    path = tmp_path / "elsewhere" / "walker.pt"
    save_policy(path, source_policy, {"env": "Bipedal_Custom_Leg_Length-v0", "leg_length": 30.0},
                frames=7000, score=-12.5)
    policy = make_policy(seed=11)
    summary = prepare(policy, study_config(tmp_path, initial_model=str(path)))

    obs = torch.randn(32, OBS_DIM, generator=torch.Generator().manual_seed(0)) * 4
    with torch.no_grad():
        assert torch.equal(policy.mean_action(obs), source_policy.mean_action(obs))
        assert torch.equal(policy.value(obs), source_policy.value(obs))
    assert f"loaded {path} (score -12.5, 7,000 frames)" in summary
    assert "design differs in leg_length 30 -> 34" in summary


def test_transfer_restores_the_reward_scaling_the_model_was_trained_with(tmp_path: Path) -> None:
    """The critic learnt returns divided by the source's running return std: a fresh scaler
    (std 1) would change the scale of its targets by that factor."""
    trained = RewardScaler(num_envs=2, gamma=0.98)
    rewards = np.random.default_rng(0).normal(3.0, 2.0, size=(400, 2))
    for step_rewards in rewards:
        trained(step_rewards, np.array([False, False]))
    path = tmp_path / "scaled.pt"
    save_policy(path, trained_looking(make_policy()), {"leg_length": 34.0}, frames=800,
                score=1.0, reward_scaler=trained)
    scaler = RewardScaler(num_envs=3, gamma=0.98)
    summary = prepare(make_policy(), study_config(tmp_path, initial_model=str(path)), scaler)
    assert (scaler.mean, scaler.var, scaler.count) == (trained.mean, trained.var, trained.count)
    assert trained.var > 100 and scaler.discounted_return.tolist() == [0.0, 0.0, 0.0]
    assert f"return std {math.sqrt(trained.var):.3g} over 800 steps, counted as 800" in summary


def test_carried_reward_scaling_counts_as_a_capped_number_of_frames(tmp_path: Path) -> None:
    """A source's whole count (3.63 million frames for universal_24_46) would pin the scale to
    its walker for a whole fine-tune: the new walker's returns take over at a stated rate."""
    cap = transfer.loading.CARRIED_SCALER_COUNT
    long_trained = {"mean": 2.0, "var": 400.0, "count": 3_630_000.0}
    path = save_weights(tmp_path / "long.pt", make_policy(), reward_scaler=long_trained)
    scaler = RewardScaler(num_envs=1, gamma=0.98)
    summary = prepare(make_policy(), study_config(tmp_path, initial_model=str(path)), scaler)
    assert (scaler.mean, scaler.var, scaler.count) == (2.0, 400.0, cap)
    assert f"over 3,630,000 steps, counted as {cap:,}" in summary
    # The new walker's discounted returns have std ~1: after `cap` frames of them both samples
    # weigh the same and the variance is about halfway (~200); uncapped it would stay ~399.
    rng = np.random.default_rng(0)
    for _ in range(cap):
        scaler(rng.normal(0.0, 0.2, size=1), np.array([False]))
    assert 1.0 < scaler.var < 0.6 * 400.0
    assert scaler.count == pytest.approx(2 * cap)


def test_the_shipped_model_without_reward_statistics_still_loads(tmp_path: Path) -> None:
    """trained_models/leg_34_trained.pt predates the reward statistics in checkpoints."""
    shipped = Path(__file__).resolve().parent.parent / "trained_models" / "leg_34_trained.pt"
    assert "reward_scaler" not in load_checkpoint(shipped)
    scaler = fresh_scaler()
    policy = make_policy(hidden=(32, 32, 32, 32))
    summary = prepare(policy, study_config(tmp_path, initial_model=str(shipped),
                                           hidden_layers=(32, 32, 32, 32)), scaler)
    assert "no reward scaling statistics; they start afresh" in summary
    assert (scaler.mean, scaler.var) == (0.0, 1.0)
    assert torch.equal(policy.state_dict()["actor.0.weight"],
                       load_checkpoint(shipped)["state_dict"]["actor.0.weight"])


@pytest.mark.parametrize("statistics", [{"mean": 0.0, "var": math.nan, "count": 5.0},
                                        {"mean": 0.0, "var": 1.0}, "garbage"])
def test_broken_reward_statistics_are_a_usage_error(tmp_path: Path, statistics) -> None:
    path = save_weights(tmp_path / "broken.pt", make_policy(), reward_scaler=statistics)
    with pytest.raises(UsageError, match="^--initial_model: .*reward scaling statistics"):
        prepare(make_policy(), study_config(tmp_path, initial_model=str(path)))


def test_model_names_resolve_in_models_dir_then_the_repository(
    tmp_path: Path, isolated_repo_models: Path
) -> None:
    models = tmp_path / "models"
    models.mkdir()
    save_weights(models / "mine.pt", make_policy())
    save_weights(isolated_repo_models / "shipped.pt", make_policy())
    save_weights(isolated_repo_models / "mine.pt", make_policy())
    assert resolve_model_path("mine", models) == models / "mine.pt"
    assert resolve_model_path("mine.pt", models) == models / "mine.pt"
    assert resolve_model_path("shipped", models) == isolated_repo_models / "shipped.pt"
    assert resolve_model_path(str(models / "mine.pt"), tmp_path) == models / "mine.pt"
    assert resolve_model_path(str(models / "mine"), tmp_path) == models / "mine.pt"


def test_missing_model_is_a_one_line_error_listing_the_models(
    tmp_path: Path, isolated_repo_models: Path
) -> None:
    models = tmp_path / "models"
    models.mkdir()
    for name in ("walker_b", "walker_a"):
        save_weights(models / f"{name}.pt", make_policy())
    (models / ".walker_c.pt.abc.tmp").write_bytes(b"half written")
    save_weights(isolated_repo_models / "leg_34_trained.pt", make_policy())
    with pytest.raises(UsageError) as error:
        prepare(make_policy(), study_config(tmp_path, initial_model="walker_x"))
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith("--initial_model: no model 'walker_x'")
    assert message.endswith(": leg_34_trained, walker_a, walker_b")


def test_missing_model_with_no_models_says_so(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"^--initial_model: no model 'x' .*: none$"):
        resolve_model_path("x", tmp_path / "absent")


def test_architecture_mismatch_names_both_architectures(
    tmp_path: Path, source: tuple[ActorCritic, Path]
) -> None:
    policy = make_policy(hidden=(32, 32))
    before = snapshot(policy)
    with pytest.raises(UsageError) as error:
        prepare(policy, study_config(tmp_path, initial_model="source",
                                              hidden_layers=(32, 32)))
    message = str(error.value)
    assert "\n" not in message and message.startswith("--initial_model: ")
    assert "--hidden_layers=[16,16,16,16]" in message and "--hidden_layers=[32,32]" in message
    assert "state_dict" not in message and error.value.__cause__ is None
    assert all(torch.equal(value, before[key]) for key, value in policy.state_dict().items())


def test_observation_size_mismatch_is_named(tmp_path: Path) -> None:
    (tmp_path / "models").mkdir()
    save_weights(tmp_path / "models" / "other_env.pt", ActorCritic(10, 2, HIDDEN))
    with pytest.raises(UsageError, match="10 observations, 2 actions.*24 observations, 4 actions"):
        prepare(make_policy(), study_config(tmp_path, initial_model="other_env"))


@pytest.mark.parametrize("content", [b"", b"not a torch file at all", b"PK\x03\x04truncated"])
def test_corrupt_model_file_is_a_usage_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "broken.pt"
    path.write_bytes(content)
    with pytest.raises(UsageError, match=r"^--initial_model: .*broken\.pt"):
        prepare(make_policy(), study_config(tmp_path, initial_model=str(path)))


class MakesMarker:
    """Unpickling this calls os.mkdir(marker): the shape of a malicious checkpoint."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return os.mkdir, (str(self.marker),)


def test_malicious_pickle_is_refused_without_running_it(tmp_path: Path) -> None:
    marker = tmp_path / "code_ran"
    path = tmp_path / "evil.pt"
    torch.save({"state_dict": MakesMarker(marker)}, path)

    with pytest.raises(UsageError) as error:
        prepare(make_policy(), study_config(tmp_path, initial_model=str(path)))
    assert not marker.exists()
    message = str(error.value)
    assert message.startswith(f"--initial_model: {path}: refused to load")
    assert message.isprintable(), "one clean line: no newlines or terminal escape codes"

    torch.load(path, weights_only=False)  # the payload is real: unsafe loading runs it
    assert marker.exists()


# ----- a real study --------------------------------------------------------------------------

def test_a_study_saved_model_seeds_a_frozen_study(tmp_path: Path) -> None:
    """Study 1 saves a policy; study 2 starts from it with freeze_all_but_final and trains
    only the final layers; every other layer it saves is bit-identical to study 1's."""
    trainer = pytest.importorskip("study.trainer")
    tiny = {"batch_size": 1000, "minibatch_size": 250, "train_steps": 4, "num_envs": 1,
            "quiet": True, "max_time_steps": 200, "hidden_layers": (16, 16)}
    first = trainer.train(study_config(tmp_path, save_name="first", total_frames=1000, **tiny))
    assert first.best_path.exists()
    initial = load_checkpoint(first.best_path)["state_dict"]

    second_config = study_config(tmp_path, save_name="second", total_frames=2000,
                                 initial_model="first", transfer_learning="freeze_all_but_final",
                                 leg_length=30.0, **tiny)
    second = trainer.train(second_config)
    # The best checkpoint is rewritten before every update while the score window fills, so
    # after 2 batches it holds the policy after the first update.
    saved = load_checkpoint(second.best_path)["state_dict"]
    for key in ("actor.0.weight", "actor.0.bias", "actor.2.weight", "actor.2.bias",
                "critic.0.weight", "critic.0.bias", "critic.2.weight", "critic.2.bias"):
        assert torch.equal(saved[key], initial[key]), key
    assert not torch.equal(saved["actor.4.weight"], initial["actor.4.weight"])
    assert not torch.equal(saved["critic.4.weight"], initial["critic.4.weight"])
