"""Training checkpoints: atomic writes, keep-last-K, latest lookup, and RNG states.

A checkpoint is one file ``<model_save_path>/checkpoint-<step:08d>.pt`` holding only
tensors and plain Python values, so it loads with ``torch.load(weights_only=True)``:

``{"format": 1, "step", "epoch", "batches_in_epoch", "model", "optimizer", "scheduler",
"scaler", "rng": [per-rank states], "world_size", "config", "nonfinite_steps"}``.

Every random number generator the training loop touches (Python, NumPy, torch CPU and
CUDA) is saved for *every* rank, so a resumed run draws the same numbers as the
interrupted one would have.
"""

from __future__ import annotations

import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mira.atomic import atomic_output

CHECKPOINT_PATTERN = re.compile(r"^checkpoint-(\d+)\.pt$")
CHECKPOINT_FORMAT = 1


def checkpoint_path(directory: str | Path, step: int) -> Path:
    """``<directory>/checkpoint-<step:08d>.pt``."""
    return Path(directory) / f"checkpoint-{step:08d}.pt"


def list_checkpoints(directory: str | Path) -> list[Path]:
    """Checkpoint files in ``directory`` sorted by step (oldest first); temp files are ignored."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in directory.iterdir() if (m := CHECKPOINT_PATTERN.match(p.name))]
    return [p for _, p in sorted(found)]


def latest_checkpoint(directory: str | Path) -> Path | None:
    """The checkpoint with the highest step in ``directory``, or None."""
    checkpoints = list_checkpoints(directory)
    return checkpoints[-1] if checkpoints else None


def atomic_torch_save(obj: Any, path: str | Path) -> None:
    """``torch.save`` through :func:`mira.atomic.atomic_output` (temp file, fsync, ``os.replace``).

    A reader never sees a half-written file, even if the process is killed mid-write.
    """
    with atomic_output(path) as temp_path, open(temp_path, "wb") as handle:
        torch.save(obj, handle)


def prune_checkpoints(directory: str | Path, keep_last: int) -> list[Path]:
    """Delete all but the ``keep_last`` newest checkpoints (``keep_last <= 0`` keeps all); return the deleted."""
    if keep_last <= 0:
        return []
    old = list_checkpoints(directory)[:-keep_last]
    for path in old:
        path.unlink(missing_ok=True)
    return old


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint safely (``weights_only=True``); a clear error for a corrupt or foreign file."""
    path = Path(path)
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:
        raise RuntimeError(
            f"cannot load training checkpoint {path} ({error}); delete it to resume from an older one, "
            "or set model_preloading_strategy to 'none' to start fresh"
        ) from error
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise RuntimeError(f"{path} is not a MIRA training checkpoint (format {CHECKPOINT_FORMAT})")
    return state


# ---------------------------------------------------------------------- RNG states
def capture_rng_state() -> dict[str, Any]:
    """This process's RNG states as tensors and plain values (``weights_only``-loadable)."""
    np_state = np.random.get_state(legacy=False)
    version, internal, gauss = random.getstate()
    state: dict[str, Any] = {
        "python": {"version": version, "internal": torch.tensor(internal, dtype=torch.int64), "gauss": gauss},
        "numpy": {
            "bit_generator": np_state["bit_generator"],
            "key": torch.from_numpy(np_state["state"]["key"].astype(np.int64)),
            "pos": int(np_state["state"]["pos"]),
            "has_gauss": int(np_state["has_gauss"]),
            "gauss": float(np_state["gauss"]),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Inverse of :func:`capture_rng_state`."""
    python = state["python"]
    random.setstate((python["version"], tuple(int(v) for v in python["internal"].tolist()), python["gauss"]))
    numpy = state["numpy"]
    np.random.set_state({
        "bit_generator": numpy["bit_generator"],
        "state": {"key": numpy["key"].numpy().astype(np.uint32), "pos": numpy["pos"]},
        "has_gauss": numpy["has_gauss"],
        "gauss": numpy["gauss"],
    })
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        cuda_states = [s.cpu() for s in state["cuda"]]
        if len(cuda_states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda_states)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and every CUDA device)."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
