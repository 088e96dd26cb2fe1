"""Shared test fixtures: CPU only, no network, small thread counts."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
torch.set_num_threads(min(2, torch.get_num_threads()))


def find_blender_command() -> list[str] | None:
    """How to run a Blender script: ``[blender, --background, --python]`` or ``[python-with-bpy]``."""
    candidate = os.environ.get("MIRA_BLENDER") or shutil.which("blender")
    if candidate is None and (REPO_ROOT / ".venv-blender" / "bin" / "python").exists():
        candidate = str(REPO_ROOT / ".venv-blender" / "bin" / "python")
    if candidate is None:
        return None
    if Path(candidate).name.startswith("python"):
        return [candidate]
    return [candidate, "--background", "--python"]


@pytest.fixture(scope="session")
def blender_command() -> list[str]:
    """The Blender launcher; in CI its absence is a failure, elsewhere a skip."""
    command = find_blender_command()
    if command is None:
        message = "no Blender: set MIRA_BLENDER or install bpy into .venv-blender (see README)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return command


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT
