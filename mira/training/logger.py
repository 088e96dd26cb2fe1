"""Rank-0 experiment logging: TensorBoard, optional Weights & Biases, and a ``metrics.jsonl`` file.

``<model_save_path>/metrics.jsonl`` gets one JSON line per logged step (appended across
resumes), a plain-text record of the run that scripts and tests can read.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

LOGGER = logging.getLogger("mira.training")


class ExperimentLogger:
    """Writes scalars and images on the main process; every method is a no-op elsewhere.

    Args:
        log_dir: directory for TensorBoard event files and ``metrics.jsonl``.
        enabled: False on ranks other than 0.
        use_wandb: also log to Weights & Biases (``pip install wandb``; ``wandb login``).
        wandb_project: W&B project name.
        run_config: the flat config, recorded with the run.
    """

    def __init__(self, log_dir: str | Path, enabled: bool, use_wandb: bool = False,
                 wandb_project: str = "mira", run_config: dict[str, Any] | None = None) -> None:
        self.enabled = enabled
        self.log_dir = Path(log_dir)
        self.writer = None
        self.wandb_run = None
        if not enabled:
            return
        from torch.utils.tensorboard import SummaryWriter

        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.writer = SummaryWriter(log_dir=str(self.log_dir / "tensorboard"))
        self.jsonl_path = self.log_dir / "metrics.jsonl"
        if use_wandb:
            try:
                import wandb
            except ImportError as error:
                raise ImportError("wandb=true needs the wandb package: pip install wandb (then wandb login), "
                                  "or pass --wandb false") from error
            self.wandb_run = wandb.init(project=wandb_project, config=run_config, dir=str(self.log_dir),
                                        resume="allow")

    def log_scalars(self, step: int, values: dict[str, float], prefix: str = "train") -> None:
        """Record ``values`` as ``<prefix>/<name>`` at ``step`` (and as a metrics.jsonl line)."""
        if not self.enabled:
            return
        for name, value in values.items():
            self.writer.add_scalar(f"{prefix}/{name}", value, step)
        with open(self.jsonl_path, "a") as handle:
            handle.write(json.dumps({"split": prefix, "step": step, **values}) + "\n")
        if self.wandb_run is not None:
            self.wandb_run.log({f"{prefix}/{k}": v for k, v in values.items()}, step=step)

    def log_images(self, step: int, tag: str, images: Tensor) -> None:
        """Record a grid image (3, H, W) in [0, 1]."""
        if not self.enabled:
            return
        images = images.detach().float().clamp(0, 1).cpu()
        self.writer.add_image(tag, images, step)
        if self.wandb_run is not None:
            import wandb

            self.wandb_run.log({tag: wandb.Image(images.permute(1, 2, 0).numpy())}, step=step)

    def flush(self) -> None:
        if self.writer is not None:
            self.writer.flush()

    def close(self) -> None:
        """Flush and close the writers; later calls log nothing."""
        self.enabled = False
        if self.writer is not None:
            self.writer.close()
            self.writer = None
        if self.wandb_run is not None:
            self.wandb_run.finish()
            self.wandb_run = None


def read_metrics(path: str | Path, split: str = "train") -> list[dict[str, Any]]:
    """The ``split`` lines of a ``metrics.jsonl`` file, in order."""
    lines = Path(path).read_text().splitlines()
    return [record for line in lines if line.strip() and (record := json.loads(line))["split"] == split]


def image_grid(rows: list[Tensor]) -> Tensor:
    """Stack rows of views (V, 3, H, W) into one (3, R * H, V * W) image."""
    return torch.cat([torch.cat(list(row), dim=-1) for row in rows], dim=-2)
