"""``renderer.ray_marching = "normalized_midpoint"``: TripoSR's ray marching, written for MIRA.

Per ray (all distances along the given directions, world units):

1. Clip to the renderer's box shrunk by :data:`BOX_SHRINK` (0.1 %) by the slab method, near clamped at
   0; a direction component below :data:`PARALLEL_EPS` in magnitude is replaced by ``+PARALLEL_EPS``.
   A ray whose interval ``far - near`` is at most :data:`MIN_INTERVAL` is empty (renders the background).
2. ``S`` samples at the midpoints of ``S`` equal bins of ``[near, far]``: with ``u = linspace(0, 1, S + 1)``
   and ``m_i = (u_i + u_{i+1}) / 2``, ``t_i = near (1 - m_i) + far m_i``; no jitter, no importance samples.
3. Compositing with the step ``delta_i = u_{i+1} - u_i`` (= 1 / S): the ray's box interval counts as
   length 1 whatever its world length; ``alpha_i = 1 - exp(-sigma_i delta_i)``, transmittance
   ``T_i = prod_{j<i} (1 - alpha_j + 1e-10)``, weights ``w_i = alpha_i T_i``, colour
   ``sum w_i c_i + (1 - sum w_i) background``, depth ``sum w_i t_i / sum w_i`` (0 where empty).

Checked numerically against TripoSR's code by ``python -m mira.pretrained.verify`` (docs/PRETRAINED.md).
"""

from __future__ import annotations

import torch
from torch import Tensor

BOX_SHRINK = 1e-3
PARALLEL_EPS = 1e-6
MIN_INTERVAL = 0.01
TRANSMITTANCE_EPS = 1e-10


def intersect_shrunk_box(origins: Tensor, directions: Tensor, box_min: Tensor,
                         box_max: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Step 1 of the module docstring.

    Args:
        origins, directions: (..., 3).
        box_min, box_max: (3,) the renderer's box (shrunk here by ``BOX_SHRINK`` about the origin).
    Returns:
        near (..., 1), far (..., 1) (both 0 for empty rays), valid (..., 1) bool.
    """
    safe = torch.where(directions.abs() < PARALLEL_EPS, torch.full_like(directions, PARALLEL_EPS), directions)
    low = (1.0 - BOX_SHRINK) * box_min.to(origins)
    high = (1.0 - BOX_SHRINK) * box_max.to(origins)
    t_high, t_low = (high - origins) / safe, (low - origins) / safe
    near = torch.minimum(t_high, t_low).amax(dim=-1, keepdim=True).clamp_min(0.0)
    far = torch.maximum(t_high, t_low).amin(dim=-1, keepdim=True)
    valid = far - near > MIN_INTERVAL
    zero = torch.zeros_like(near)
    return torch.where(valid, near, zero), torch.where(valid, far, zero), valid


def midpoint_samples(near: Tensor, far: Tensor, num_samples: int) -> tuple[Tensor, Tensor]:
    """Step 2 and the steps of step 3.

    Args:
        near, far: (..., 1).
        num_samples: S.
    Returns:
        t (..., S) sample depths and deltas (S,) the normalised steps.
    """
    edges = torch.linspace(0, 1, num_samples + 1, device=near.device, dtype=near.dtype)
    middle = (edges[:-1] + edges[1:]) / 2
    return near * (1 - middle) + far * middle, edges[1:] - edges[:-1]


def composite_normalized(densities: Tensor, colors: Tensor, t: Tensor, deltas: Tensor, valid: Tensor,
                         background: Tensor) -> dict[str, Tensor]:
    """Step 3 of the module docstring.

    Args:
        densities: (..., S, 1) >= 0; colors: (..., S, 3); t: (..., S); deltas: (S,).
        valid: (..., 1) bool (empty rays get opacity 0); background: (3,) or (..., 3).
    Returns:
        {"rgb": (..., 3), "depth": (..., 1), "opacity": (..., 1), "weights": (..., S)}, in
        ``promote(t.dtype, float32)``.
    """
    dtype = torch.promote_types(t.dtype, torch.float32)
    alpha = 1 - torch.exp(-deltas.to(dtype) * densities[..., 0].to(dtype))
    passed = torch.cat([torch.ones_like(alpha[..., :1]), torch.cumprod(1 - alpha[..., :-1] + TRANSMITTANCE_EPS, dim=-1)],
                       dim=-1)
    weights = alpha * passed * valid.to(dtype)
    opacity = weights.sum(dim=-1, keepdim=True)
    rgb = (weights.unsqueeze(-1) * colors.to(dtype)).sum(dim=-2)
    rgb = rgb + (1 - opacity) * background.to(device=rgb.device, dtype=dtype)
    depth = (weights * t.to(dtype)).sum(dim=-1, keepdim=True)
    depth = torch.where(opacity > 0, depth / opacity.clamp_min(torch.finfo(dtype).tiny), torch.zeros_like(depth))
    return {"rgb": rgb, "depth": depth, "opacity": opacity, "weights": weights}
