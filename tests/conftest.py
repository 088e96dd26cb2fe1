"""Shared test fixtures: CPU only, no network, one thread per process (2 shared cores)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from mira.data.blender import BlenderNotFoundError, blender_launcher, find_blender

REPO_ROOT = Path(__file__).resolve().parents[1]

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# One thread here and in every child process (train_ddp.py, torchrun, Blender's Python): with 2 cores
# shared by parallel processes, more threads oversubscribe and run far slower.
os.environ["OMP_NUM_THREADS"] = "1"
os.environ["MKL_NUM_THREADS"] = "1"
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def blender_command() -> list[str]:
    """argv prefix running a Blender script (see :func:`mira.data.blender.blender_launcher`): the script
    path, ``--`` and its arguments follow. In CI a missing Blender is a failure, elsewhere a skip."""
    try:
        return blender_launcher(find_blender())
    except BlenderNotFoundError as error:
        if os.environ.get("CI"):
            pytest.fail(str(error))
        pytest.skip(str(error))


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT
