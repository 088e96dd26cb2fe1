"""Marching cubes in vectorised PyTorch (CPU and CUDA): the triangles PyMCubes makes, without a loop over cells.

:func:`marching_cubes` takes a (X, Y, Z) grid and a level and returns an indexed mesh in grid-index
coordinates, as ``mcubes.marching_cubes`` does: one vertex per grid edge the surface crosses (shared
by every triangle that uses it), triangles from the classic case table
(:mod:`mira.rendering.marching_cubes_table`), wound with normals pointing from values above the level
to values at or below it. Whole-grid tensor operations, then work on the surface's cells only:

1. blocks of ``block^3`` cells whose corners are not all on one side of the level (a separable max
   and min of the ``value > level`` bits) are the only ones that can hold triangles;
2. in those blocks, each cell's case (0..255) packs its 8 corners' ``value > level`` bits; the cells
   of cases other than 0 and 255 are the active ones;
3. each crossed grid edge is listed once, by the active cell that owns it (the cell whose corner
   (0, 0, 0) is the edge's lower end, or the last cell along an axis for edges on the grid's far
   faces), under the id ``axis * X * Y * Z + flat index of its lower end``; sorted, the ids number
   the vertices, which are linearly interpolated on their edges;
4. the active cells emit their table triangles, whose corners name edges by id; a binary search in
   the sorted ids turns them into vertex indices.

Same triangle set as PyMCubes up to the order of vertices and triangles (tests/test_marching_cubes.py
compares them on analytic and noise grids, values exactly at the level included). As in PyMCubes, the
level is rounded to float32 and compared with the values in float64, and the interpolation is in
float64, so vertices agree to float64 rounding. Blocks are processed ``blocks_per_chunk`` at a time
(:func:`mira.rendering.chunking.chunk_slices`), which bounds the memory on noise-like grids where
every block is active.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from mira.rendering.chunking import chunk_slices
from mira.rendering.marching_cubes_table import TRIANGLES

MAX_TRIANGLES_PER_CASE = 5
# Cells per block edge of the first pass: 8 keeps 1,760 of the 35,937 blocks (5 %) of a 258^3 grid holding a
# sphere of radius 0.3 box widths; the result does not depend on it.
DEFAULT_BLOCK = 8
DEFAULT_BLOCKS_PER_CHUNK = 8192
_TABLES: dict[torch.device, dict[str, Tensor]] = {}


def edge_offsets() -> Tensor:
    """(12, 3) int64 offset of each cell edge's lower end from the cell's corner (0, 0, 0): edge
    ``4 * axis + u + 2 * v`` starts at the corner whose offsets along the two other axes (x, y, z order)
    are ``(u, v)`` and runs along ``axis``."""
    offsets = torch.zeros(12, 3, dtype=torch.int64)
    for edge in range(12):
        axis, u, v = edge // 4, edge & 1, edge >> 1 & 1
        others = [d for d in range(3) if d != axis]
        offsets[edge, others[0]], offsets[edge, others[1]] = u, v
    return offsets


def case_tables(device: torch.device) -> dict[str, Tensor]:
    """The case table and edge geometry on ``device`` (cached).

    Returns:
        ``counts`` (256,) triangles per case; ``edges`` (256, 5, 3) the cell edges of each case's
        triangles (rows past the count are 0); ``offsets`` (12, 3) :func:`edge_offsets`; ``axes`` (12,);
        ``corner_bits`` (12, 2) the corner numbers ``dx + 2 dy + 4 dz`` of each edge's two ends. All int64.
    """
    device = torch.device(device)
    if device not in _TABLES:
        counts = torch.tensor([len(row) // 3 for row in TRIANGLES], dtype=torch.int64)
        edges = torch.zeros(256, MAX_TRIANGLES_PER_CASE, 3, dtype=torch.int64)
        for case, row in enumerate(TRIANGLES):
            if row:
                edges[case, : len(row) // 3] = torch.tensor(row).reshape(-1, 3)
        offsets = edge_offsets()
        axes = torch.arange(12) // 4
        corner_weights = torch.tensor([1, 2, 4])
        lower = offsets @ corner_weights
        corner_bits = torch.stack([lower, lower + corner_weights[axes]], dim=1)
        tables = {"counts": counts, "edges": edges, "offsets": offsets, "axes": axes, "corner_bits": corner_bits}
        _TABLES[device] = {name: table.to(device) for name, table in tables.items()}
    return _TABLES[device]


def cell_cases(above: Tensor) -> Tensor:
    """Case of every cell: (..., X, Y, Z) bool ``value > level`` -> (..., X-1, Y-1, Z-1) uint8, bit
    ``dx + 2 dy + 4 dz`` set when the corner at offset (dx, dy, dz) is above."""
    cases = above.to(torch.uint8)
    cases = cases[..., :-1, :, :] | (cases[..., 1:, :, :] << 1)
    cases = cases[..., :, :-1, :] | (cases[..., :, 1:, :] << 2)
    return cases[..., :, :, :-1] | (cases[..., :, :, 1:] << 4)


def comparable_level(level: float, dtype: torch.dtype) -> float:
    """The value ``c`` of ``dtype`` with ``value > c`` exactly when ``value > float32(level)`` compared in
    float64, for values of ``dtype`` (as PyMCubes compares: its level is a C float, its values doubles).

    For float32 and float64 grids that is ``float32(level)`` itself; for float16 the largest float16 at
    or below it (a tensor compared with a Python float would round the float to the tensor's dtype).
    """
    level = float(np.float32(level))
    if dtype in (torch.float32, torch.float64):
        return level
    if dtype != torch.float16:
        raise TypeError(f"marching cubes compares float16, float32 or float64 grids, got {dtype}")
    rounded = np.float16(level)
    if float(rounded) > level:  # round down: the largest float16 at or below the level
        rounded = np.nextafter(rounded, np.float16(-np.inf))
    return float(rounded)


def above_level(values: Tensor, level: float) -> Tensor:
    """``values > level`` (..., bool) with the level as PyMCubes takes it (:func:`comparable_level`)."""
    return values > comparable_level(level, values.dtype)


def straddling_blocks(above: Tensor, block: int) -> tuple[Tensor, list[int]]:
    """Blocks of cells whose corners are not all on one side of the level.

    Args:
        above: (X, Y, Z) bool, ``value > level``.
        block: cells per block edge (fewer along an axis shorter than that).
    Returns:
        (B, 3) int64 block indices (block ``b`` covers cells ``b * step .. (b + 1) * step - 1`` per axis,
        clipped to the grid) and the (3,) steps.
    """
    steps = [min(block, size - 1) for size in above.shape]
    any_above = any_below = above.view(torch.uint8)
    for axis, step in enumerate(steps):  # separable max / min over windows of step + 1 points, stride step
        any_above = _window_reduce(any_above, axis, step, torch.amax, torch.maximum)
        any_below = _window_reduce(any_below, axis, step, torch.amin, torch.minimum)
    return ((any_above == 1) & (any_below == 0)).nonzero(), steps


def _window_reduce(values: Tensor, axis: int, step: int, reduce, combine) -> Tensor:
    """Reduce windows of ``step + 1`` points every ``step`` along ``axis`` (the last one may be shorter):
    (..., n, ...) -> (..., ceil((n - 1) / step), ...), through contiguous reshapes (fast on every backend)."""
    size = values.shape[axis]
    full = (size - 1) // step  # windows with all step + 1 points inside
    shape = list(values.shape)
    shape[axis : axis + 1] = [full, step]
    body = reduce(values.narrow(axis, 0, full * step).reshape(shape), axis + 1)
    ends = values.index_select(axis, torch.arange(step, full * step + 1, step, device=values.device))
    reduced = combine(body, ends)
    if full * step < size - 1:  # the short last window
        tail = reduce(values.narrow(axis, full * step, size - full * step), axis, keepdim=True)
        reduced = torch.cat([reduced, tail], dim=axis)
    return reduced


def block_cells(volume: Tensor, level: float, blocks: Tensor, steps: list[int]) -> tuple[Tensor, Tensor]:
    """The active cells of some blocks.

    Args:
        volume: (X, Y, Z), contiguous; level: :func:`comparable_level` of the iso-level for its dtype.
        blocks: (B, 3) int64 block indices, ``steps`` (3,) cells per block edge (:func:`straddling_blocks`).
    Returns:
        cells (N, 3) int64 grid indices of the active cells' corner (0, 0, 0) and their cases (N,) int64.
    """
    device = volume.device
    flat = torch.zeros((len(blocks), 1, 1, 1), dtype=torch.int64, device=device)
    axis_indices = []
    for axis, (size, step, stride) in enumerate(zip(volume.shape, steps, volume.stride())):
        index = (blocks[:, axis : axis + 1] * step + torch.arange(step + 1, device=device)).clamp_(max=size - 1)
        axis_indices.append(index)  # (B, step + 1); the clamped repeats only make cells dropped below
        shape = [len(blocks), 1, 1, 1]
        shape[1 + axis] = step + 1
        flat = flat + (index * stride).reshape(shape)
    cases = cell_cases(volume.reshape(-1)[flat] > level)  # (B, s0, s1, s2)
    keep = (cases != 0) & (cases != 255)
    for axis, (size, step) in enumerate(zip(volume.shape, steps)):
        shape = [len(blocks), 1, 1, 1]
        shape[1 + axis] = step
        keep &= (axis_indices[axis][:, :step] < size - 1).reshape(shape)  # cells past the grid's end
    block, i, j, k = keep.nonzero().unbind(1)
    cells = torch.stack([axis_indices[0][block, i], axis_indices[1][block, j], axis_indices[2][block, k]], dim=1)
    return cells, cases[block, i, j, k].long()


def edge_deltas(shape: torch.Size, tables: dict[str, Tensor]) -> Tensor:
    """(12,) int64: the id of a cell's edge ``e`` minus the flat index of the cell's corner (0, 0, 0), on a
    grid of ``shape``; an edge's id is ``axis * X * Y * Z + flat index of its lower end``."""
    strides = torch.tensor([shape[1] * shape[2], shape[2], 1], device=tables["axes"].device)
    offsets = (tables["offsets"] * strides).sum(-1)  # not a matmul: CUDA has no integer matmul
    return tables["axes"] * (shape[0] * shape[1] * shape[2]) + offsets


def owned_edge_ids(cells: Tensor, cases: Tensor, shape: torch.Size, tables: dict[str, Tensor]) -> Tensor:
    """Ids (K,) of the crossed edges that active cells own: each crossed grid edge exactly once.

    A cell owns its edges from corner (0, 0, 0) (0, 4, 8) and, on the grid's last cell along an axis,
    also the edges on its far face along that axis.

    Args:
        cells: (N, 3) active cells' corners; cases: (N,) their cases; shape: the grid's (X, Y, Z).
    """
    bits = (cases[:, None, None] >> tables["corner_bits"]) & 1  # (N, 12, 2)
    crossed = bits[..., 0] != bits[..., 1]
    last = torch.tensor([size - 2 for size in shape], device=cells.device)
    owned = ((tables["offsets"] == 0) | (cells[:, None, :] == last)).all(dim=-1)  # (N, 12)
    cell, edge = (crossed & owned).nonzero().unbind(1)
    return _corner_index(cells, shape)[cell] + edge_deltas(shape, tables)[edge]


def triangle_edge_ids(cells: Tensor, cases: Tensor, shape: torch.Size, tables: dict[str, Tensor]) -> Tensor:
    """(F, 3) edge ids of the triangles of active cells (N, 3) of cases (N,), cell by cell in table order."""
    valid = torch.arange(MAX_TRIANGLES_PER_CASE, device=cells.device) < tables["counts"][cases][:, None]  # (N, 5)
    ids = _corner_index(cells, shape)[:, None, None] + edge_deltas(shape, tables)[tables["edges"][cases]]
    return ids[valid]


def _corner_index(cells: Tensor, shape: torch.Size) -> Tensor:
    """Flat grid index (N,) of cells' corners (N, 3)."""
    return (cells[:, 0] * shape[1] + cells[:, 1]) * shape[2] + cells[:, 2]


def edge_vertices(volume: Tensor, level: float, edge_ids: Tensor) -> Tensor:
    """Vertices (E, 3) float64 (grid-index coordinates) where the level crosses edges of ids (E,):
    ``lower end + (level - v0) / (v1 - v0)`` along the edge's axis."""
    num_points = volume.numel()
    axis = torch.div(edge_ids, num_points, rounding_mode="floor")
    lower = edge_ids - axis * num_points
    strides = torch.tensor(volume.stride(), device=volume.device)
    values = volume.reshape(-1)
    v0 = values[lower].double()
    v1 = values[lower + strides[axis]].double()
    coordinates = []
    remainder = lower
    for stride in strides.tolist():
        coordinates.append(torch.div(remainder, stride, rounding_mode="floor"))
        remainder = remainder - coordinates[-1] * stride
    vertices = torch.stack(coordinates, dim=1).double()
    vertices[torch.arange(len(edge_ids), device=volume.device), axis] += (level - v0) / (v1 - v0)
    return vertices


@torch.no_grad()
def marching_cubes(
    volume: Tensor, level: float, block: int = DEFAULT_BLOCK, blocks_per_chunk: int = DEFAULT_BLOCKS_PER_CHUNK
) -> tuple[Tensor, Tensor]:
    """Isosurface ``volume == level`` of a grid, as ``mcubes.marching_cubes(volume, level)``.

    Args:
        volume: (X, Y, Z) real values (any float dtype; CPU or CUDA), every side >= 2.
        level: the iso-level, rounded to float32 as PyMCubes does; values above it are inside, values
            at or below it outside.
        block: cells per block edge of the coarse pass (the result does not depend on it).
        blocks_per_chunk: blocks processed at once (memory bound; the result does not depend on it).
    Returns:
        vertices (V, 3) float64 in grid-index coordinates (``[i, j, k]`` at the grid point ``volume[i, j, k]``),
        one per crossed grid edge; faces (F, 3) int64 indices into vertices, normals (right-handed
        ``(b - a) x (c - a)``) pointing from the side above the level to the other. On ``volume``'s device.
    """
    if volume.dim() != 3 or min(volume.shape) < 2:
        raise ValueError(f"marching_cubes takes a (X, Y, Z) grid with every side >= 2, got {tuple(volume.shape)}")
    if block < 1 or blocks_per_chunk < 1:
        raise ValueError(f"marching_cubes needs block >= 1 and blocks_per_chunk >= 1, got {block} and {blocks_per_chunk}")
    if volume.dtype not in (torch.float16, torch.float32, torch.float64):
        volume = volume.float() if volume.dtype == torch.bfloat16 else volume.double()
    volume = volume.contiguous()
    compare_at = comparable_level(level, volume.dtype)
    level = float(np.float32(level))  # PyMCubes takes the level as a C float
    tables = case_tables(volume.device)
    blocks, steps = straddling_blocks(volume > compare_at, block)
    vertex_ids, triangle_ids = [], []
    for part in chunk_slices(len(blocks), blocks_per_chunk):
        cells, cases = block_cells(volume, compare_at, blocks[part], steps)
        vertex_ids.append(owned_edge_ids(cells, cases, volume.shape, tables))
        triangle_ids.append(triangle_edge_ids(cells, cases, volume.shape, tables))
    if not vertex_ids:
        empty = torch.empty(0, 3, device=volume.device)
        return empty.double(), empty.long()
    edge_ids = torch.sort(torch.cat(vertex_ids)).values
    faces = torch.searchsorted(edge_ids, torch.cat(triangle_ids))
    return edge_vertices(volume, level, edge_ids), faces


def triangle_set_difference(
    reference: tuple[np.ndarray, np.ndarray], mesh: tuple[np.ndarray, np.ndarray], atol: float = 1e-5
) -> str | None:
    """How two marching-cubes meshes differ, or None when they have the same triangles.

    Same means: as many vertices and faces, every vertex of ``mesh`` within ``atol`` of a vertex of
    ``reference``, and, once each is snapped to its nearest reference vertex, the same oriented triangles
    as position triples (a multiset; order and vertex numbering free). Positions rather than indices,
    because meshes clamped onto a box put several vertices at one point. Vectorised (numpy, a k-d tree).

    Args:
        reference, mesh: vertices (V, 3) and faces (F, 3) each.
    """
    from scipy.spatial import cKDTree

    (v_ref, f_ref), (v, f) = reference, mesh
    if v.shape != v_ref.shape or f.shape != f_ref.shape:
        return f"{len(v):,} vs {len(v_ref):,} vertices, {len(f):,} vs {len(f_ref):,} faces"
    if len(v) == 0:
        return None
    distance, nearest = cKDTree(v_ref).query(v)
    if distance.max() > atol:
        return f"vertices up to {distance.max():.2g} from the reference's"
    _, position_id = np.unique(np.asarray(v_ref), axis=0, return_inverse=True)  # ids in position order
    position_id = position_id.reshape(-1)
    if not np.array_equal(_sorted_triangles(position_id[f_ref]), _sorted_triangles(position_id[nearest][f])):
        return "different triangles"
    return None


def _sorted_triangles(faces: np.ndarray) -> np.ndarray:
    """Triangles (F, 3) of position ids, each rotated to start at its smallest id (orientation kept),
    rows sorted: a canonical form of the multiset of oriented triangles."""
    faces = np.asarray(faces, dtype=np.int64)
    start = faces.argmin(axis=1)
    rows = np.arange(len(faces))
    rotated = np.stack([faces[rows, (start + k) % 3] for k in range(3)], axis=1)
    return rotated[np.lexsort(rotated.T[::-1])]
