"""Coloured triangle mesh from a triplane's density field.

1. :func:`density_grid` evaluates the density on a ``resolution^3`` grid whose points span the
   renderer's box *exactly* (corner points included), chunk by chunk through ``renderer.query``:
   from 64^3 up coarse-to-fine (:func:`mira.rendering.density_grid.coarse_to_fine_density_grid`:
   a coarse grid, then full resolution only in the blocks the surface crosses, the same mesh as the
   dense grid on smooth fields), below that every point (:func:`query_density_grid`).
2. :func:`marching_cubes_world` pads the grid with one empty layer (so every surface is
   closed, also where the object touches the box) and runs marching cubes at the density
   threshold: MIRA's vectorised PyTorch implementation (:mod:`mira.rendering.marching_cubes`, on
   the grid's device) or PyMCubes, which give the same triangles; vertices come back in grid-index
   coordinates and :func:`grid_index_to_world` maps them to the world frame. Faces are wound so
   their normals point out of the object (positive signed volume).
3. Optional clean-up: keep the largest connected component; quadric simplification or
   Instant Meshes remeshing (triangles or quads).
4. :func:`query_vertex_colors` reads the colour field at the final vertices.

Grid convention: ``density[i, j, k]`` is the density at world point
``box_min + (i, j, k) * (box_max - box_min) / (resolution - 1)``.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
import trimesh
from PIL import Image
from torch import Tensor

from mira.atomic import atomic_output, write_bytes_atomic, write_text_atomic
from mira.export.gltf import glb_bytes
from mira.rendering.chunking import chunked
from mira.rendering.field import QueryableField, is_queryable_field
from mira.rendering.density_grid import (
    DensityFunction,
    coarse_to_fine_density_grid,
    dense_density_grid,
    grid_points_for_indices,
)
from mira.rendering.marching_cubes import marching_cubes as torch_marching_cubes

# OpenLRM's mesh threshold on the raw density (sigma, per world unit). With ~100 samples
# across a 2-unit box (delta ~ 0.02), sigma = 10 is an opacity of ~0.2 per sample: the
# visible surface lies at or just inside it.
DEFAULT_DENSITY_THRESHOLD = 10.0
# Points per renderer.query call (density grid and vertex colours).
DEFAULT_QUERY_CHUNK_SIZE = 262_144
# Marching-cubes implementations (the same triangles): MIRA's PyTorch one (mira/rendering/marching_cubes.py,
# CPU and CUDA) and PyMCubes (CPU).
MARCHING_CUBES_METHODS = ("torch", "pymcubes")
DEFAULT_MARCHING_CUBES = "torch"
# extract_mesh evaluates the density coarse-to-fine from this resolution up (below it the dense grid costs little).
COARSE_TO_FINE_MIN_RESOLUTION = 64
MESH_FORMATS = ("ply", "obj", "glb")
# glTF's frame from MIRA's canonical world (+Z up, the input camera on +X, image right = +Y):
# (x, y, z) -> (y, z, x). +Z up becomes +Y up, and the side the input image shows faces +Z, glTF's
# "front" (a viewer's default camera on +Z sees the input view, image right = +X). A rotation
# (a cyclic permutation, det +1). Blender's glTF and OBJ importers turn this into Blender's +Z up
# with the input view as the Front view (numpad 1).
MIRA_TO_Y_UP = np.array(
    [[0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0], [1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0]]
)
# The frame each file format is written in (docs/EXPORT.md).
FORMAT_FRAMES = {
    "ply": "MIRA world: +Z up, the input view looks along -X",
    "obj": "+Y up, the input view's side faces +Z (MIRA (x, y, z) -> (y, z, x))",
    "glb": "glTF: +Y up, the input view's side faces +Z (MIRA (x, y, z) -> (y, z, x))",
}


class MeshExtractionError(RuntimeError):
    """The density field has no surface at the requested threshold, or a clean-up step failed."""


# ---------------------------------------------------------------------- grid geometry
def renderer_box(renderer: QueryableField) -> tuple[np.ndarray, np.ndarray]:
    """The (3,) ``box_min`` and ``box_max`` the field spans (world units), as float64 arrays."""
    if not is_queryable_field(renderer):
        raise TypeError(
            f"{type(renderer).__name__} is not a queryable field (mira.rendering.field.QueryableField: box_min, "
            "box_max and query(triplanes, points)); pass a TriplaneRenderer, or box_min= and box_max= to extract_mesh"
        )
    return tuple(np.asarray(value.detach().cpu().numpy() if isinstance(value, Tensor) else value, dtype=np.float64)
                 for value in (renderer.box_min, renderer.box_max))


def grid_spacing(resolution: int, box_min: np.ndarray, box_max: np.ndarray) -> np.ndarray:
    """(3,) distance between neighbouring grid points along x, y, z."""
    return (np.asarray(box_max, dtype=np.float64) - np.asarray(box_min, dtype=np.float64)) / (resolution - 1)


def grid_index_to_world(indices: np.ndarray | Tensor, resolution: int, box_min: np.ndarray,
                        box_max: np.ndarray) -> np.ndarray | Tensor:
    """Continuous grid indices (V, 3) (axis 0 = x, 1 = y, 2 = z) -> world points (V, 3), float64; a tensor
    stays a tensor on its device (the same operations).

    Index 0 is ``box_min`` and index ``resolution - 1`` is ``box_max`` on every axis.
    """
    low, spacing = np.asarray(box_min, dtype=np.float64), grid_spacing(resolution, box_min, box_max)
    if isinstance(indices, Tensor):
        low, spacing = (torch.as_tensor(value, device=indices.device) for value in (low, spacing))
        return low + indices.double() * spacing
    return low + np.asarray(indices, dtype=np.float64) * spacing


# ---------------------------------------------------------------------- field queries
def density_function(renderer: QueryableField, triplanes: Tensor) -> DensityFunction:
    """The density field of one triplane (1, 3, C, R, R): world points (P, 3) -> (P,) float32."""
    return lambda points: renderer.query(triplanes, points[None])["density"][0, :, 0].float()


@torch.no_grad()
def query_density_grid(
    renderer: QueryableField,
    triplanes: Tensor,
    resolution: int,
    box_min: np.ndarray,
    box_max: np.ndarray,
    chunk_size: int = DEFAULT_QUERY_CHUNK_SIZE,
    progress: bool = False,
) -> np.ndarray:
    """Density on every point of the ``resolution^3`` grid over the box.

    Args:
        renderer: has ``query(triplanes (1, 3, C, R, R), points (1, P, 3)) -> {"density": (1, P, 1)}``.
        triplanes: (1, 3, C, R, R).
    Returns:
        float32 array (resolution, resolution, resolution), ``[i, j, k]`` at x_i, y_j, z_k.
    """
    lo, hi = _box_tensors(box_min, box_max, triplanes.device)
    grid = dense_density_grid(density_function(renderer, triplanes), resolution, lo, hi, chunk_size, progress)
    return grid.cpu().numpy()


@torch.no_grad()
def density_grid(
    renderer: QueryableField,
    triplanes: Tensor,
    resolution: int,
    box_min: np.ndarray,
    box_max: np.ndarray,
    level: float,
    coarse_to_fine: bool | None = None,
    chunk_size: int = DEFAULT_QUERY_CHUNK_SIZE,
    progress: bool = False,
) -> Tensor:
    """The density grid marching cubes needs at ``level``: (R, R, R) float32 on the triplanes' device.

    Args:
        coarse_to_fine: evaluate coarse-to-fine (:func:`mira.rendering.density_grid.coarse_to_fine_density_grid`:
            exact in every cell the ``level`` surface crosses, interpolated elsewhere) rather than every
            point; None: from :data:`COARSE_TO_FINE_MIN_RESOLUTION` up.
    """
    lo, hi = _box_tensors(box_min, box_max, triplanes.device)
    field = density_function(renderer, triplanes)
    if coarse_to_fine is None:
        coarse_to_fine = resolution >= COARSE_TO_FINE_MIN_RESOLUTION
    if coarse_to_fine:
        return coarse_to_fine_density_grid(field, resolution, lo, hi, level, chunk_size=chunk_size,
                                           progress=progress).density
    return dense_density_grid(field, resolution, lo, hi, chunk_size, progress)


@torch.no_grad()
def query_vertex_colors(
    renderer: QueryableField, triplanes: Tensor, vertices: np.ndarray, chunk_size: int = DEFAULT_QUERY_CHUNK_SIZE
) -> np.ndarray:
    """Colour field at world points (V, 3) -> RGBA uint8 (V, 4) (alpha 255)."""
    colors = np.empty((len(vertices), 4), dtype=np.uint8)
    colors[:, 3] = 255
    points = torch.as_tensor(vertices, dtype=torch.float32, device=triplanes.device)
    rgb = chunked(lambda part: renderer.query(triplanes, part[None])["rgb"][0], points, chunk_size=chunk_size)
    colors[:, :3] = (rgb.float().clamp(0, 1) * 255).round().byte().cpu().numpy()
    return colors


def _box_tensors(box_min: np.ndarray, box_max: np.ndarray, device: torch.device) -> tuple[Tensor, Tensor]:
    """(3,) float32 tensors of the box on ``device``."""
    as_tensor = lambda value: torch.as_tensor(np.asarray(value), dtype=torch.float32, device=device)  # noqa: E731
    return as_tensor(box_min), as_tensor(box_max)


# ---------------------------------------------------------------------- surface
def marching_cubes_world(
    density: np.ndarray | Tensor,
    threshold: float,
    box_min: np.ndarray,
    box_max: np.ndarray,
    method: str = DEFAULT_MARCHING_CUBES,
) -> tuple[np.ndarray, np.ndarray]:
    """Closed isosurface ``density == threshold`` of a grid, in world coordinates.

    The grid is padded by one empty layer so surfaces touching the box are closed; the
    closing caps are clamped onto the box faces.

    Args:
        density: (R, R, R) array or tensor, see the module docstring for the grid convention.
        threshold: positive density level.
        method: ``"torch"`` (:func:`mira.rendering.marching_cubes.marching_cubes`, on a tensor's device)
            or ``"pymcubes"`` (CPU); both give the same triangles.
    Returns:
        vertices (V, 3) float64 world points and faces (F, 3) int64, normals pointing outward
        (from high to low density).
    """
    if method not in MARCHING_CUBES_METHODS:
        raise ValueError(f"marching cubes method must be one of {MARCHING_CUBES_METHODS}, got {method!r}")
    if threshold <= 0:
        raise ValueError(f"density threshold must be positive (density is >= 0), got {threshold}")
    resolution = density.shape[0]
    max_density = float(density.max())
    if max_density <= threshold:
        raise MeshExtractionError(
            f"no surface: the density never exceeds the threshold {threshold:g} on the {resolution}^3 grid "
            f"(max density {max_density:.4g}). Lower --density_threshold, or check the checkpoint "
            "(an untrained model has no surface)."
        )
    if method == "torch":
        grid = torch.as_tensor(density)
        vertices, faces = torch_marching_cubes(F.pad(grid, (1, 1, 1, 1, 1, 1), value=0.0), float(threshold))
    else:
        import mcubes

        grid = density.cpu().numpy() if isinstance(density, Tensor) else density
        vertices, faces = mcubes.marching_cubes(np.pad(grid, 1, mode="constant", constant_values=0.0), float(threshold))
        vertices, faces = torch.from_numpy(vertices), torch.from_numpy(np.asarray(faces, dtype=np.int64))
    # grid -> world, clipped to the box, wound outward, where the mesh lies (on a GPU for the torch method:
    # host numpy took ~30 ms of a 256^3 mesh)
    low, high = (torch.as_tensor(np.asarray(value, dtype=np.float64), device=vertices.device) for value in (box_min, box_max))
    vertices = grid_index_to_world(vertices.double() - 1.0, resolution, box_min, box_max).clamp(low, high)
    faces = faces.long()
    if _signed_volume(vertices, faces) < 0:  # make the winding outward whatever the library's convention
        faces = faces.flip(1)
    return vertices.cpu().numpy(), faces.cpu().numpy()


def fill_enclosed_cavities(density: np.ndarray, density_threshold: float) -> np.ndarray:
    """Raise the density of closed cavities (empty voxels not connected to the grid's border) to the surface.

    The inside of an opaque object is never seen by any camera, so a field is free to leave
    low-density pockets there, and marching cubes turns each into an inner shell that no renderer
    shows but every geometry metric counts (measured: a 4,300-face inner shell in a fitted object,
    Chamfer 0.028 -> 0.044). The cavities are the voxels that empty space outside the object cannot
    reach, as ``scipy.ndimage.binary_fill_holes`` finds them (6-connected empty space); their density
    is set just above ``density_threshold``. They are found by labelling the empty components inside
    the occupied voxels' bounding box grown by one voxel (everything outside it reaches the border),
    2.5x faster than ``binary_fill_holes`` at 256^3.

    Args:
        density: (R, R, R) densities.
    Returns:
        (R, R, R) densities with enclosed empty voxels at ``2 * density_threshold`` (or +1 if <= 0);
        ``density`` itself when there are none.
    """
    cavities = enclosed_cavities(density > density_threshold)
    if cavities is None:
        return density
    filled = density.copy()
    filled[cavities] = cavity_density(density_threshold)
    return filled


def fill_enclosed_cavities_on_device(density: Tensor, density_threshold: float) -> Tensor:
    """:func:`fill_enclosed_cavities` of a (R, R, R) density tensor where it lies: a CUDA grid by the flood
    fill of :func:`enclosed_cavities_torch` (it never leaves the GPU), a CPU grid by scipy's labelling.
    Returns ``density`` itself when there is no cavity."""
    if density.is_cuda:
        cavities = enclosed_cavities_torch(density > density_threshold)
        return density if cavities is None else density.masked_fill(cavities, cavity_density(density_threshold))
    grid = density.numpy()
    filled = fill_enclosed_cavities(grid, density_threshold)
    return density if filled is grid else torch.from_numpy(filled)


def cavity_density(density_threshold: float) -> float:
    """The density given to filled cavities: just above the surface level (``2 * level``, or ``level + 1``
    for a level <= 0)."""
    return 2.0 * density_threshold if density_threshold > 0 else density_threshold + 1.0


def enclosed_cavities(occupied: np.ndarray) -> np.ndarray | None:
    """Boolean mask (R, R, R) of the empty voxels that 6-connected empty space cannot reach from the grid's
    border (``binary_fill_holes(occupied) & ~occupied``), or None when there are none."""
    from scipy.ndimage import label

    if not occupied.any():
        return None
    crop = []
    for axis in range(3):
        others = tuple(d for d in range(3) if d != axis)
        present = np.flatnonzero(occupied.any(axis=others))
        crop.append(slice(max(int(present[0]) - 1, 0), min(int(present[-1]) + 2, occupied.shape[axis])))
    crop = tuple(crop)
    labels, count = label(~occupied[crop])
    if count == 0:
        return None
    border = np.zeros(count + 1, dtype=bool)  # labels that touch the crop's faces reach the outside
    for axis in range(3):
        for index in (0, -1):
            border[np.take(labels, index, axis=axis)] = True
    enclosed = ~border
    enclosed[0] = False  # label 0: occupied voxels
    if not enclosed.any():
        return None
    cavities = np.zeros(occupied.shape, dtype=bool)
    cavities[crop] = enclosed[labels]
    return cavities


def occupied_crop(occupied: Tensor) -> tuple[slice, slice, slice] | None:
    """The occupied voxels' bounding box grown by one voxel (clipped to the grid), or None when none is occupied."""
    crop = []
    for axis in range(3):
        others = tuple(d for d in range(3) if d != axis)
        present = occupied.any(dim=others[1]).any(dim=others[0]).nonzero().flatten()
        if present.numel() == 0:
            return None
        first, last = present[[0, -1]].tolist()
        crop.append(slice(max(first - 1, 0), min(last + 2, occupied.shape[axis])))
    return tuple(crop)


def enclosed_cavities_torch(occupied: Tensor, check_every: int = 8, coarsest: int = 32) -> Tensor | None:
    """:func:`enclosed_cavities` on the grid's own device (a CUDA grid never goes to the CPU).

    The empty space that reaches the faces of the grown bounding box (:func:`exterior_empty_space`) is grown
    by 6-connected steps until it stops changing; what it never reaches is enclosed. On the CPU scipy's
    labelling (:func:`enclosed_cavities`) is faster; on a GPU this avoids copying the grid to the host.

    Args:
        occupied: (R0, R1, R2) bool.
        check_every: steps between the checks for a fixed point (each check synchronises with the device).
        coarsest: grids whose sides are all at least ``2 * coarsest`` first fill a grid of 2 x 2 x 2 blocks.
    Returns:
        (R0, R1, R2) bool mask of the enclosed empty voxels, or None when there are none.
    """
    crop = occupied_crop(occupied)
    if crop is None:
        return None
    empty = ~occupied[crop]
    enclosed = empty & ~exterior_empty_space(empty, check_every, coarsest)
    if not bool(enclosed.any()):
        return None
    cavities = torch.zeros_like(occupied)
    cavities[crop] = enclosed
    return cavities


def exterior_empty_space(empty: Tensor, check_every: int = 8, coarsest: int = 32) -> Tensor:
    """The empty voxels (R0, R1, R2) bool that a 6-connected path of empty voxels joins to the grid's faces.

    A flood fill from the empty face voxels, one step (six shifted ORs) per voxel of path length: on a
    512^3 grid about 150 steps, 76 ms of an H100 (docs/BENCHMARKS.md). So a large grid first fills the grid of
    its 2 x 2 x 2 blocks that are wholly empty (recursively, down to ``coarsest``): such blocks that touch
    each other are joined through their shared faces, so every voxel of a block reached there is reached
    here, and the fine fill only has to finish near the surface. It runs to its fixed point from that larger
    start, so the result is exactly the plain fill's.
    """
    reach = torch.zeros_like(empty)
    for axis in range(3):
        for index in (0, -1):
            face = [slice(None)] * 3
            face[axis] = index
            reach[tuple(face)] = empty[tuple(face)]
    if min(empty.shape) >= 2 * coarsest:
        coarse_reach = exterior_empty_space(wholly_empty_blocks(empty), check_every, coarsest)
        reach |= upsample_blocks(coarse_reach, empty.shape)
    steps = 0
    while True:
        grown = reach.clone()
        for axis in range(3):
            size = reach.shape[axis]
            grown.narrow(axis, 1, size - 1).logical_or_(reach.narrow(axis, 0, size - 1))
            grown.narrow(axis, 0, size - 1).logical_or_(reach.narrow(axis, 1, size - 1))
        grown.logical_and_(empty)
        steps += 1
        if steps % check_every == 0 and torch.equal(grown, reach):
            return reach
        reach = grown


def wholly_empty_blocks(empty: Tensor) -> Tensor:
    """(R0, R1, R2) bool -> (ceil(R0 / 2), ...) bool: whether each 2 x 2 x 2 block is all empty. A block
    past an odd side counts its voxels inside the grid only: beyond the faces all is exterior (padding it as
    occupied would cut an opening that lies on the face off the coarse fill)."""
    padded = F.pad(empty, tuple(pad for size in reversed(empty.shape) for pad in (0, size % 2)), value=True)
    a, b, c = (size // 2 for size in padded.shape)
    return padded.reshape(a, 2, b, 2, c, 2).all(dim=5).all(dim=3).all(dim=1)


def upsample_blocks(blocks: Tensor, shape: torch.Size) -> Tensor:
    """(a, b, c) per-block values -> (R0, R1, R2) per-voxel values of a ``shape`` grid of 2 x 2 x 2 blocks."""
    a, b, c = blocks.shape
    voxels = blocks[:, None, :, None, :, None].expand(a, 2, b, 2, c, 2).reshape(2 * a, 2 * b, 2 * c)
    return voxels[: shape[0], : shape[1], : shape[2]]


def is_watertight(faces: np.ndarray, device: torch.device | str = "cpu") -> bool:
    """Whether every edge of a triangle mesh belongs to exactly two faces (``trimesh``'s ``is_watertight``),
    by sorting the edges' keys with PyTorch on ``device``. trimesh's grouping took 0.6 s of a 414 k-face mesh
    on 2 CPU cores (this: 0.17 s there); with it on the GPU, test.py's mesh stage on an H100 fell from 0.23 to
    0.10 s (docs/BENCHMARKS.md).

    Args:
        faces: (F, 3) vertex indices.
    """
    faces = torch.as_tensor(np.asarray(faces, dtype=np.int64), device=device)
    if faces.numel() == 0:
        return False
    edges = torch.cat([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    low, high = edges.min(dim=1).values, edges.max(dim=1).values
    keys = torch.sort(low * (int(faces.max()) + 1) + high).values
    _, counts = torch.unique_consecutive(keys, return_counts=True)
    return bool((counts == 2).all())


def _signed_volume(vertices: np.ndarray | Tensor, faces: np.ndarray | Tensor) -> float:
    """Signed volume of a closed triangle mesh (positive when faces point outward), computed where the
    arrays lie (numpy arrays on the CPU, tensors on their device)."""
    vertices, faces = torch.as_tensor(vertices), torch.as_tensor(faces)
    a, b, c = vertices[faces[:, 0]], vertices[faces[:, 1]], vertices[faces[:, 2]]
    return float((a * torch.linalg.cross(b, c)).sum() / 6.0)


def keep_largest_component(mesh: trimesh.Trimesh) -> trimesh.Trimesh:
    """The connected component with the most faces (floaters removed)."""
    components = mesh.split(only_watertight=False)
    if len(components) <= 1:
        return mesh
    return max(components, key=lambda part: len(part.faces))


def simplify_mesh(mesh: trimesh.Trimesh, target_faces: int) -> trimesh.Trimesh:
    """Quadric-error decimation to about ``target_faces`` faces (needs ``fast_simplification``)."""
    if len(mesh.faces) <= target_faces:
        return mesh
    try:
        import fast_simplification  # noqa: F401  (trimesh's backend for quadric decimation)
    except ImportError as error:
        raise MeshExtractionError(
            "mesh simplification needs the 'fast_simplification' package: pip install fast_simplification "
            "(or drop --mesh_target_faces)"
        ) from error
    return mesh.simplify_quadric_decimation(face_count=int(target_faces))


REMESH_MODES = ("none", "triangle", "quad")


@contextlib.contextmanager
def _quiet_stdout() -> Iterator[None]:
    """Silence a C++ library's prints to the process's standard output (file descriptor 1)."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 1)
            yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


def remesh(mesh: trimesh.Trimesh, mode: str, target_vertices: int) -> trimesh.Trimesh:
    """Isotropic remeshing with Instant Meshes (``pynanoinstantmeshes``), as Stable Fast 3D offers.

    Marching cubes gives long thin triangles aligned with the grid; Instant Meshes rebuilds the
    surface from an orientation and position field with evenly sized, well-shaped faces.

    Args:
        mesh: the surface (faces wound outward).
        mode: ``"triangle"`` (6-RoSy / 3-PoSy: near-equilateral triangles) or ``"quad"`` (4-RoSy /
            4-PoSy: a pure quad mesh, each quad written as two triangles, the formats' common ground).
        target_vertices: about how many vertices Instant Meshes aims for (``quad`` subdivides its
            quad-dominant result once, so it ends with about four times as many).
    Returns:
        The remeshed surface, faces wound outward.
    """
    if mode not in REMESH_MODES or mode == "none":
        raise ValueError(f"remesh mode must be 'triangle' or 'quad', got {mode!r}")
    try:
        import pynanoinstantmeshes
    except ImportError as error:
        raise MeshExtractionError("--remesh needs the pynanoinstantmeshes package: pip install pynanoinstantmeshes") from error
    rosy, posy = (6, 3) if mode == "triangle" else (4, 4)
    with _quiet_stdout():
        vertices, faces = pynanoinstantmeshes.remesh(
            np.ascontiguousarray(mesh.vertices, dtype=np.float32), np.ascontiguousarray(mesh.faces, dtype=np.uint32),
            int(target_vertices), rosy=rosy, posy=posy, deterministic=True,
        )
    faces = np.asarray(faces, dtype=np.int64)
    if faces.shape[1] == 4:  # quad (a, b, c, d) -> triangles (a, b, c), (a, c, d)
        faces = np.concatenate([faces[:, [0, 1, 2]], faces[:, [0, 2, 3]]])
    vertices = np.asarray(vertices, dtype=np.float64)
    if len(faces) == 0:
        raise MeshExtractionError(f"{mode} remeshing to {target_vertices} vertices gave an empty mesh; raise the target")
    if _signed_volume(vertices, faces) < 0:
        faces = faces[:, ::-1].copy()
    remeshed = trimesh.Trimesh(vertices=vertices, faces=faces, process=False)
    remeshed.remove_unreferenced_vertices()
    return remeshed


def surface_density_threshold(renderer: Any) -> float:
    """The surface level of a renderer's field: its config's ``mesh_density_threshold``, else the default."""
    config = getattr(renderer, "config", None)
    return float(getattr(config, "mesh_density_threshold", DEFAULT_DENSITY_THRESHOLD))


def extract_mesh(
    renderer: QueryableField,
    triplanes: Tensor,
    resolution: int = 256,
    density_threshold: float | None = None,
    chunk_size: int = DEFAULT_QUERY_CHUNK_SIZE,
    largest_component: bool = False,
    fill_cavities: bool = True,
    target_faces: int | None = None,
    remesh_mode: str = "none",
    box_min: Sequence[float] | None = None,
    box_max: Sequence[float] | None = None,
    progress: bool = False,
    marching_cubes: str = DEFAULT_MARCHING_CUBES,
    coarse_to_fine: bool | None = None,
) -> trimesh.Trimesh:
    """Coloured mesh of one triplane's density field, in world coordinates.

    Args:
        renderer: a :class:`mira.rendering.TriplaneRenderer` (anything with ``query``).
        triplanes: (1, 3, C, R, R).
        resolution: grid points per axis over the renderer box.
        density_threshold: iso-level of the surface (density units of the renderer); None: the
            renderer config's ``mesh_density_threshold`` (else ``DEFAULT_DENSITY_THRESHOLD``).
        chunk_size: points per ``renderer.query`` call.
        largest_component: drop every connected component but the largest.
        fill_cavities: fill closed inner pockets first (:func:`fill_enclosed_cavities`), so that
            only surfaces reachable from outside remain.
        target_faces: if set, simplify to about this many faces (with ``remesh_mode``: remesh to
            about ``target_faces / 2`` vertices instead).
        remesh_mode: ``"none"``, or ``"triangle"`` / ``"quad"`` Instant Meshes remeshing (:func:`remesh`),
            to the input's vertex count unless ``target_faces`` is given.
        box_min, box_max: the box the grid spans; default the renderer's box.
        marching_cubes: ``"torch"`` (MIRA's, on the triplanes' device) or ``"pymcubes"``: the same triangles.
        coarse_to_fine: evaluate the density grid coarse-to-fine (:func:`density_grid`); None: from
            :data:`COARSE_TO_FINE_MIN_RESOLUTION` up.
    Returns:
        ``trimesh.Trimesh`` with outward faces and RGBA vertex colours from the colour field.
    Raises:
        MeshExtractionError: no surface at this threshold.
    """
    if triplanes.dim() != 5 or triplanes.shape[0] != 1:
        raise ValueError(f"extract_mesh takes one triplane (1, 3, C, R, R), got {tuple(triplanes.shape)}")
    if box_min is None or box_max is None:
        box_min, box_max = renderer_box(renderer)
    box_min, box_max = np.asarray(box_min, dtype=np.float64), np.asarray(box_max, dtype=np.float64)
    if density_threshold is None:
        density_threshold = surface_density_threshold(renderer)
    if marching_cubes not in MARCHING_CUBES_METHODS:
        raise ValueError(f"marching_cubes must be one of {MARCHING_CUBES_METHODS}, got {marching_cubes!r}")
    density = density_grid(renderer, triplanes, resolution, box_min, box_max, density_threshold, coarse_to_fine,
                           chunk_size, progress)
    if fill_cavities:
        density = fill_enclosed_cavities_on_device(density, density_threshold)
    vertices, faces = marching_cubes_world(density, density_threshold, box_min, box_max, marching_cubes)
    mesh = trimesh.Trimesh(vertices=vertices, faces=faces, process=False)
    if largest_component:
        mesh = keep_largest_component(mesh)
    if remesh_mode != "none":
        mesh = remesh(mesh, remesh_mode, target_faces // 2 if target_faces is not None else len(mesh.vertices))
    elif target_faces is not None:
        mesh = simplify_mesh(mesh, target_faces)
    mesh.visual.vertex_colors = query_vertex_colors(renderer, triplanes, np.asarray(mesh.vertices), chunk_size)
    return mesh


# ---------------------------------------------------------------------- files
def mesh_format_of(path: str | Path) -> str:
    """``ply``, ``obj`` or ``glb`` from the file suffix; anything else is a ``ValueError``."""
    suffix = Path(path).suffix.lower().lstrip(".")
    if suffix not in MESH_FORMATS:
        raise ValueError(f"{path}: mesh format must be one of {MESH_FORMATS} (by file suffix), got '.{suffix}'")
    return suffix


def has_texture(mesh: trimesh.Trimesh) -> bool:
    """True when ``mesh`` carries UVs and a base-colour texture image (:func:`mira.export.texture.texture_mesh`)."""
    visual = mesh.visual
    material = getattr(visual, "material", None)
    image = getattr(material, "baseColorTexture", None) if material is not None else None
    return getattr(visual, "uv", None) is not None and image is not None


def texture_image(mesh: trimesh.Trimesh) -> Image.Image:
    """The RGB base-colour texture of a textured mesh (row 0 at the top, v = 1)."""
    return mesh.visual.material.baseColorTexture.convert("RGB")


def vertex_colors_of(mesh: trimesh.Trimesh) -> np.ndarray:
    """(V, 4) uint8 sRGB vertex colours; a textured mesh's texture is sampled at its vertices' UVs."""
    if has_texture(mesh):
        return np.asarray(mesh.visual.to_color().vertex_colors, dtype=np.uint8)
    return np.asarray(mesh.visual.vertex_colors, dtype=np.uint8)


def png_bytes(image: Image.Image) -> bytes:
    """A PIL image as PNG bytes."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def mesh_companion_files(path: str | Path, mesh: trimesh.Trimesh) -> list[Path]:
    """Files written beside ``path`` by :func:`save_mesh`: ``<stem>.mtl`` and ``<stem>.png`` for a textured OBJ."""
    path = Path(path)
    if mesh_format_of(path) == "obj" and has_texture(mesh):
        return [path.with_suffix(".mtl"), path.with_suffix(".png")]
    return []


def save_mesh(mesh: trimesh.Trimesh, path: str | Path) -> Path:
    """Write ``mesh`` atomically; the format (ply, obj, glb) comes from the suffix.

    Frames (:data:`FORMAT_FRAMES`): PLY keeps MIRA's world (+Z up); OBJ and GLB are turned by
    :data:`MIRA_TO_Y_UP` (+Y up, the input view's side facing +Z), so that glTF viewers and
    Blender's importers show the object upright.

    Colours: a textured mesh (:func:`has_texture`) goes to GLB as a PBR base-colour texture (sRGB)
    and to OBJ as ``<stem>.obj`` + ``<stem>.mtl`` + ``<stem>.png`` (written in that order's
    reverse, so an OBJ never names a missing file); PLY gets the texture sampled at the
    vertices. Vertex colours go to GLB as linear ``COLOR_0`` (:mod:`mira.export.gltf`), to PLY
    (bytes) and OBJ (``v x y z r g b``, 0..1) as the sRGB values those formats' readers expect.
    """
    path = Path(path)
    file_type = mesh_format_of(path)
    if file_type == "glb":
        write_bytes_atomic(glb_file_bytes(mesh), path)
        return path
    if file_type == "obj":
        _save_obj(mesh, path)
        return path
    if has_texture(mesh):
        mesh = trimesh.Trimesh(mesh.vertices, mesh.faces, vertex_colors=vertex_colors_of(mesh), process=False)
    with atomic_output(path) as temp_path:
        mesh.export(str(temp_path), file_type=file_type)
    return path


def unit_vertex_normals(mesh: trimesh.Trimesh) -> np.ndarray:
    """(V, 3) unit vertex normals, as glTF requires: a vertex whose normal is zero (only on
    zero-area faces, or on none) gets +Z, which no visible shading depends on."""
    normals = np.asarray(mesh.vertex_normals, dtype=np.float64).copy()
    length = np.linalg.norm(normals, axis=1)
    bad = ~np.isfinite(length) | (length < 1e-8)
    normals[bad] = (0.0, 0.0, 1.0)
    return normals / np.linalg.norm(normals, axis=1, keepdims=True)


def glb_file_bytes(mesh: trimesh.Trimesh) -> bytes:
    """The GLB file of ``mesh`` (MIRA world) in glTF's frame, textured or with linear vertex colours."""
    rotation = MIRA_TO_Y_UP[:3, :3]
    vertices = np.asarray(mesh.vertices, dtype=np.float64) @ rotation.T
    normals = unit_vertex_normals(mesh) @ rotation.T
    if has_texture(mesh):
        return glb_bytes(vertices, mesh.faces, normals, uv=np.asarray(mesh.visual.uv),
                         texture_png=png_bytes(texture_image(mesh)))
    return glb_bytes(vertices, mesh.faces, normals, vertex_colors_srgb=vertex_colors_of(mesh))


def _save_obj(mesh: trimesh.Trimesh, path: Path) -> None:
    """OBJ in the +Y-up frame; textured: ``<stem>.png`` and ``<stem>.mtl`` first, then the OBJ."""
    turned = mesh.copy()
    turned.apply_transform(MIRA_TO_Y_UP)
    if not has_texture(mesh):
        with atomic_output(path) as temp_path:
            turned.export(str(temp_path), file_type="obj")
        return
    from trimesh.exchange.obj import export_obj

    texture_name, material_name = path.with_suffix(".png").name, f"{path.stem}_material"
    turned.visual.material.name = material_name
    text = export_obj(turned, include_normals=True, include_texture=True, write_texture=False,
                      mtl_name=path.with_suffix(".mtl").name)
    # Our own MTL: trimesh's has Kd 0.4, which viewers that multiply Kd by map_Kd show darker.
    mtl = (f"# MIRA baked base colour (sRGB)\nnewmtl {material_name}\nKa 0 0 0\nKd 1 1 1\nKs 0 0 0\n"
           f"Ns 0\nillum 1\nmap_Kd {texture_name}\n")
    write_bytes_atomic(png_bytes(texture_image(mesh)), path.with_suffix(".png"))
    write_text_atomic(mtl, path.with_suffix(".mtl"))
    write_text_atomic(text, path)
