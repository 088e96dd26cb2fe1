"""Shared pieces of the training tests: a tiny config, launching train_ddp.py in subprocesses, and importing a
benchmark script."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from mira.config import MiraConfig, load_config

REPO_ROOT = Path(__file__).resolve().parents[1]
TINY_CONFIG = REPO_ROOT / "configs" / "tiny.json"

# A few seconds per run on one CPU core: 20 px views, 16 px patches, LPIPS on a random VGG.
TINY_TRAIN_OVERRIDES: dict[str, Any] = {
    "render_size": 20,
    "patch_size": 16,
    "supervision_k": 2,
    "batch_size": 1,
    "num_epochs": 1000,
    "learning_rate": 3e-3,
    "warmup_steps": 2,
    "lpips_weight": 0.1,
    "lpips_net": "vgg",
    "lpips_pretrained_backbone": False,
    "mask_loss_weight": 0.1,
    "synthetic_objects": 8,
    "val_every_steps": 3,
    "val_max_objects": 2,
    "log_every_steps": 1,
    "checkpoint_every_steps": 3,
    "save_every_epoch": 0,
    "keep_last_checkpoints": 2,
    "num_workers": 0,
    "device": "cpu",
}


def tiny_config(save_dir: Path, **overrides: Any) -> MiraConfig:
    """tiny.json + :data:`TINY_TRAIN_OVERRIDES` + ``overrides``, saving to ``save_dir``."""
    values = {**TINY_TRAIN_OVERRIDES, "model_save_path": str(save_dir), **overrides}
    return load_config(TINY_CONFIG, **values)


def write_disk_dataset(root: Path) -> Path:
    """8 train + 2 val analytic objects, 6 views of 32 px each, in our render format (index.json)."""
    from mira.training.synthetic_scenes import write_synthetic_dataset

    return write_synthetic_dataset(root, num_train=8, num_val=2, num_views=6, size=32, seed=3)


def disk_config(save_dir: Path, data_dir: Path, **overrides: Any) -> MiraConfig:
    """:func:`tiny_config` reading ``data_dir`` through :class:`mira.data.MultiViewDataset`."""
    return tiny_config(save_dir, synthetic_objects=0, data_dir=str(data_dir), **overrides)


def write_config(path: Path, config: MiraConfig) -> Path:
    """Save ``config`` as a nested JSON file for ``--config_path``."""
    config.save_json(path)
    return path


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def subprocess_env() -> dict[str, str]:
    """Environment for child processes: the repo on PYTHONPATH, offline (one thread each: conftest.py)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO_ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", PYTHONWARNINGS="ignore::UserWarning")
    return env


def torchrun_command(args: list[str]) -> list[str]:
    """``torchrun ARGS train_ddp.py`` through the current interpreter."""
    return [sys.executable, "-m", "torch.distributed.run", *args, str(REPO_ROOT / "train_ddp.py")]


def start(command: list[str], log_path: Path) -> subprocess.Popen:
    """Start ``command`` in its own session, stdout+stderr to ``log_path``."""
    log = open(log_path, "w")
    return subprocess.Popen(command, cwd=REPO_ROOT, env=subprocess_env(), stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)


def finish(process: subprocess.Popen, log_path: Path, timeout: float = 240.0) -> str:
    """Wait for ``process``; on a timeout kill its process group. Return its log; assert exit code 0."""
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        raise AssertionError(f"timed out after {timeout} s:\n{log_path.read_text()[-4000:]}")
    log = log_path.read_text()
    assert process.returncode == 0, f"exit code {process.returncode}:\n{log[-6000:]}"
    return log


def run(command: list[str], log_path: Path, timeout: float = 240.0) -> str:
    """Run ``command`` to completion (see :func:`finish`)."""
    return finish(start(command, log_path), log_path, timeout)


def train_losses(save_dir: Path) -> dict[int, float]:
    """``{step: loss}`` from ``<save_dir>/logs/metrics.jsonl`` (later lines win)."""
    lines = (save_dir / "logs" / "metrics.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines if line.strip()]
    return {r["step"]: r["loss"] for r in records if r["split"] == "train" and "loss" in r}


def load_benchmark(name: str) -> ModuleType:
    """``benchmarks/<name>.py`` imported as a module (the scripts are not a package), to call its ``main``."""
    spec = importlib.util.spec_from_file_location(name, REPO_ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
