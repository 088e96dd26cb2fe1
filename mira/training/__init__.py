"""Training: ``train_ddp.py`` -> :func:`mira.training.launch.main` -> :class:`Trainer`.

One file per idea: ``cli`` (command line), ``distributed`` (process group), ``optim``
(AdamW groups, warm-up + cosine), ``patches`` (random supervision patches), ``losses``,
``sampler`` (resumable distributed sampler), ``checkpoint`` (atomic save, RNG states, the
trainer's save / resume / final export), ``factories`` (config checks, model, datasets),
``signals`` (SIGTERM/SIGINT ask for a stop), ``validation``, ``logger`` (TensorBoard / W&B /
metrics.jsonl), ``synthetic_scenes`` (analytic data for runs without a dataset) and
``trainer`` (the loop).

``Trainer`` and friends are imported on first use, so that ``mira.training.cli`` (and
``train_ddp.py --help``) do not import PyTorch.
"""

from __future__ import annotations

from typing import Any

__all__ = ["FitResult", "NonFiniteLossError", "Trainer", "train"]


def __getattr__(name: str) -> Any:
    """``from mira.training import Trainer`` imports :mod:`mira.training.trainer` then."""
    if name in __all__:
        from mira.training import trainer

        return getattr(trainer, name)
    raise AttributeError(f"module 'mira.training' has no attribute {name!r}")
