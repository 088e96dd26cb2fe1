"""Training checkpoints: atomic writes, keep-last-K, latest lookup, and RNG states.

A checkpoint is one file ``<model_save_path>/checkpoint-<step:08d>.pt`` holding only
tensors and plain Python values, so it loads with ``torch.load(weights_only=True)``:

``{"format": 1, "step", "epoch", "batches_in_epoch", "model", "optimizer", "scheduler",
"scaler", "rng": [per-rank states], "world_size", "config", "nonfinite_in_a_row",
"nonfinite_total"}``.

Every random number generator the training loop touches (Python, NumPy, torch CPU and
CUDA) is saved for *every* rank, so a resumed run draws the same numbers as the
interrupted one would have.

On top of these file-level helpers, the :class:`~mira.training.trainer.Trainer`'s checkpoints:
which one a run resumes from (:func:`find_resume_checkpoint`), restoring the trainer's whole
state from it (:func:`restore_training_state`), writing one (:func:`save_training_checkpoint`)
and the final ``save_pretrained`` export (:func:`export_final_model`).
"""

from __future__ import annotations

import dataclasses
import logging
import random
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from mira.atomic import atomic_output
from mira.checkpoints import FINAL_EXPORT_DIR
from mira.config import ConfigError
from mira.training.distributed import all_gather_objects, barrier

if TYPE_CHECKING:
    from mira.training.trainer import Trainer

LOGGER = logging.getLogger("mira.training")

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


# ---------------------------------------------------------------------- the trainer's checkpoints
def find_resume_checkpoint(strategy: str, save_dir: str | Path) -> Path | None:
    """The checkpoint a run with ``model_preloading_strategy`` ``strategy`` resumes from, or None.

    A ``.pt`` file is resumed from (it must exist); otherwise the latest checkpoint in ``save_dir``
    (``auto``, or an ``--init_from`` model, which the run's own checkpoints override). ``none``
    refuses a ``save_dir`` that already holds checkpoints (:class:`ConfigError`).
    """
    save_dir = Path(save_dir)
    if strategy.endswith(".pt"):
        path = Path(strategy)
        if not path.is_file():
            raise ConfigError(f"model_preloading_strategy: checkpoint {path} does not exist")
        return path
    latest = latest_checkpoint(save_dir)
    if strategy == "none":
        if latest is not None:
            raise ConfigError(
                f"model_save_path {save_dir} already holds checkpoints ({latest.name}) and "
                "model_preloading_strategy is 'none'; choose a new model_save_path, or use 'auto' to resume"
            )
        return None
    if latest is not None and strategy != "auto":
        LOGGER.info("%s holds checkpoints of this run: resuming from %s instead of initialising from %s",
                    save_dir, latest.name, strategy)
    return latest


def restore_training_state(trainer: Trainer, path: Path) -> None:
    """Load ``path`` into ``trainer``: model, optimiser, scheduler (re-shaped to this run's config),
    GradScaler, progress counters and this rank's RNG states (with the same number of processes;
    otherwise the position in the epoch is carried over and the streams differ, with a warning)."""
    state = load_checkpoint(path)
    trainer.model.load_state_dict(state["model"])
    trainer.optimizer.load_state_dict(state["optimizer"])
    trainer.scheduler.load_state_dict(state["scheduler"])
    # The schedule's shape follows this run's config (e.g. a raised max_steps).
    schedule = trainer.scheduler.lr_lambdas[0]
    schedule.total_steps = trainer.total_steps
    schedule.warmup_steps, schedule.min_ratio = trainer.train_cfg.warmup_steps, trainer.train_cfg.min_lr_ratio
    if state.get("scaler"):
        trainer.scaler.load_state_dict(state["scaler"])
    trainer.state = dataclasses.replace(
        trainer.state, step=state["step"], epoch=state["epoch"], batches_in_epoch=state["batches_in_epoch"],
        nonfinite_in_a_row=state.get("nonfinite_in_a_row", 0), nonfinite_total=state.get("nonfinite_total", 0))
    context = trainer.context
    saved_world = state["world_size"]
    if saved_world == context.world_size:
        restore_rng_state(state["rng"][context.rank])
    else:
        LOGGER.warning("%s was written by %d processes, this run has %d: the data order and random "
                       "streams will differ from an uninterrupted run", path, saved_world, context.world_size)
        consumed = state["batches_in_epoch"] * saved_world
        trainer.state.batches_in_epoch = consumed // context.world_size
    if trainer.state.batches_in_epoch >= trainer.steps_per_epoch * trainer.train_cfg.grad_accum_steps:
        trainer.state.epoch += 1
        trainer.state.batches_in_epoch = 0
    if context.is_main:
        LOGGER.info("resumed from %s at step %d (epoch %d, micro-batch %d)", path, trainer.state.step,
                    trainer.state.epoch, trainer.state.batches_in_epoch)


def save_training_checkpoint(trainer: Trainer) -> Path:
    """Write ``checkpoint-<step>.pt`` of ``trainer`` (rank 0, atomically) and prune old ones.

    Collective: call on every rank (every rank's RNG states are gathered into it).
    """
    context, progress = trainer.context, trainer.state
    rng_states = all_gather_objects(capture_rng_state(), context)
    path = checkpoint_path(trainer.save_dir, progress.step)
    if context.is_main:
        state = {
            "format": CHECKPOINT_FORMAT,
            "step": progress.step,
            "epoch": progress.epoch,
            "batches_in_epoch": progress.batches_in_epoch,
            "nonfinite_in_a_row": progress.nonfinite_in_a_row,
            "nonfinite_total": progress.nonfinite_total,
            "model": trainer.model.state_dict(),
            "optimizer": trainer.optimizer.state_dict(),
            "scheduler": trainer.scheduler.state_dict(),
            "scaler": trainer.scaler.state_dict() if trainer.scaler.is_enabled() else {},
            "rng": rng_states,
            "world_size": context.world_size,
            "config": trainer.config.to_dict(),
        }
        atomic_torch_save(state, path)
        prune_checkpoints(trainer.save_dir, trainer.train_cfg.keep_last_checkpoints)
        LOGGER.info("saved %s", path)
    barrier(context)
    return path


def export_final_model(trainer: Trainer) -> Path:
    """``save_pretrained`` ``trainer``'s weights to ``<model_save_path>/final`` (rank 0) for test.py.

    Collective: call on every rank.
    """
    target = trainer.save_dir / FINAL_EXPORT_DIR
    if trainer.context.is_main:
        trainer.model.save_pretrained(target)
        LOGGER.info("exported the final model to %s", target)
    barrier(trainer.context)
    return target
