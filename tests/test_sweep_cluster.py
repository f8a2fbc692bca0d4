"""A sweep on a real Ray cluster of two nodes started on this machine: a head node and a second
node process with a custom resource that pins the studies to it. The sweep joins the cluster
by its address (the code travels as Ray's working_dir) and ships each study's files to and
from the node, as it must where nodes share no filesystem. Skipped without the Ray extra.

Its own module: the local Ray of tests/test_sweep.py must be shut down before the sweep joins
this cluster.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import torch
from conftest import TINY_FIXED, study_results

import sweep
from common.checkpoint import load_checkpoint, save_policy
from ppo.network import ActorCritic
from sweeps import execution


@pytest.fixture(scope="module")
def two_nodes():
    """(cluster, id of the second node): one CPU each; only the second has `second_node`."""
    pytest.importorskip("ray")
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True,
                      head_node_args={"num_cpus": 1, "include_dashboard": False})
    try:
        second = cluster.add_node(num_cpus=1, resources={"second_node": 1})
        cluster.wait_for_nodes()
        yield cluster, second.node_id
    finally:
        cluster.shutdown()


def run(tmp_path: Path, address: str, *extra: str) -> tuple[int, dict, str]:
    args = ["--name=c", "--grid=strategy=scratch,initialize", "--fixed=initial_model=source",
            f"--address={address}", *TINY_FIXED, f"--models_dir={tmp_path / 'm'}",
            f"--results_dir={tmp_path / 'r'}", f"--tensorboard={tmp_path / 'runs'}", *extra]
    plan = sweep.sweep_from_args(sweep.build_parser().parse_args(args))
    assert plan.ship_files  # on by default with --address
    out = io.StringIO()
    code = execution.run_sweep(plan, out)
    manifest = json.loads((tmp_path / "r" / "c_manifest.json").read_text())
    return code, manifest, out.getvalue()


def test_studies_pinned_to_the_second_node_run_there_and_their_files_come_back(tmp_path: Path,
                                                                              two_nodes):
    cluster, second_node = two_nodes
    (tmp_path / "m").mkdir()
    save_policy(tmp_path / "m" / "source.pt", ActorCritic(24, 4, (32, 32, 32, 32)),
                {"leg_length": 34.0}, 0, 0.0)

    code, manifest, out = run(tmp_path, cluster.address, "--resource=second_node=1")
    assert code == 0, out
    assert manifest["resources"] == {"second_node": 1.0}
    for entry in manifest["studies"]:
        assert entry["status"] == "done" and entry["frames"] == 2000, entry
        assert entry["node"] == second_node  # not the head, where the sweep itself runs
        assert set(entry["files"]) == {"results", "csv", "updates", "log", "model",
                                       "checkpoint", "tensorboard"}
    results = study_results(tmp_path, "c__initialize")
    # It trained in the node's scratch folder, not in these folders: everything here came back.
    assert "sweep-" in results["config"]["models_dir"]
    assert results["config"]["initial_model"] == "source"  # the model was sent along
    assert load_checkpoint(tmp_path / "m" / "c__initialize.pt")["frames"] == 2000
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == [
        "c__initialize.last.pt", "c__initialize.pt", "c__scratch.last.pt", "c__scratch.pt",
        "source.pt"]
    assert [p.name.startswith("events.out.tfevents") for p in
            (tmp_path / "runs" / "c__initialize").iterdir()] == [True]  # events came back too

    # Extended: each study resumes on the node from the checkpoint sent back to it.
    code, manifest, out = run(tmp_path, cluster.address, "--resource=second_node=1",
                              "--fixed=total_frames=3000")
    assert code == 0, out
    for entry in manifest["studies"]:
        assert entry["status"] == "done" and entry["resumed"] and entry["frames"] == 3000
        assert entry["node"] == second_node
    last = torch.load(tmp_path / "m" / "c__scratch.last.pt", weights_only=True)
    assert last["frames"] == 3000 and len(study_results(tmp_path, "c__scratch")[
        "episodes"]["reward"]) == len(last["episodes"]["reward"])
    assert len(list((tmp_path / "runs" / "c__scratch").iterdir())) == 2  # one per run of it


def test_a_resource_no_node_has_is_refused_rather_than_waited_for(tmp_path: Path, two_nodes):
    cluster, _ = two_nodes
    (tmp_path / "m").mkdir()
    save_policy(tmp_path / "m" / "source.pt", ActorCritic(24, 4, (32, 32, 32, 32)),
                {"leg_length": 34.0}, 0, 0.0)
    code, manifest, out = run(tmp_path, cluster.address, "--resource=gpu_node=1")
    assert code == 2
    assert "no node of the Ray cluster has 1 CPU and 1 gpu_node" in out
    assert not (tmp_path / "r" / "c__scratch.p").exists()


def test_a_local_sweep_starts_its_own_ray_even_with_a_cluster_on_this_machine(tmp_path: Path,
                                                                              two_nodes):
    """Without --address a sweep must not join a Ray already running here (`ray start`, another
    sweep's cluster): it would borrow nodes it was not given, or fail outright."""
    cluster, _ = two_nodes
    args = ["--name=l", "--grid=seed=1,2", *TINY_FIXED, f"--models_dir={tmp_path / 'm'}",
            f"--results_dir={tmp_path / 'r'}", "--tensorboard=none"]
    plan = sweep.sweep_from_args(sweep.build_parser().parse_args(args))
    out = io.StringIO()
    code = execution.run_sweep(plan, out)
    assert code == 0, out.getvalue()
    manifest = json.loads((tmp_path / "r" / "l_manifest.json").read_text())
    cluster_nodes = {node.node_id for node in cluster.list_all_nodes()}
    for entry in manifest["studies"]:
        assert entry["status"] == "done", entry
        assert entry["node"] not in cluster_nodes
