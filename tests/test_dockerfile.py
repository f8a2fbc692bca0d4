"""The Dockerfile and the README's Docker example, read as text (building the image is the opt-in
tests/docker/smoke.sh): what a run leaves behind on the host, and what a rebuild gets."""

from __future__ import annotations

import json
import re

from conftest import REPO_ROOT

DOCKERFILE = (REPO_ROOT / "Dockerfile").read_text()
INSTRUCTIONS = [tuple(line.split(None, 1)) for line in DOCKERFILE.splitlines()
                if line.strip() and not line.startswith((" ", "#"))]
"""(keyword, arguments) of each instruction; continuation lines are indented, so skipped."""


def instruction(name: str) -> list[str]:
    return [arguments for keyword, arguments in INSTRUCTIONS if keyword == name]


def test_no_volume_is_declared():
    """A VOLUME makes every run without --rm leave an anonymous volume behind; it protects
    nothing (a bind mount replaces the folder anyway)."""
    assert instruction("VOLUME") == []


def test_the_base_image_is_pinned_to_a_patch_level_tag():
    [base] = instruction("FROM")
    assert re.fullmatch(r"python:3\.11\.\d+-slim-\w+", base.split()[0]), base


def test_the_entrypoint_is_absolute():
    [entrypoint] = instruction("ENTRYPOINT")
    program, script = json.loads(entrypoint)
    assert program.startswith("/") and script.startswith("/app/"), entrypoint


def test_pip_runs_without_the_root_user_warning():
    assert "PIP_ROOT_USER_ACTION=ignore" in DOCKERFILE


def test_the_readme_example_mounts_both_folders_and_runs_as_the_host_user():
    readme = (REPO_ROOT / "README.md").read_text()
    example = re.search(r"```bash\ndocker build.*?\n(docker run .*?)```", readme, re.S)
    assert example, "no docker run example in README.md"
    command = example.group(1)
    assert '--user "$(id -u):$(id -g)"' in command
    assert '-v "$PWD/results:/app/results"' in command
    assert '-v "$PWD/trained_models:/app/trained_models"' in command
