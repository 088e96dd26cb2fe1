"""Where along each ray the renderer evaluates the field.

1. :func:`intersect_box` clips every ray to the object box (slab method); rays that
   miss it get an empty range ``near == far == 0`` and so contribute nothing.
2. :func:`stratified_samples` places the coarse samples: one per equal bin between
   ``near`` and ``far``, jittered inside its bin in training, at the bin midpoint in eval.
3. :func:`importance_samples` draws the fine samples by inverse-CDF sampling of the
   piecewise-constant pdf given by the coarse weights (deterministic in eval).
4. :func:`merge_samples` sorts coarse and fine samples (and their field values) into one
   ordered set (in eval both are already sorted, and it merges them without a sort);
   :func:`interval_edges` gives the interval each sample stands for.

Shapes: ``...`` is any batch of rays (the renderer uses ``(B, N)``); ``S`` samples per ray.
All distances ``t`` are along unit ray directions, in world units.
"""

from __future__ import annotations

import torch
from torch import Tensor

from mira.rendering.compositing import cumsum_along_rays

# Direction components smaller than this are treated as parallel to a slab.
_PARALLEL_EPS = 1e-9
# Added to the coarse weights before they become a pdf, so an empty ray samples uniformly.
_PDF_EPS = 1e-5


def intersect_box(origins: Tensor, directions: Tensor, box_min: Tensor, box_max: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Ray / axis-aligned box intersection by the slab method.

    Args:
        origins: (..., 3) ray origins.
        directions: (..., 3) ray directions (need not be unit; ``t`` is in their units).
        box_min, box_max: (3,) box corners.
    Returns:
        near (..., 1), far (..., 1) with ``0 <= near <= far`` (a ray starting inside the box
        has ``near = 0``), and hit (..., 1) bool. Rays that miss have ``near = far = 0``.
    """
    box_min = box_min.to(origins)
    box_max = box_max.to(origins)
    tiny = torch.full_like(directions, _PARALLEL_EPS)
    safe = torch.where(directions.abs() < _PARALLEL_EPS, torch.where(directions < 0, -tiny, tiny), directions)
    t_a = (box_min - origins) / safe
    t_b = (box_max - origins) / safe
    t_enter = torch.minimum(t_a, t_b).amax(dim=-1, keepdim=True)
    t_exit = torch.maximum(t_a, t_b).amin(dim=-1, keepdim=True)
    near = t_enter.clamp_min(0.0)
    hit = t_exit > near
    zero = torch.zeros_like(near)
    return torch.where(hit, near, zero), torch.where(hit, t_exit, zero), hit


def stratified_samples(near: Tensor, far: Tensor, num_samples: int, jitter: bool) -> Tensor:
    """One sample per equal bin of ``[near, far]``.

    Args:
        near, far: (..., 1).
        num_samples: S, number of bins.
        jitter: uniform random position inside each bin (training) instead of its midpoint (eval).
    Returns:
        t (..., S), sorted along the last dim.
    """
    bins = torch.arange(num_samples, dtype=near.dtype, device=near.device)
    if jitter:
        offsets = torch.rand(*near.shape[:-1], num_samples, dtype=near.dtype, device=near.device)
    else:
        offsets = torch.full_like(bins, 0.5)
    fractions = (bins + offsets) / num_samples
    return near + (far - near) * fractions


def interval_edges(t: Tensor, near: Tensor, far: Tensor) -> Tensor:
    """Edges of the interval each sample stands for: midpoints between neighbours,
    the first and last intervals extended to ``near`` and ``far``.

    Args:
        t: (..., S) sorted samples inside ``[near, far]``.
        near, far: (..., 1).
    Returns:
        (..., S + 1) edges; their differences sum to ``far - near`` exactly.
    """
    mids = 0.5 * (t[..., 1:] + t[..., :-1])
    return torch.cat([near, mids, far], dim=-1)


def importance_samples(edges: Tensor, weights: Tensor, num_samples: int, deterministic: bool) -> Tensor:
    """Inverse-CDF samples from the piecewise-constant pdf ``weights`` over the bins ``edges``.

    Args:
        edges: (..., S + 1) bin edges (sorted).
        weights: (..., S) non-negative bin weights (detached here: sampling is not differentiated).
        num_samples: F, number of new samples.
        deterministic: use the quantiles ``(k + 0.5) / F`` instead of uniform random numbers.
    Returns:
        t (..., F), sorted when ``deterministic`` (and ``edges`` sorted); each lies in the bin its
        quantile falls in.
    """
    edges = edges.detach()
    weights = weights.detach().to(edges.dtype) + _PDF_EPS
    pdf = weights / weights.sum(dim=-1, keepdim=True)
    cdf = cumsum_along_rays(pdf)
    cdf = torch.cat([torch.zeros_like(cdf[..., :1]), cdf], dim=-1).contiguous()  # (..., S + 1)
    batch_shape = cdf.shape[:-1]
    if deterministic:
        u = (torch.arange(num_samples, dtype=cdf.dtype, device=cdf.device) + 0.5) / num_samples
        u = u.expand(*batch_shape, num_samples).contiguous()
    else:
        u = torch.rand(*batch_shape, num_samples, dtype=cdf.dtype, device=cdf.device)
    num_bins = weights.shape[-1]
    below = (torch.searchsorted(cdf, u, right=True) - 1).clamp(0, num_bins - 1)
    above = below + 1
    cdf_below, cdf_above = cdf.gather(-1, below), cdf.gather(-1, above)
    edge_below, edge_above = edges.gather(-1, below), edges.gather(-1, above)
    span = cdf_above - cdf_below
    fraction = ((u - cdf_below) / torch.where(span > 0, span, torch.ones_like(span))).clamp(0.0, 1.0)
    # at most the bin's upper edge (rounding could pass it by an ulp), so sorted quantiles give sorted samples
    return torch.minimum(edge_below + fraction * (edge_above - edge_below), edge_above)


def merge_samples(t_a: Tensor, values_a: list[Tensor], t_b: Tensor, values_b: list[Tensor],
                  presorted: bool = False) -> tuple[Tensor, list[Tensor]]:
    """Merge two sample sets along each ray, sorted by ``t``, carrying per-sample values.

    Args:
        t_a: (..., Sa), t_b: (..., Sb) sample distances.
        values_a, values_b: matching lists of (..., Sa, D_k) / (..., Sb, D_k) tensors.
        presorted: both ``t_a`` and ``t_b`` are already sorted along each ray (eval-mode sampling):
            merge by rank instead of sorting. Each sample's place is its rank in its own set plus the
            number of the other set's samples before it (``searchsorted``; on a tie ``a`` first), one
            scatter per tensor: on a GPU cheaper than a sort of Sa + Sb keys, the same result (tied
            samples are the same point, so their values agree).
    Returns:
        t (..., Sa + Sb) sorted, and the values gathered into the same order.
    """
    if presorted:
        return _merge_sorted(t_a, values_a, t_b, values_b)
    t = torch.cat([t_a, t_b], dim=-1)
    t, order = torch.sort(t, dim=-1)
    merged = []
    for value_a, value_b in zip(values_a, values_b):
        value = torch.cat([value_a, value_b.to(value_a.dtype)], dim=-2)
        index = order.unsqueeze(-1).expand(*order.shape, value.shape[-1])
        merged.append(value.gather(-2, index))
    return t, merged


def _merge_sorted(t_a: Tensor, values_a: list[Tensor], t_b: Tensor, values_b: list[Tensor]) -> tuple[Tensor, list[Tensor]]:
    """:func:`merge_samples` of two sets each sorted along the last dim, by rank (no sort)."""
    t_b = t_b.to(t_a.dtype)
    batch_shape, count_a, count_b = t_a.shape[:-1], t_a.shape[-1], t_b.shape[-1]
    flat_a, flat_b = t_a.reshape(-1, count_a).contiguous(), t_b.reshape(-1, count_b).contiguous()
    place_a = torch.arange(count_a, device=t_a.device) + torch.searchsorted(flat_b, flat_a, right=False)
    place_b = torch.arange(count_b, device=t_a.device) + torch.searchsorted(flat_a, flat_b, right=True)
    place_a, place_b = place_a.reshape(t_a.shape), place_b.reshape(t_b.shape)
    t = t_a.new_empty(*batch_shape, count_a + count_b).scatter_(-1, place_a, t_a).scatter_(-1, place_b, t_b)
    merged = []
    for value_a, value_b in zip(values_a, values_b):
        channels = value_a.shape[-1]
        value = value_a.new_empty(*batch_shape, count_a + count_b, channels)
        value.scatter_(-2, place_a.unsqueeze(-1).expand(*place_a.shape, channels), value_a)
        value.scatter_(-2, place_b.unsqueeze(-1).expand(*place_b.shape, channels), value_b.to(value_a.dtype))
        merged.append(value)
    return t, merged
