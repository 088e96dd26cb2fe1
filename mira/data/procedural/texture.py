"""Procedural two-colour textures of the parts, evaluated in the normalised world frame.

Each part mixes its two colours ``a`` and ``b`` with a weight ``m(x)`` in [0, 1]:

* ``solid``: ``m = 0``.
* ``stripes``: a square wave of ``period`` along the texture frame's Z axis.
* ``checker``: a 3-D checker of cell ``period / 2`` in the texture frame.
* ``noise``: a sum of :data:`NOISE_WAVES` random plane waves (smooth blotches).
* ``gradient``: a linear ramp along the texture frame's Z axis across the part.

Periods are in normalised world units and at least :data:`MIN_TEXTURE_PERIOD`, so that the
vertex colours of a ~192^3 marching-cubes mesh (cells of ~0.01) carry every pattern; pattern
edges are ramps :data:`EDGE_WIDTH` wide (about one such cell), which is also how Blender's
interpolated vertex colours draw them.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

TEXTURES = ("solid", "stripes", "checker", "noise", "gradient")
SOLID, STRIPES, CHECKER, NOISE, GRADIENT = range(len(TEXTURES))
MIN_TEXTURE_PERIOD = 0.15
MAX_TEXTURE_PERIOD = 0.45
NOISE_WAVES = 3
MIN_NOISE_WAVELENGTH, MAX_NOISE_WAVELENGTH = 0.25, 0.8
# Width (normalised world units) of the ramp between the two colours of stripes and checkers.
EDGE_WIDTH = 0.012
# How far the noise sum (in [-1, 1]) is stretched before clipping: > 1 gives flatter blotches.
NOISE_CONTRAST = 1.5


def _square_wave(wave: Tensor, period: Tensor) -> Tensor:
    """0/1 square wave from ``wave = sin(2 pi u)`` with a ramp of :data:`EDGE_WIDTH` world units."""
    return (0.5 + wave * period / (2.0 * math.pi * EDGE_WIDTH)).clamp(0.0, 1.0)


def texture_weight(local: Tensor, texture: Tensor, period: Tensor, phase: Tensor, waves: Tensor,
                   extent: Tensor) -> Tensor:
    """Weight of colour ``b`` of every part at every point.

    Args:
        local: (B, N, P, 3) points in each part's texture frame (normalised units, origin at the
            part's centre).
        texture: (B, P) long, index into :data:`TEXTURES`.
        period: (B, P) pattern period (normalised units).
        phase: (B, P, 3) pattern offsets in periods.
        waves: (B, P, NOISE_WAVES, 4) noise wave vectors (cycles per unit, 3) and phases (1).
        extent: (B, P) the part's bounding radius (normalised units), for gradients.
    Returns:
        (B, N, P) weights in [0, 1].
    """
    period_ = period[:, None]
    u = local / period_[..., None] + phase[:, None]  # (B, N, P, 3) in periods
    sines = torch.sin(2.0 * math.pi * u)
    stripes = _square_wave(sines[..., 2], period_)
    checker = _square_wave(sines[..., 0] * sines[..., 1] * sines[..., 2], period_)
    vectors, offsets = waves[:, None, ..., :3], waves[:, None, ..., 3]  # (B, 1, P, W, 3), (B, 1, P, W)
    argument = (local[..., None, 0] * vectors[..., 0] + local[..., None, 1] * vectors[..., 1]
                + local[..., None, 2] * vectors[..., 2] + offsets)
    noise = (0.5 + 0.5 * NOISE_CONTRAST * torch.sin(2.0 * math.pi * argument).mean(-1)).clamp(0.0, 1.0)
    gradient = (0.5 + local[..., 2] / (2.0 * extent[:, None])).clamp(0.0, 1.0)
    kind = texture[:, None]
    weight = torch.zeros_like(stripes)
    weight = torch.where(kind == STRIPES, stripes, weight)
    weight = torch.where(kind == CHECKER, checker, weight)
    weight = torch.where(kind == NOISE, noise, weight)
    return torch.where(kind == GRADIENT, gradient, weight)
