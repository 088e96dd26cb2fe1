"""``renderer.ray_marching = "eg3d"``: EG3D's importance renderer, as OpenLRM (v1.1) renders its triplanes.

It differs from MIRA's own scheme (:mod:`mira.rendering.ray_sampler`, :mod:`mira.rendering.compositing`)
in where samples go and what an interval's density is; a checkpoint trained with it renders
correctly only with it. Per ray, with ``S`` coarse and ``F`` fine samples:

1. Coarse samples at ``linspace(near, far, S)``, both ends included (:func:`linspace_samples`);
   in training each is moved forward by ``U(0, 1) * (far - near) / (S - 1)``. ``near`` and ``far``
   come from :func:`intersect_box_reciprocal`: the first and last samples lie *on* the box surface,
   so whether they count as inside depends on the last bit of ``near`` / ``far``, and the slab test
   is computed exactly as EG3D computes it (times the reciprocal direction, no clamp at 0).
2. The field is evaluated at every sample; samples outside the box are empty (density logit
   :data:`EMPTY_LOGIT`, colour 0).
3. Compositing (:func:`composite_intervals`) runs over the ``S - 1`` intervals between consecutive
   samples: an interval's density is the activation of the *mean of its two end samples' logits*
   (``softplus(mean + density_bias)``), its colour the mean of their colours, its length the
   distance between them (world units), its depth their midpoint; ``alpha = 1 - exp(-sigma delta)``,
   transmittance ``prod (1 - alpha + 1e-10)``.
4. Fine samples (:func:`smoothed_importance_samples`): the coarse interval weights are smoothed
   (max-pool of width 2, then mean of width 2, + 0.01), the inner ones form a pdf over the
   intervals between the coarse interval midpoints, and ``F`` inverse-CDF samples are drawn at
   ``linspace(0, 1, F)`` (eval) or uniformly at random (training).
5. Coarse and fine samples are merged, sorted, and composited again as in 3.

Written for MIRA from the description of the algorithm (EG3D, Chan et al. 2022; OpenLRM's
``MipRayMarcher2`` and ``ImportanceRenderer``); checked numerically against OpenLRM's code by
``python -m mira.pretrained.verify``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from mira.rendering.compositing import cumsum_along_rays

# Density logit of a sample outside the box: its intervals get density softplus(-huge) = 0 exactly.
EMPTY_LOGIT = -1e30
# Added to the smoothed coarse weights, and to the pdf weights (EG3D's constants).
WEIGHT_FLOOR = 0.01
PDF_EPS = 1e-5
# Keeps 1 - alpha > 0 in the transmittance product.
TRANSMITTANCE_EPS = 1e-10


def intersect_box_reciprocal(origins: Tensor, directions: Tensor, box_min: Tensor,
                             box_max: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Ray / box slab test with ``t = (bound - origin) * (1 / direction)`` (EG3D's arithmetic).

    Args:
        origins, directions: (..., 3).
        box_min, box_max: (3,).
    Returns:
        near (..., 1), far (..., 1), hit (..., 1) bool (``far > near``); rays that miss get
        ``near = far = 0`` (all their samples lie outside the box, so they render the background).
    """
    inverse = 1 / directions
    t_a = (box_min.to(origins) - origins) * inverse
    t_b = (box_max.to(origins) - origins) * inverse
    near = torch.minimum(t_a, t_b).amax(dim=-1, keepdim=True)
    far = torch.maximum(t_a, t_b).amin(dim=-1, keepdim=True)
    hit = far > near
    zero = torch.zeros_like(near)
    return torch.where(hit, near, zero), torch.where(hit, far, zero), hit


def linspace_samples(near: Tensor, far: Tensor, num_samples: int, jitter: bool) -> Tensor:
    """``num_samples`` depths from ``near`` to ``far`` inclusive, optionally jittered forward.

    Args:
        near, far: (..., 1).
        num_samples: S >= 2.
        jitter: add ``U(0, 1) * (far - near) / (S - 1)`` to each sample (training).
    Returns:
        t (..., S).
    """
    steps = torch.arange(num_samples, dtype=near.dtype, device=near.device) / (num_samples - 1)
    t = near + steps * (far - near)
    if jitter:
        t = t + torch.rand_like(t) * (far - near) / (num_samples - 1)
    return t


def composite_intervals(logits: Tensor, colors: Tensor, t: Tensor, background: Tensor,
                        activate_density) -> dict[str, Tensor]:
    """Composite the intervals between consecutive samples (step 3 of the module docstring).

    Args:
        logits: (..., S, 1) density logits (before activation).
        colors: (..., S, 3).
        t: (..., S) sorted sample depths (world units along unit rays).
        background: (3,) or per ray (..., 3).
        activate_density: logit -> density (the field's ``activate_density``).
    Returns:
        {"rgb": (..., 3), "depth": (..., 1) (0 where nothing is hit), "opacity": (..., 1),
        "weights": (..., S - 1)}, in ``promote(t.dtype, float32)``.
    """
    dtype = torch.promote_types(t.dtype, torch.float32)
    t = t.to(dtype)
    deltas = t[..., 1:] - t[..., :-1]
    mid_logits = (logits[..., :-1, 0].to(dtype) + logits[..., 1:, 0].to(dtype)) / 2
    mid_colors = (colors[..., :-1, :].to(dtype) + colors[..., 1:, :].to(dtype)) / 2
    mid_depths = (t[..., :-1] + t[..., 1:]) / 2
    alpha = 1 - torch.exp(-activate_density(mid_logits) * deltas)
    passed = torch.cat([torch.ones_like(alpha[..., :1]), 1 - alpha + TRANSMITTANCE_EPS], dim=-1)
    weights = alpha * torch.cumprod(passed, dim=-1)[..., :-1]
    opacity = weights.sum(dim=-1, keepdim=True)
    rgb = (weights.unsqueeze(-1) * mid_colors).sum(dim=-2)
    rgb = rgb + background.to(device=rgb.device, dtype=dtype) * (1 - opacity)
    depth = (weights * mid_depths).sum(dim=-1, keepdim=True)
    depth = torch.where(opacity > 0, depth / opacity.clamp_min(torch.finfo(dtype).tiny), torch.zeros_like(depth))
    return {"rgb": rgb, "depth": depth, "opacity": opacity, "weights": weights}


def smoothed_importance_samples(t: Tensor, weights: Tensor, num_samples: int, deterministic: bool) -> Tensor:
    """Fine samples from the coarse interval weights (step 4 of the module docstring).

    Args:
        t: (..., S) coarse sample depths, S >= 4.
        weights: (..., S - 1) their interval weights (:func:`composite_intervals`).
        num_samples: F.
        deterministic: quantiles ``linspace(0, 1, F)`` instead of uniform random numbers.
    Returns:
        t_fine (..., F), detached.
    """
    with torch.no_grad():
        batch_shape, coarse = t.shape[:-1], t.shape[-1]
        flat_t = t.reshape(-1, coarse).float()
        flat_w = weights.reshape(-1, coarse - 1).float().unsqueeze(1)
        smoothed = F.avg_pool1d(F.max_pool1d(flat_w, 2, 1, padding=1), 2, 1).squeeze(1) + WEIGHT_FLOOR
        bins = 0.5 * (flat_t[:, :-1] + flat_t[:, 1:])  # (R, S - 1) interval midpoints
        pdf_weights = smoothed[:, 1:-1] + PDF_EPS  # (R, S - 3): the intervals between the midpoints
        pdf = pdf_weights / pdf_weights.sum(dim=-1, keepdim=True)
        cdf = torch.cat([torch.zeros_like(pdf[:, :1]), cumsum_along_rays(pdf)], dim=-1)  # (R, S - 2)
        rays, last = pdf.shape
        if deterministic:
            u = torch.linspace(0, 1, num_samples, device=t.device).expand(rays, num_samples).contiguous()
        else:
            u = torch.rand(rays, num_samples, device=t.device)
        index = torch.searchsorted(cdf, u, right=True)
        below, above = (index - 1).clamp_min(0), index.clamp_max(last)
        cdf_below, cdf_above = cdf.gather(1, below), cdf.gather(1, above)
        bin_below, bin_above = bins.gather(1, below), bins.gather(1, above)
        span = cdf_above - cdf_below
        span = torch.where(span < PDF_EPS, torch.ones_like(span), span)
        samples = bin_below + (u - cdf_below) / span * (bin_above - bin_below)
        return samples.to(t.dtype).reshape(*batch_shape, num_samples)
