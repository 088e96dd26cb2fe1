"""Per-object compaction of ray or point sets: keep the entries of each row that need work.

Rows are objects (their part parameters broadcast along the row), so compaction keeps the row
structure: each row's selected entries move to the front and rows are padded to the longest.
"""

from __future__ import annotations

import torch
from torch import Tensor


def compact(mask: Tensor) -> tuple[Tensor, Tensor]:
    """Positions of the True entries of each row of ``mask`` (B, M), padded to the longest row.

    Returns:
        index (B, K) long (padding points at position 0) and valid (B, K) bool; K >= 1.
    """
    count = mask.sum(1)
    width = max(int(count.max()), 1) if mask.numel() else 1
    width = min(width, mask.shape[1]) if mask.shape[1] else 1
    order = torch.argsort((~mask).to(torch.int8), dim=1, stable=True)[:, :width]
    valid = torch.arange(order.shape[1], device=mask.device)[None] < count[:, None]
    return torch.where(valid, order, torch.zeros_like(order)), valid


def gather_rows(values: Tensor, index: Tensor) -> Tensor:
    """``values`` (B, M, ...) at ``index`` (B, K) -> (B, K, ...)."""
    expanded = index.reshape(*index.shape, *([1] * (values.dim() - 2))).expand(-1, -1, *values.shape[2:])
    return torch.gather(values, 1, expanded)


def scatter_rows(target: Tensor, index: Tensor, valid: Tensor, values: Tensor) -> Tensor:
    """``target`` (B, M, ...) with ``values`` (B, K, ...) written at ``index`` where ``valid``
    (padding entries go to a scratch column, so they never race with real ones)."""
    scratch = target.shape[1]
    padded = torch.cat([target, target[:, :1]], dim=1)
    index = torch.where(valid, index, torch.full_like(index, scratch))
    expanded = index.reshape(*index.shape, *([1] * (values.dim() - 2))).expand(-1, -1, *values.shape[2:])
    return padded.scatter(1, expanded, values.to(target.dtype))[:, :scratch]
