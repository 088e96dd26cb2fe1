"""Training: ``train_ddp.py`` -> :func:`mira.training.launch.main` -> :class:`Trainer`.

One file per idea: ``cli`` (command line), ``distributed`` (process group), ``optim``
(AdamW groups, warm-up + cosine), ``patches`` (random supervision patches), ``losses``,
``sampler`` (resumable distributed sampler), ``checkpoint`` (atomic save, RNG states),
``validation``, ``logger`` (TensorBoard / W&B / metrics.jsonl), ``synthetic_scenes``
(analytic data for runs without a dataset) and ``trainer`` (the loop).
"""

from mira.training.trainer import FitResult, NonFiniteLossError, Trainer, train

__all__ = ["FitResult", "NonFiniteLossError", "Trainer", "train"]
