"""Density of a field on a regular grid over a box: every point, or coarse-to-fine near a level set.

Grid convention (as :mod:`mira.export.mesh`): ``grid[i, j, k]`` is the density at world point
``box_min + (i, j, k) * (box_max - box_min) / (resolution - 1)``.

:func:`dense_density_grid` evaluates all ``resolution^3`` points. :func:`coarse_to_fine_density_grid`
evaluates a coarse grid (every ``block``-th point per axis, and the last), marks the blocks of
``block^3`` cells whose coarse corners straddle the level (and ``margin`` blocks around them), and
evaluates the fine points of marked blocks only; elsewhere the grid holds the trilinear interpolation
of the coarse grid, which stays on its block's side of the level. It then checks the fine grid: a
block left coarse that now has corners on both sides (the surface leaves the marked region there) is
marked and evaluated too, until none is. So every cell with corners on both sides of the level has
exact values at its corners, and marching cubes at that level gives the same triangles as on the
dense grid, for every surface component that meets a marked block; only a component that fits
between coarse points without touching a marked block (thinner than a block) can be missed. When the
coarse grid finds no surface at all, every point is evaluated (the dense grid, at the coarse grid's extra cost).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm.auto import tqdm

from mira.progress import bar_disabled
from mira.rendering.chunking import chunk_slices
from mira.rendering.marching_cubes import above_level, straddling_blocks

# (P, 3) world points -> (P,) densities.
DensityFunction = Callable[[Tensor], Tensor]
DEFAULT_CHUNK_SIZE = 262_144
# Cells per coarse block edge, and blocks of margin around those the coarse grid finds the surface in: 4 and 1
# evaluate 11 % of mira-demo's 256^3 grid (benchmarks/bench_mesh.py prints it); measured once beside them,
# 8 and 1: 15 % (1.5x slower), 4 and 0: 6 % (1.6x faster, but no margin).
DEFAULT_BLOCK = 4
DEFAULT_MARGIN = 1


def grid_points_for_indices(flat_indices: Tensor, resolution: int, box_min: Tensor, box_max: Tensor) -> Tensor:
    """World points (P, 3) of flat grid indices (P,) in C order over ``(x, y, z)``."""
    i = torch.div(flat_indices, resolution * resolution, rounding_mode="floor")
    j = torch.div(flat_indices, resolution, rounding_mode="floor") % resolution
    k = flat_indices % resolution
    ijk = torch.stack([i, j, k], dim=-1).to(box_min.dtype)
    return box_min + ijk * ((box_max - box_min) / (resolution - 1))


def evaluate_grid_points(
    density: DensityFunction, flat_indices: Tensor, resolution: int, box_min: Tensor, box_max: Tensor,
    chunk_size: int = DEFAULT_CHUNK_SIZE, progress: str | None = None,
) -> Tensor:
    """Density (P,) float32 at grid points given by flat indices (P,), ``chunk_size`` points per call.

    Args:
        progress: a progress-bar label, or None for no bar.
    """
    values = torch.empty(len(flat_indices), dtype=torch.float32, device=flat_indices.device)
    parts = list(chunk_slices(len(flat_indices), chunk_size))
    for part in tqdm(parts, desc=progress, disable=bar_disabled(progress is not None), leave=False):
        values[part] = density(grid_points_for_indices(flat_indices[part], resolution, box_min, box_max)).float()
    return values


def dense_density_grid(
    density: DensityFunction, resolution: int, box_min: Tensor, box_max: Tensor,
    chunk_size: int = DEFAULT_CHUNK_SIZE, progress: bool = False,
) -> Tensor:
    """Density on every point of the ``resolution^3`` grid: (R, R, R) float32 on ``box_min``'s device.

    Points are made chunk by chunk, so memory stays at the grid plus one chunk.
    """
    _check_resolution(resolution)
    total = resolution**3
    grid = torch.empty(total, dtype=torch.float32, device=box_min.device)
    parts = list(chunk_slices(total, chunk_size))
    for part in tqdm(parts, desc=f"density grid {resolution}^3", disable=bar_disabled(progress), leave=False):
        flat = torch.arange(part.start, part.stop, device=box_min.device)
        grid[part] = density(grid_points_for_indices(flat, resolution, box_min, box_max)).float()
    return grid.reshape(resolution, resolution, resolution)


@dataclass
class CoarseToFineGrid:
    """The result of :func:`coarse_to_fine_density_grid`.

    Attributes:
        density: (R, R, R) float32, exact where ``evaluated``, trilinear from the coarse grid elsewhere.
        evaluated: (R, R, R) bool, the points where the field was evaluated.
        marked: (N, N, N) bool, the blocks evaluated at full resolution (N = ceil((R - 1) / block)).
        rounds: fine evaluation rounds (1 when the coarse grid found every block the surface crosses).
    """

    density: Tensor
    evaluated: Tensor
    marked: Tensor
    rounds: int

    @property
    def evaluated_fraction(self) -> float:
        return float(self.evaluated.float().mean())


@torch.no_grad()
def coarse_to_fine_density_grid(
    density: DensityFunction, resolution: int, box_min: Tensor, box_max: Tensor, level: float,
    block: int = DEFAULT_BLOCK, margin: int = DEFAULT_MARGIN, chunk_size: int = DEFAULT_CHUNK_SIZE,
    progress: bool = False,
) -> CoarseToFineGrid:
    """The ``resolution^3`` density grid, evaluated at full resolution only near the ``level`` set.

    See the module docstring for what is exact.

    Args:
        density: the field, (P, 3) world points -> (P,) densities.
        resolution: grid points per axis (R).
        box_min, box_max: (3,) the box the grid spans (their device is the grid's).
        level: the iso-level the mesh will be extracted at (``> level`` is inside).
        block: cells per coarse block edge.
        margin: blocks around the coarse surface's blocks that are evaluated too.
        chunk_size: points per ``density`` call.
    Returns:
        :class:`CoarseToFineGrid`.
    """
    _check_resolution(resolution)
    if block < 1 or margin < 0:
        raise ValueError(f"coarse-to-fine needs block >= 1 and margin >= 0, got {block} and {margin}")
    device = box_min.device
    step = min(block, resolution - 1)
    coarse_index = coarse_indices(resolution, step, device)  # (N + 1,)
    num_blocks = len(coarse_index) - 1
    coarse_flat = _outer_flat(coarse_index, resolution)
    coarse = evaluate_grid_points(density, coarse_flat.reshape(-1), resolution, box_min, box_max, chunk_size,
                                  f"coarse grid {num_blocks + 1}^3" if progress else None).reshape(coarse_flat.shape)
    grid = upsample_coarse(coarse, coarse_index, resolution).reshape(-1)
    evaluated = torch.zeros(resolution**3, dtype=torch.bool, device=device)
    grid[coarse_flat.reshape(-1)] = coarse.reshape(-1)
    evaluated[coarse_flat.reshape(-1)] = True
    straddling = torch.zeros((num_blocks,) * 3, dtype=torch.bool, device=device)
    straddling[tuple(straddling_blocks(above_level(coarse, level), 1)[0].unbind(1))] = True
    if not bool(straddling.any()):  # no surface between coarse points: it may hide between them, look everywhere
        straddling.fill_(True)
    marked = dilate(straddling, margin)
    new = marked
    rounds = 0
    while bool(new.any()):
        rounds += 1
        todo = (block_points(new, step, resolution).reshape(-1) & ~evaluated).nonzero().squeeze(1)
        grid[todo] = evaluate_grid_points(density, todo, resolution, box_min, box_max, chunk_size,
                                          f"density grid {resolution}^3 (round {rounds})" if progress else None)
        evaluated[todo] = True
        fine = grid.reshape((resolution,) * 3)
        crossed = torch.zeros_like(marked)
        crossed[tuple(straddling_blocks(above_level(fine, level), step)[0].unbind(1))] = True
        new = crossed & ~marked
        marked = marked | new
    shape = (resolution,) * 3
    return CoarseToFineGrid(grid.reshape(shape), evaluated.reshape(shape), marked, rounds)


def coarse_indices(resolution: int, step: int, device: torch.device) -> Tensor:
    """Fine indices (N + 1,) of the coarse grid along an axis: 0, step, 2 step, ... and resolution - 1."""
    index = torch.arange(0, resolution - 1, step, device=device)
    return torch.cat([index, torch.tensor([resolution - 1], device=device)])


def upsample_coarse(coarse: Tensor, coarse_index: Tensor, resolution: int) -> Tensor:
    """Trilinear interpolation of a coarse grid (N + 1,)^3 at coarse indices (N + 1,) to (R, R, R)."""
    fine = torch.arange(resolution, device=coarse.device)
    cell = (torch.searchsorted(coarse_index, fine, right=True) - 1).clamp_(0, len(coarse_index) - 2)
    low, high = coarse_index[cell], coarse_index[cell + 1]
    weight = ((fine - low).float() / (high - low).float()).to(coarse.dtype)
    out = coarse
    for axis in range(3):
        shape = [1, 1, 1]
        shape[axis] = resolution
        w = weight.reshape(shape)
        out = out.index_select(axis, cell) * (1 - w) + out.index_select(axis, cell + 1) * w
    return out


def dilate(mask: Tensor, radius: int) -> Tensor:
    """(N, N, N) bool grown by ``radius`` cells in every direction (a cube)."""
    if radius == 0:
        return mask
    size = 2 * radius + 1
    return F.max_pool3d(mask.float()[None, None], size, stride=1, padding=radius)[0, 0] > 0


def block_points(blocks: Tensor, step: int, resolution: int) -> Tensor:
    """The grid points (R, R, R) bool of blocks (N, N, N) bool: block ``b`` spans points ``b * step ..
    min((b + 1) * step, R - 1)`` along each axis (its faces shared with the neighbours)."""
    cell_block = torch.arange(resolution - 1, device=blocks.device) // step  # the block of each cell
    cells = blocks.index_select(0, cell_block).index_select(1, cell_block).index_select(2, cell_block)
    points = cells
    for axis in range(3):  # a point is in a marked block if a cell below or above it along each axis is
        size = list(points.shape)
        size[axis] = 1
        pad = torch.zeros(size, dtype=torch.bool, device=blocks.device)
        points = torch.cat([points, pad], dim=axis) | torch.cat([pad, points], dim=axis)
    return points


def _outer_flat(index: Tensor, resolution: int) -> Tensor:
    """Flat grid indices (n, n, n) of the points ``(index[a], index[b], index[c])``."""
    return (index[:, None, None] * resolution + index[None, :, None]) * resolution + index[None, None, :]


def _check_resolution(resolution: int) -> None:
    """A grid needs at least two points per axis."""
    if resolution < 2:
        raise ValueError(f"mesh resolution must be at least 2, got {resolution}")
