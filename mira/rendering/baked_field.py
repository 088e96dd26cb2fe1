"""Bake a triplane field into a voxel grid, so that rendering many views costs lookups, not MLP passes.

A turntable video evaluates the field MLP at every sample of every ray of every frame (60 frames of
128² at 64 samples per ray: 63 M evaluations). The field is smooth at the scale of the triplane's
cells, so this module evaluates it once on a regular grid finer than the triplane (density logit and
colour at the grid's points) and renders from that grid by trilinear interpolation
(``torch.nn.functional.grid_sample``). Measured on the shipped mira-demo model on 2 CPU cores: a
96³ grid renders 128² frames about 7x faster than the exact field, with a PSNR of 55 dB against
the exact frames (57 dB at 128³); the bake itself costs a few seconds. It is how baking methods
for real-time NeRF viewing (e.g. SNeRG, PlenOctrees) trade a little accuracy for speed; MIRA bakes
the raw field outputs (logit and colour) and keeps the renderer's own sampling and compositing.

Only points in (or next to) an occupancy grid's occupied cells are evaluated when one is given;
the others hold an empty logit.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from mira.rendering.chunking import chunk_slices
from mira.rendering.occupancy import OccupancyGrid

DEFAULT_BAKE_RESOLUTION = 96
# Logit of unbaked (empty) grid points: softplus(-100) ~ 4e-44, and finite, so that interpolation
# towards it stays well defined (the eg3d marcher's -1e30 would swamp a neighbour's value).
EMPTY_BAKED_LOGIT = -100.0
POINTS_PER_CHUNK = 262_144


@dataclass
class BakedField:
    """A field's density logit and colour on a regular grid over the render box.

    Attributes:
        volume: (1, 4, G, G, G) channels (logit, r, g, b), indexed [z, y, x] as ``grid_sample`` reads it.
        box_min, box_max: (3,) the box the grid's corner points span (corners included).
    """

    volume: Tensor
    box_min: Tensor
    box_max: Tensor

    @property
    def resolution(self) -> int:
        return int(self.volume.shape[-1])

    @classmethod
    def from_renderer(cls, renderer, triplanes: Tensor, resolution: int = DEFAULT_BAKE_RESOLUTION,
                      occupancy: OccupancyGrid | None = None) -> "BakedField":
        """Evaluate ``renderer``'s field of one triplane (1, 3, C, R, R) at G³ grid points.

        Args:
            renderer: a :class:`mira.rendering.TriplaneRenderer` (``point_logits``, ``box_min``, ``box_max``).
            triplanes: (1, 3, C, R, R).
            resolution: grid points per axis (G >= 2).
            occupancy: if given, only points whose cell or a neighbouring cell is occupied are evaluated.
        """
        if triplanes.dim() != 5 or triplanes.shape[0] != 1:
            raise ValueError(f"BakedField takes one triplane (1, 3, C, R, R), got {tuple(triplanes.shape)}")
        if resolution < 2:
            raise ValueError(f"BakedField needs resolution >= 2, got {resolution}")
        device = triplanes.device
        box_min = renderer.box_min.to(device=device, dtype=torch.float32)
        box_max = renderer.box_max.to(device=device, dtype=torch.float32)
        steps = torch.linspace(0.0, 1.0, resolution, device=device)
        fractions = torch.stack(torch.meshgrid(steps, steps, steps, indexing="ij"), dim=-1).reshape(-1, 3)
        points = box_min + fractions * (box_max - box_min)  # (G³, 3), x slowest
        values = torch.full((points.shape[0], 4), 0.0, device=device)
        values[:, 0] = EMPTY_BAKED_LOGIT
        wanted = _near_occupied(occupancy, points) if occupancy is not None else None
        index = wanted.nonzero().squeeze(-1) if wanted is not None else None
        todo = points if index is None else points[index]
        for part in chunk_slices(todo.shape[0], POINTS_PER_CHUNK):
            logit, rgb = renderer.point_logits(triplanes, todo[None, part])
            rows = part if index is None else index[part]
            values[rows] = torch.cat([logit[0], rgb[0]], dim=-1).float()
        volume = values.reshape(resolution, resolution, resolution, 4).permute(3, 2, 1, 0)[None].contiguous()
        return cls(volume=volume, box_min=box_min, box_max=box_max)

    def point_logits(self, triplanes: Tensor, points: Tensor) -> tuple[Tensor, Tensor]:
        """Interpolated density logit (B, P, 1) and colour (B, P, 3) at world points (B, P, 3);
        ``triplanes`` is ignored (the grid was baked from one), so this stands in for the renderer's own."""
        extent = (self.box_max - self.box_min).to(points.dtype)
        unit = (points - self.box_min.to(points.dtype)) / extent * 2.0 - 1.0  # [-1, 1], x first
        volume = self.volume.to(points.dtype).expand(points.shape[0], -1, -1, -1, -1)
        sampled = F.grid_sample(volume, unit[:, :, None, None, :], mode="bilinear", padding_mode="border",
                                align_corners=True)  # (B, 4, P, 1, 1)
        sampled = sampled[:, :, :, 0, 0].permute(0, 2, 1)
        return sampled[..., :1], sampled[..., 1:]


def _near_occupied(occupancy: OccupancyGrid, points: Tensor) -> Tensor:
    """(P,) bool: points whose occupancy cell or one of its 26 neighbours is occupied (so that every
    grid point a sample in an occupied cell interpolates from is baked)."""
    grown = F.max_pool3d(occupancy.occupied.float()[None, None], 3, stride=1, padding=1)[0, 0] > 0
    return OccupancyGrid(occupied=grown, box_min=occupancy.box_min, box_max=occupancy.box_max).contains(points)


def renderer_with_baked_field(renderer, baked: BakedField):
    """A shallow copy of ``renderer`` (same sampling, compositing and weights) whose field is ``baked``."""
    clone = copy.copy(renderer)
    clone.point_logits = baked.point_logits
    return clone
