"""UV texture of a reconstructed mesh: unwrap with xatlas, bake the triplane colour field, pad seams.

1. :func:`unwrap_uv` cuts the mesh into charts and packs them into the unit square (``xatlas``);
   vertices on chart seams are duplicated, so the result has its own vertices and faces.
2. :func:`rasterize_uv` finds, for every texel centre, the face whose UV triangle covers it and the
   barycentric coordinates there (vectorised numpy, chunk by chunk).
3. :func:`bake_texture` turns those into 3D surface points (the same barycentric weights on the
   face's world vertices), asks the colour field (``renderer.query(...)["rgb"]``) for their colour
   and fills every texel that no triangle covers with the colour of the nearest covered texel
   (:func:`dilate_texture`), so bilinear filtering and mipmaps never pull in background colour
   across chart seams.

Texture convention (the OBJ / trimesh one): ``uv`` in ``[0, 1]^2`` with ``v`` pointing *up*;
image row 0 is the top of the texture, so texel (row r, column c) has its centre at
``u = (c + 0.5) / W``, ``v = 1 - (r + 0.5) / H``. glTF's ``v`` points down; the GLB writer
flips it (:mod:`mira.export.gltf`).

Colour space: the colour field is trained against the pixel values of the input images, i.e. it
outputs sRGB-encoded colour, which is what a base-colour texture stores (glTF: sRGB texture).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

from mira.rendering.chunking import chunked
from mira.rendering.field import QueryableField

if TYPE_CHECKING:
    import trimesh

DEFAULT_TEXTURE_SIZE = 1024
# Empty texels between charts in the packed atlas: bilinear filtering reads one texel across a
# chart border, the first mip levels a few more.
DEFAULT_CHART_PADDING = 4
# Candidate (face, texel) pairs per rasterisation chunk: bounds the memory of rasterize_uv.
RASTER_CANDIDATES_PER_CHUNK = 2_000_000
# Points per renderer.query call while baking.
BAKE_QUERY_CHUNK = 262_144
# A texel centre on a shared edge belongs to both faces; this tolerance keeps it covered.
BARYCENTRIC_EPS = 1e-6


class TextureBakeError(RuntimeError):
    """The mesh cannot be unwrapped or baked (empty mesh, missing xatlas)."""


@dataclass
class UVMesh:
    """A mesh cut along UV seams.

    Attributes:
        vertices: (V', 3) float64 world points (seam vertices duplicated).
        faces: (F, 3) int64 indices into ``vertices``.
        uv: (V', 2) float64 texture coordinates in ``[0, 1]`` (v up).
        source_vertex: (V',) int64 index of each vertex in the input mesh.
    """

    vertices: np.ndarray
    faces: np.ndarray
    uv: np.ndarray
    source_vertex: np.ndarray


@dataclass
class BakedTexture:
    """A baked base-colour texture.

    Attributes:
        image: (H, W, 3) uint8, sRGB-encoded colour, row 0 at the top (v = 1).
        covered: (H, W) bool, texels whose centre lies on a UV triangle (the rest were dilated).
        seconds: wall time of each stage (``unwrap``, ``rasterize``, ``query``, ``dilate``).
    """

    image: np.ndarray
    covered: np.ndarray
    seconds: dict[str, float]


def _import_xatlas() -> Any:
    try:
        return importlib.import_module("xatlas")
    except ImportError as error:
        raise TextureBakeError("texture baking needs the xatlas package: pip install xatlas") from error


def unwrap_uv(
    vertices: np.ndarray, faces: np.ndarray, texture_size: int = DEFAULT_TEXTURE_SIZE,
    padding: int = DEFAULT_CHART_PADDING,
) -> UVMesh:
    """UV-unwrap a triangle mesh with xatlas, charts packed for a ``texture_size`` square texture.

    Args:
        vertices: (V, 3) world points.
        faces: (F, 3) vertex indices.
        texture_size: the texture side the charts are packed for (pixels).
        padding: empty texels between charts.
    Returns:
        :class:`UVMesh` with ``uv`` in ``[0, 1]`` (v up).
    """
    if len(faces) == 0:
        raise TextureBakeError("cannot unwrap an empty mesh (no faces)")
    xatlas = _import_xatlas()
    atlas = xatlas.Atlas()
    atlas.add_mesh(np.ascontiguousarray(vertices, dtype=np.float32), np.ascontiguousarray(faces, dtype=np.uint32))
    pack = xatlas.PackOptions()
    pack.resolution = int(texture_size)
    pack.padding = int(padding)
    pack.bilinear = True
    atlas.generate(xatlas.ChartOptions(), pack)
    vmapping, indices, uv = atlas[0]
    vmapping, faces_out = vmapping.astype(np.int64), indices.astype(np.int64)
    uv = place_skipped_vertices(uv.astype(np.float64), faces_out, vmapping, len(vertices))
    return UVMesh(
        vertices=np.asarray(vertices, dtype=np.float64)[vmapping], faces=faces_out, uv=uv, source_vertex=vmapping,
    )


def place_skipped_vertices(uv: np.ndarray, faces: np.ndarray, source_vertex: np.ndarray, num_source: int) -> np.ndarray:
    """UVs for the vertices xatlas leaves at (0, 0).

    xatlas skips faces it finds degenerate (marching cubes makes slivers of ~1e-7 area near grid
    points) and leaves their vertices at uv (0, 0), where another chart's colour lies. Such a
    vertex takes the uv of a placed copy of the same input vertex, else of a placed vertex of
    one of its faces: the sliver then sits (with ~zero uv area) on the right colours.

    Args:
        uv: (V', 2) xatlas output; faces: (F, 3); source_vertex: (V',) input vertex of each vertex.
    Returns:
        (V', 2) uv.
    """
    corners = uv[faces]
    e1, e2 = corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]
    area2 = np.abs(e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0])
    placed = np.zeros(len(uv), dtype=bool)
    placed[faces[area2 > 0].reshape(-1)] = True
    if placed.all():
        return uv
    uv = uv.copy()
    donor = np.full(num_source, -1, dtype=np.int64)
    donor[source_vertex[placed]] = np.flatnonzero(placed)
    fix = ~placed & (donor[source_vertex] >= 0)
    uv[fix] = uv[donor[source_vertex[fix]]]
    placed |= fix
    for face in faces[~placed[faces].all(axis=1) & placed[faces].any(axis=1)]:
        anchor = face[placed[face]][0]
        uv[face[~placed[face]]] = uv[anchor]
    return uv


def texel_centers_uv(size: int) -> np.ndarray:
    """(size, size, 2) ``(u, v)`` of every texel centre (row 0 at the top, v = 1 - (r + 0.5) / size)."""
    centres = (np.arange(size) + 0.5) / size
    u = np.broadcast_to(centres[None, :], (size, size))
    v = np.broadcast_to(1.0 - centres[:, None], (size, size))
    return np.stack([u, v], axis=-1)


def rasterize_uv(uv: np.ndarray, faces: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Which face covers each texel centre of a ``size x size`` texture, and where.

    Args:
        uv: (V, 2) texture coordinates (v up).
        faces: (F, 3) indices into ``uv``.
        size: texture side in texels.
    Returns:
        face_index (size, size) int64, -1 where no face covers the texel centre, and
        barycentric (size, size, 3) float64 weights of the face's three vertices there.
    """
    # Texel space: x = column, y = row; the centre of texel (r, c) is (c, r).
    corners = np.stack([uv[:, 0] * size - 0.5, (1.0 - uv[:, 1]) * size - 0.5], axis=-1)[faces]  # (F, 3, 2)
    x0 = np.clip(np.ceil(corners[..., 0].min(axis=1)), 0, size).astype(np.int64)
    x1 = np.clip(np.floor(corners[..., 0].max(axis=1)), -1, size - 1).astype(np.int64)
    y0 = np.clip(np.ceil(corners[..., 1].min(axis=1)), 0, size).astype(np.int64)
    y1 = np.clip(np.floor(corners[..., 1].max(axis=1)), -1, size - 1).astype(np.int64)
    width, height = np.maximum(x1 - x0 + 1, 0), np.maximum(y1 - y0 + 1, 0)
    count = width * height
    # Twice the signed UV area; degenerate triangles cover nothing.
    e1, e2 = corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]
    area2 = e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]
    count[np.abs(area2) < 1e-12] = 0

    face_index = np.full((size, size), -1, dtype=np.int64)
    barycentric = np.zeros((size, size, 3), dtype=np.float64)
    candidate_faces = np.flatnonzero(count)
    cumulative = np.cumsum(count[candidate_faces])
    start = 0
    while start < len(candidate_faces):
        base = cumulative[start - 1] if start else 0
        stop = max(int(np.searchsorted(cumulative, base + RASTER_CANDIDATES_PER_CHUNK, side="right")), start + 1)
        chunk = candidate_faces[start:stop]
        per_face = count[chunk]
        face = np.repeat(chunk, per_face)  # (N,) one entry per candidate texel
        offsets = np.arange(len(face)) - np.repeat(np.cumsum(per_face) - per_face, per_face)
        px = x0[face] + offsets % width[face]
        py = y0[face] + offsets // width[face]
        a, b, c = corners[face, 0], corners[face, 1], corners[face, 2]  # (N, 2)
        # Barycentric weights of (px, py): ratios of sub-triangle areas to the face's.
        w_b = ((px - a[:, 0]) * (c[:, 1] - a[:, 1]) - (py - a[:, 1]) * (c[:, 0] - a[:, 0])) / area2[face]
        w_c = ((b[:, 0] - a[:, 0]) * (py - a[:, 1]) - (b[:, 1] - a[:, 1]) * (px - a[:, 0])) / area2[face]
        w_a = 1.0 - w_b - w_c
        inside = (w_a >= -BARYCENTRIC_EPS) & (w_b >= -BARYCENTRIC_EPS) & (w_c >= -BARYCENTRIC_EPS)
        face_index[py[inside], px[inside]] = face[inside]
        barycentric[py[inside], px[inside]] = np.stack([w_a, w_b, w_c], axis=-1)[inside]
        start = stop
    _splat_small_faces(corners, face_index, barycentric)
    return face_index, barycentric


def _splat_small_faces(corners: np.ndarray, face_index: np.ndarray, barycentric: np.ndarray) -> None:
    """Give every face that covers no texel centre (a chart smaller than a texel, as xatlas makes
    for marching-cubes slivers) the free texels under its centroid and corners, in place, so that
    dilation around it spreads its own colour, not a neighbouring chart's.

    Args:
        corners: (F, 3, 2) texel-space corners (x = column, y = row).
        face_index, barycentric: (H, W), (H, W, 3) from the coverage pass; updated in place.
    """
    size = face_index.shape[0]
    hit = np.zeros(len(corners), dtype=bool)
    hit[face_index[face_index >= 0]] = True
    missed = np.flatnonzero(~hit)
    if len(missed) == 0:
        return
    weights = np.array([[1 / 3, 1 / 3, 1 / 3], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    for weight in weights:
        position = np.einsum("k,fkd->fd", weight, corners[missed])
        column = np.clip(np.round(position[:, 0]), 0, size - 1).astype(np.int64)
        row = np.clip(np.round(position[:, 1]), 0, size - 1).astype(np.int64)
        free = face_index[row, column] < 0
        face_index[row[free], column[free]] = missed[free]
        barycentric[row[free], column[free]] = weight


def dilate_texture(image: np.ndarray, covered: np.ndarray) -> np.ndarray:
    """Every uncovered texel takes the value of the nearest covered texel (Euclidean).

    Args:
        image: (H, W, C) texture.
        covered: (H, W) bool, at least one True.
    Returns:
        (H, W, C) texture with no background left between charts.
    """
    from scipy.ndimage import distance_transform_edt

    if covered.all():
        return image
    if not covered.any():
        raise TextureBakeError("no texel is covered by the UV layout; nothing to dilate")
    _, (rows, cols) = distance_transform_edt(~covered, return_indices=True)
    return image[rows, cols]


@torch.no_grad()
def query_colors(renderer: QueryableField, triplanes: Tensor, points: np.ndarray, chunk_size: int = BAKE_QUERY_CHUNK) -> np.ndarray:
    """Colour field at world points (P, 3) -> (P, 3) float32 in [0, 1] (sRGB-encoded)."""
    points = torch.as_tensor(points, dtype=torch.float32, device=triplanes.device)
    rgb = chunked(lambda part: renderer.query(triplanes, part[None])["rgb"][0].float(), points, chunk_size=chunk_size)
    return rgb.clamp(0.0, 1.0).cpu().numpy()


def bake_texture(
    renderer: QueryableField, triplanes: Tensor, uv_mesh: UVMesh, texture_size: int = DEFAULT_TEXTURE_SIZE,
    chunk_size: int = BAKE_QUERY_CHUNK,
) -> BakedTexture:
    """Bake the colour field into a texture over ``uv_mesh``'s layout.

    Args:
        renderer: has ``query(triplanes (1, 3, C, R, R), points (1, P, 3)) -> {"rgb": (1, P, 3)}``.
        triplanes: (1, 3, C, R, R).
        uv_mesh: the unwrapped mesh (world vertices, faces, uv).
        texture_size: texture side in texels.
    Returns:
        :class:`BakedTexture`, (texture_size, texture_size, 3) uint8.
    """
    import time

    if texture_size < 8:
        raise ValueError(f"texture size must be at least 8 texels, got {texture_size}")
    seconds: dict[str, float] = {}
    start = time.perf_counter()
    face_index, barycentric = rasterize_uv(uv_mesh.uv, uv_mesh.faces, texture_size)
    covered = face_index >= 0
    seconds["rasterize"] = time.perf_counter() - start

    start = time.perf_counter()
    corners = uv_mesh.vertices[uv_mesh.faces[face_index[covered]]]  # (T, 3, 3)
    points = np.einsum("tk,tkd->td", barycentric[covered], corners)
    colors = query_colors(renderer, triplanes, points, chunk_size)
    image = np.zeros((texture_size, texture_size, 3), dtype=np.uint8)
    image[covered] = np.round(colors * 255.0).astype(np.uint8)
    seconds["query"] = time.perf_counter() - start

    start = time.perf_counter()
    image = dilate_texture(image, covered)
    seconds["dilate"] = time.perf_counter() - start
    return BakedTexture(image=image, covered=covered, seconds={k: round(v, 4) for k, v in seconds.items()})


def texture_mesh(
    mesh: "trimesh.Trimesh", renderer: QueryableField, triplanes: Tensor, texture_size: int = DEFAULT_TEXTURE_SIZE,
    chunk_size: int = BAKE_QUERY_CHUNK,
) -> tuple["trimesh.Trimesh", BakedTexture]:
    """UV-unwrap ``mesh`` and bake the colour field into a base-colour texture.

    Args:
        mesh: the surface in MIRA's world (e.g. from :func:`mira.export.mesh.extract_mesh`).
        renderer: the colour field (``query``).
        triplanes: (1, 3, C, R, R).
        texture_size: texture side in texels.
    Returns:
        A new mesh with seams cut, ``TextureVisuals`` (uv, a dielectric PBR material whose
        ``baseColorTexture`` is the baked sRGB image) and the input's smooth vertex normals, and
        the :class:`BakedTexture` (with per-stage seconds, ``unwrap`` included).
    """
    import time

    import trimesh
    from PIL import Image

    start = time.perf_counter()
    uv_mesh = unwrap_uv(np.asarray(mesh.vertices), np.asarray(mesh.faces), texture_size)
    unwrap_seconds = time.perf_counter() - start
    baked = bake_texture(renderer, triplanes, uv_mesh, texture_size, chunk_size)
    baked.seconds = {"unwrap": round(unwrap_seconds, 4), **baked.seconds}
    material = trimesh.visual.material.PBRMaterial(
        name="mira", baseColorTexture=Image.fromarray(baked.image, mode="RGB"), baseColorFactor=[255, 255, 255, 255],
        metallicFactor=0.0, roughnessFactor=1.0,
    )
    textured = trimesh.Trimesh(
        vertices=uv_mesh.vertices, faces=uv_mesh.faces,
        visual=trimesh.visual.TextureVisuals(uv=uv_mesh.uv, material=material), process=False,
    )
    textured.vertex_normals = np.asarray(mesh.vertex_normals)[uv_mesh.source_vertex]
    return textured, baked
