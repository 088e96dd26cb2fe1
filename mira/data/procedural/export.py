"""Meshes of procedural objects and a multi-view dataset of them in our render layout.

* :func:`object_mesh`: marching cubes (PyMCubes, through :func:`mira.export.mesh.marching_cubes_world`)
  of the SDF in the normalised world frame (+Z up), outward faces, vertex normals from the SDF
  gradient and vertex colours = sRGB bytes of the albedo. Blender's PLY importer turns those
  bytes back into the linear albedo and shades with the normals (smooth), so
  ``blender_scripts/dataset_rendering.py`` renders the object as :func:`render_views` does.
* :func:`export_meshes`: such meshes as files, for Blender (``load_input_data.py --objects``).
* :func:`write_procedural_dataset`: train / val objects rendered by :func:`render_views` with the
  Blender script's cameras, written with :func:`mira.data.formats.write_object_views`, plus
  ``mesh.ply`` per object and ``index.json``.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import Tensor

from mira import cameras
from mira.atomic import atomic_output, write_json_atomic
from mira.data.procedural.colour import linear_to_srgb
from mira.data.procedural.lighting import default_lighting
from mira.data.procedural.objects import PROCEDURAL_RADIUS, ProceduralObjects, albedo, signed_distance
from mira.data.procedural.render import render_views
from mira.data.procedural.sampling import sample_objects
from mira.data.procedural.shading import surface_normals

# The mesh grid spans this cube (a little more than the bounding sphere).
MESH_BOX = PROCEDURAL_RADIUS + 0.02
# The grid is evaluated in blocks of BLOCK^3 points; a block whose centre is farther from the
# surface than its half diagonal (the SDF is a distance bound) takes that one value.
MESH_BLOCK = 4
POINTS_PER_CALL = 1 << 18
# marching_cubes_world wants a positive density threshold: density = offset - sdf.
_DENSITY_OFFSET = 10.0

# Dataset: validation objects are drawn from indices VAL_OFFSET + i, never used for training.
VAL_OFFSET = 100_000_000
OBJECT_ID_FORMAT = "procedural_{:09d}"
OBJECTS_PER_BATCH = 8
CAMERA_DISTANCE = (2.2, 2.8)
ELEVATION_DEG = (-90.0, 90.0)
CAMERA_STREAM = 2  # SeedSequence stream of the cameras (objects: attempts 0.., lighting: 1)
MIN_IMAGE_SIZE = 8


# ------------------------------------------------------------------ meshes
def _evaluate(objects: ProceduralObjects, points: Tensor, field) -> Tensor:
    """``field(objects, points (1, n, 3))`` over (n, 3) points in calls of POINTS_PER_CALL."""
    return torch.cat([field(objects, points[None, start:start + POINTS_PER_CALL])[0]
                      for start in range(0, points.shape[0], POINTS_PER_CALL)])


def sdf_grid(objects: ProceduralObjects, index: int, resolution: int) -> np.ndarray:
    """Signed distances (R, R, R) of object ``index`` on the grid over ``[-MESH_BOX, MESH_BOX]^3``
    (``[i, j, k]`` at x_i, y_j, z_k, corners included); exact near the surface, a same-signed
    bound elsewhere."""
    one = objects.select(index)
    device = one.device
    blocks = math.ceil(resolution / MESH_BLOCK)
    padded = blocks * MESH_BLOCK
    step = 2.0 * MESH_BOX / (resolution - 1)
    axis = -MESH_BOX + step * torch.arange(padded, dtype=torch.float32, device=device)
    centres_axis = axis.reshape(blocks, MESH_BLOCK).mean(1)
    centres = torch.stack(torch.meshgrid(centres_axis, centres_axis, centres_axis, indexing="ij"), -1).reshape(-1, 3)
    coarse = _evaluate(one, centres, signed_distance)  # (blocks^3,)
    half_diagonal = 0.5 * math.sqrt(3.0) * step * (MESH_BLOCK - 1)
    near = torch.nonzero(coarse.abs() <= half_diagonal + step).squeeze(1)
    values = coarse.reshape(blocks, 1, blocks, 1, blocks, 1).expand(-1, MESH_BLOCK, -1, MESH_BLOCK, -1, MESH_BLOCK)
    values = values.reshape(padded, padded, padded).clone()
    if near.numel():
        bi = near // (blocks * blocks)
        bj = (near // blocks) % blocks
        bk = near % blocks
        offsets = torch.arange(MESH_BLOCK, device=device)
        oi, oj, ok = torch.meshgrid(offsets, offsets, offsets, indexing="ij")
        i = (bi[:, None] * MESH_BLOCK + oi.reshape(1, -1)).reshape(-1)
        j = (bj[:, None] * MESH_BLOCK + oj.reshape(1, -1)).reshape(-1)
        k = (bk[:, None] * MESH_BLOCK + ok.reshape(1, -1)).reshape(-1)
        points = torch.stack([axis[i], axis[j], axis[k]], dim=-1)
        values[i, j, k] = _evaluate(one, points, signed_distance)
    return values[:resolution, :resolution, :resolution].cpu().numpy()


def object_mesh(objects: ProceduralObjects, index: int, resolution: int = 192) -> "trimesh.Trimesh":
    """Triangle mesh of object ``index`` in the normalised world frame (+Z up).

    Returns:
        ``trimesh.Trimesh`` with outward faces, vertex normals (SDF gradient) and RGBA uint8
        vertex colours (sRGB bytes of the linear albedo; alpha 255).
    """
    import trimesh

    from mira.export.mesh import marching_cubes_world

    if resolution < 8:
        raise ValueError(f"mesh resolution must be >= 8, got {resolution}")
    with torch.no_grad():
        grid = sdf_grid(objects, index, resolution)
        box_min, box_max = np.full(3, -MESH_BOX), np.full(3, MESH_BOX)
        vertices, faces = marching_cubes_world(_DENSITY_OFFSET - grid, _DENSITY_OFFSET, box_min, box_max)
        one = objects.select(index)
        points = torch.as_tensor(vertices, dtype=torch.float32, device=one.device)
        normals = torch.cat([surface_normals(one, points[None, s:s + POINTS_PER_CALL])[0]
                             for s in range(0, len(points), POINTS_PER_CALL)])
        colours = _evaluate(one, points, albedo)
        srgb = (linear_to_srgb(colours) * 255.0).round().to(torch.uint8).cpu().numpy()
    rgba = np.concatenate([srgb, np.full((len(srgb), 1), 255, dtype=np.uint8)], axis=1)
    mesh = trimesh.Trimesh(vertices=vertices, faces=faces, vertex_colors=rgba, process=False)
    mesh.vertex_normals = normals.cpu().numpy().astype(np.float64)
    return mesh


def save_object_mesh(mesh: "trimesh.Trimesh", path: str | Path) -> Path:
    """Write a mesh atomically; PLY keeps the vertex normals (Blender then shades it smooth),
    other suffixes go through :func:`mira.export.mesh.save_mesh` (obj, glb)."""
    from trimesh.exchange.ply import export_ply

    from mira.export.mesh import save_mesh

    path = Path(path)
    if path.suffix.lower() != ".ply":
        return save_mesh(mesh, path)
    with atomic_output(path) as temporary:
        temporary.write_bytes(export_ply(mesh, encoding="binary", vertex_normal=True))
    return path


def export_meshes(output_dir: str | Path, indices: Sequence[int], seed: int, resolution: int = 192,
                  suffix: str = ".ply", device: torch.device | str = "cpu") -> list[Path]:
    """Meshes ``<output_dir>/procedural_<index>.<suffix>`` of objects ``indices`` of ``seed``."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    suffix = suffix if suffix.startswith(".") else f".{suffix}"
    paths = []
    for start in range(0, len(indices), OBJECTS_PER_BATCH):
        batch = list(indices[start:start + OBJECTS_PER_BATCH])
        objects = sample_objects(batch, seed, device)
        for row, index in enumerate(batch):
            path = output_dir / (OBJECT_ID_FORMAT.format(index) + suffix)
            paths.append(save_object_mesh(object_mesh(objects, row, resolution), path))
    return paths


# ------------------------------------------------------------------ cameras
def sample_cameras(index: int, seed: int, count: int) -> tuple[Tensor, list[dict]]:
    """Cameras like the Blender script's: azimuth U(0, 360), directions uniform on the sphere band
    of elevations, distance U(2.2, 2.8), looking at the origin. Returns OpenCV c2w (count, 4, 4)
    and per-view ``{"azimuth_deg", "elevation_deg", "distance"}``."""
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), int(index), CAMERA_STREAM]))
    sin_low, sin_high = (math.sin(math.radians(e)) for e in ELEVATION_DEG)
    views = []
    for _ in range(count):
        azimuth = float(rng.uniform(0.0, 360.0))
        elevation = math.degrees(math.asin(float(rng.uniform(sin_low, sin_high))))
        distance = float(rng.uniform(*CAMERA_DISTANCE))
        views.append({"azimuth_deg": azimuth, "elevation_deg": elevation, "distance": distance})
    spherical = torch.tensor([[v["azimuth_deg"], v["elevation_deg"], v["distance"]] for v in views],
                             dtype=torch.float64)
    eye = cameras.spherical_to_cartesian(spherical[:, 0], spherical[:, 1], spherical[:, 2])
    return cameras.look_at(eye).float(), views


# ------------------------------------------------------------------ dataset
def check_dataset_arguments(num_train: int, num_val: int, num_views: int, size: int, seed: int,
                            mesh_resolution: int) -> None:
    """Raise ``ValueError`` with a one-line reason for unusable dataset settings."""
    if num_train < 0 or num_val < 0:
        raise ValueError(f"object counts must be >= 0, got num_train={num_train}, num_val={num_val}")
    if num_views < 1:
        raise ValueError(f"num_views must be >= 1, got {num_views}")
    if size < MIN_IMAGE_SIZE:
        raise ValueError(f"size must be >= {MIN_IMAGE_SIZE} pixels, got {size}")
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    if mesh_resolution < 8:
        raise ValueError(f"mesh_resolution must be >= 8, got {mesh_resolution}")


def check_writable_directory(path: str | Path) -> Path:
    """Create ``path`` if needed and make sure files can be written there (``OSError`` otherwise)."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OSError(f"cannot create output directory {path}: {error.strerror or error}") from error
    if not path.is_dir() or not os.access(path, os.W_OK | os.X_OK):
        raise OSError(f"output directory {path} is not a writable directory")
    return path


def _to_bytes(rgba: Tensor) -> np.ndarray:
    """(V, 4, H, W) float in [0, 1] -> (V, H, W, 4) uint8."""
    return (rgba.clamp(0.0, 1.0) * 255.0).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


def write_procedural_dataset(output_dir: str | Path, num_train: int, num_val: int, num_views: int = 16,
                             size: int = 128, seed: int = 0, mesh_resolution: int = 128,
                             device: torch.device | str = "cpu", supersample: int = 2,
                             max_steps: int = 64) -> Path:
    """Render a dataset of procedural objects in our render layout (readable by ``mira.data``).

    Train objects are indices ``0 .. num_train - 1``, val objects ``VAL_OFFSET + 0 .. num_val - 1``
    (disjoint). Each ``<output_dir>/procedural_<index>/`` holds ``000.png ...`` (RGBA),
    ``transforms.json``, ``000.npy ...``, ``metadata.json``, ``mesh.ply`` (normalised frame, vertex
    colours) and the ``.done`` marker; ``<output_dir>/index.json`` lists the splits. Objects whose
    folder is already done are kept (the writer resumes).

    Returns:
        ``output_dir``.
    """
    from mira.data.formats import write_object_views
    from mira.data.index import INDEX_FILE, read_done_marker, write_done_marker

    check_dataset_arguments(num_train, num_val, num_views, size, seed, mesh_resolution)
    output_dir = check_writable_directory(output_dir)
    splits = {"train": list(range(num_train)), "val": [VAL_OFFSET + i for i in range(num_val)]}
    intrinsics = cameras.intrinsics_from_fov(cameras.ZERO123_FOV_DEG)
    todo = [i for split in splits.values() for i in split
            if read_done_marker(output_dir / OBJECT_ID_FORMAT.format(i)) is None]
    for start in range(0, len(todo), OBJECTS_PER_BATCH):
        batch = todo[start:start + OBJECTS_PER_BATCH]
        started = time.perf_counter()
        objects = sample_objects(batch, seed, device)
        poses, views = zip(*(sample_cameras(i, seed, num_views) for i in batch))
        c2w = torch.stack(poses)
        with torch.no_grad():
            rgba = render_views(objects, c2w.to(objects.device), intrinsics.expand(len(batch), num_views, 4),
                                size, size, supersample=supersample, max_steps=max_steps)
        seconds = (time.perf_counter() - started) / len(batch)
        lighting = default_lighting(1).describe(0)
        for row, index in enumerate(batch):
            object_id = OBJECT_ID_FORMAT.format(index)
            folder = output_dir / object_id
            metadata = {
                "object_id": object_id,
                "source": "mira.data.procedural",
                "procedural": objects.describe(row),
                "normalization": {"mode": "sphere", "radius": PROCEDURAL_RADIUS,
                                  "convention": "x_rendered = scale * x_raw + offset",
                                  "scale": float(objects.scale[row]), "offset": objects.offset[row].tolist()},
                "engine": "mira.data.procedural (sphere tracing)",
                "resolution": size, "num_renders": num_views, "supersample": supersample, "max_steps": max_steps,
                "camera": {"fov_x_deg": cameras.ZERO123_FOV_DEG, "distance_range": list(CAMERA_DISTANCE),
                           "elevation_range": list(ELEVATION_DEG), "views": list(views[row]),
                           "transforms_json": "c2w, OpenGL/Blender camera axes",
                           "npy": "3x4 w2c, Blender camera axes (zero123)"},
                "lighting": {"mode": "default", **lighting},
                "seed": seed, "render_seconds": seconds,
                "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            }
            write_object_views(folder, _to_bytes(rgba[row]), c2w[row], intrinsics, metadata)
            save_object_mesh(object_mesh(objects, row, mesh_resolution), folder / "mesh.ply")
            write_done_marker(folder, {"object_id": object_id, "status": "done", "seconds": seconds})
    index = {"train": [OBJECT_ID_FORMAT.format(i) for i in splits["train"]],
             "val": [OBJECT_ID_FORMAT.format(i) for i in splits["val"]],
             "procedural": {"seed": seed, "num_views": num_views, "size": size, "val_offset": VAL_OFFSET}}
    write_json_atomic(index, output_dir / INDEX_FILE)
    return output_dir
