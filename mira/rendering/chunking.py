"""One way to cut work over points, rays or views into chunks: :func:`chunk_slices` and :func:`chunked`.

Rendering (rays and field queries), mesh extraction (density grids, vertex colours, marching-cubes
blocks), texture baking and evaluation bound their memory by processing a fixed number of items at a
time; these two helpers are the only place that slicing and concatenation is written.
"""

from __future__ import annotations

from typing import Any, Callable, Iterator, Mapping, Sequence

import torch
from torch import Tensor


def chunk_slices(total: int, chunk_size: int, at_least_one: bool = False) -> Iterator[slice]:
    """Consecutive slices ``[start, start + chunk_size)`` covering ``range(total)``.

    Args:
        total: number of items.
        chunk_size: items per slice (>= 1); the last slice may be shorter.
        at_least_one: give one empty slice when ``total == 0`` (so a caller still gets outputs of the
            right shape from its function).
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be at least 1, got {chunk_size}")
    if total == 0 and at_least_one:
        yield slice(0, 0)
        return
    for start in range(0, total, chunk_size):
        yield slice(start, min(start + chunk_size, total))


def chunked(fn: Callable[..., Any], *inputs: Tensor, chunk_size: int, dim: int = 0) -> Any:
    """``fn(*inputs)`` computed ``chunk_size`` items at a time along ``dim`` of every input.

    ``fn`` is called on matching slices of the inputs (same size along ``dim``), at least once (an empty
    input gives one empty chunk), and its outputs are concatenated along ``dim``: a tensor, or (nested)
    tuples, lists or dicts of tensors.

    Args:
        fn: maps slices (..., n, ...) of the inputs to outputs with n items along ``dim``.
        inputs: tensors with the same size N along ``dim``.
        chunk_size: items per call.
        dim: the item dimension of the inputs and outputs.
    Returns:
        What ``fn(*inputs)`` returns, with N items along ``dim``.
    """
    if not inputs:
        raise ValueError("chunked needs at least one input tensor")
    total = inputs[0].shape[dim]
    if any(tensor.shape[dim] != total for tensor in inputs):
        raise ValueError(f"chunked inputs differ in size along dim {dim}: {[tuple(t.shape) for t in inputs]}")
    outputs = [fn(*(tensor[(slice(None),) * (dim % tensor.dim()) + (part,)] for tensor in inputs))
               for part in chunk_slices(total, chunk_size, at_least_one=True)]
    return concatenate(outputs, dim)


def concatenate(outputs: Sequence[Any], dim: int) -> Any:
    """Concatenate per-chunk outputs along ``dim``: tensors, or (nested) tuples / lists / dicts of tensors."""
    first = outputs[0]
    if len(outputs) == 1:
        return first
    if isinstance(first, Tensor):
        return torch.cat(list(outputs), dim=dim)
    if isinstance(first, Mapping):
        return {key: concatenate([output[key] for output in outputs], dim) for key in first}
    if isinstance(first, (tuple, list)):
        return type(first)(concatenate([output[index] for output in outputs], dim) for index in range(len(first)))
    raise TypeError(f"chunked can concatenate tensors, tuples, lists or dicts of tensors, not {type(first).__name__}")
