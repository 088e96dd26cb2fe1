"""Shared fixtures of the evaluation tests: an analytically ray-traced coloured box.

The box is rendered by exact ray / box intersection (no MIRA renderer involved), with 4 x 4
supersampling per pixel like a real renderer's antialiasing, through the cameras of
:mod:`mira.cameras`. It has an exact ground-truth mesh (a trimesh box).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import trimesh

from mira.cameras import ZERO123_FOV_DEG, image_rays, intrinsics_from_fov, look_at, spherical_to_cartesian

# Half extents of the box (world units) and the colour of each face (+X, -X, +Y, -Y, +Z, -Z).
BOX_HALF_EXTENTS = (0.5, 0.35, 0.25)
FACE_COLORS = np.array(
    [[0.9, 0.1, 0.1], [0.1, 0.6, 0.9], [0.1, 0.8, 0.2], [0.9, 0.8, 0.1], [0.6, 0.2, 0.8], [0.2, 0.2, 0.2]]
)


@dataclass
class AnalyticViews:
    """Same fields as ``mira.data.ObjectViews``."""

    images: torch.Tensor  # (N, 4, H, W)
    c2w: torch.Tensor  # (N, 4, 4) OpenCV
    intrinsics: torch.Tensor  # (N, 4)
    names: list[str]
    mesh_path: Path | None = None


def box_mesh() -> trimesh.Trimesh:
    """The ground-truth box mesh."""
    return trimesh.creation.box(extents=2 * np.asarray(BOX_HALF_EXTENTS))


def trace_box(origins: np.ndarray, directions: np.ndarray) -> np.ndarray:
    """RGBA (N, 4) of rays (N, 3) against the coloured box (slab method, exact)."""
    half = np.asarray(BOX_HALF_EXTENTS)
    with np.errstate(divide="ignore", invalid="ignore"):
        t1 = (-half - origins) / directions
        t2 = (half - origins) / directions
    t_near = np.minimum(t1, t2)
    t_enter = t_near.max(axis=1)
    t_exit = np.maximum(t1, t2).min(axis=1)
    hit = (t_exit > t_enter) & (t_enter > 0)
    axis = t_near.argmax(axis=1)
    point = origins + t_enter[:, None] * directions
    sign = np.sign(point[np.arange(len(point)), axis])
    face = 2 * axis + (sign < 0)
    rgba = np.zeros((len(origins), 4))
    rgba[hit, :3] = FACE_COLORS[face[hit]]
    rgba[hit, 3] = 1.0
    return rgba


def orbit_views(num_views: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Cameras spread over azimuth with elevations in [-10, 50] deg and distances in [2.2, 2.8]."""
    rng = np.random.default_rng(seed)
    azimuth = torch.tensor(np.arange(num_views) * 360.0 / num_views + rng.uniform(0, 10, num_views))
    elevation = torch.tensor(rng.uniform(-10, 50, num_views))
    distance = torch.tensor(rng.uniform(2.2, 2.8, num_views))
    c2w = look_at(spherical_to_cartesian(azimuth, elevation, distance)).float()
    intrinsics = intrinsics_from_fov(ZERO123_FOV_DEG).expand(num_views, 4).clone()
    return c2w, intrinsics


def render_box_views(num_views: int = 16, size: int = 32, supersample: int = 4, seed: int = 0) -> AnalyticViews:
    """RGBA renders (N, 4, size, size) of the box, antialiased by ``supersample``^2 rays per pixel."""
    c2w, intrinsics = orbit_views(num_views, seed)
    fine = size * supersample
    origins, directions = image_rays(c2w.double(), intrinsics.double(), fine, fine)
    rgba = trace_box(origins.reshape(-1, 3).numpy(), directions.reshape(-1, 3).numpy())
    rgba = torch.from_numpy(rgba).float().reshape(num_views, fine, fine, 4).permute(0, 3, 1, 2)
    # Straight alpha after averaging premultiplied colour.
    premultiplied = torch.cat([rgba[:, :3] * rgba[:, 3:], rgba[:, 3:]], dim=1)
    pooled = torch.nn.functional.avg_pool2d(premultiplied, supersample)
    alpha = pooled[:, 3:]
    rgb = torch.where(alpha > 0, pooled[:, :3] / alpha.clamp_min(1e-8), torch.zeros_like(pooled[:, :3]))
    images = torch.cat([rgb, alpha], dim=1)
    return AnalyticViews(images=images, c2w=c2w, intrinsics=intrinsics, names=[f"{i:03d}" for i in range(num_views)])


# ---------------------------------------------------------------------- round-trip object
def make_roundtrip_object() -> trimesh.Trimesh:
    """A vertex-coloured object with no mirror symmetry: a box with six face colours, an orange
    ball on one upper corner and a white post on another (so a mirrored or rotated world frame
    changes the geometry, and face colours make misaligned views visible)."""
    box = trimesh.creation.box(extents=(0.9, 0.6, 0.45)).subdivide()
    box.unmerge_vertices()  # flat per-face colours
    normals = box.face_normals
    axis = np.abs(normals).argmax(axis=1)
    face_kind = 2 * axis + (normals[np.arange(len(normals)), axis] < 0)
    palette = np.array([[230, 40, 40], [40, 150, 230], [40, 200, 60], [230, 200, 30], [150, 50, 200], [60, 60, 60]])
    colours = np.zeros((len(box.vertices), 4), dtype=np.uint8)
    colours[:, 3] = 255
    for face, kind in zip(box.faces, face_kind):
        colours[face, :3] = palette[kind]
    box.visual = trimesh.visual.ColorVisuals(box, vertex_colors=colours)
    ball = trimesh.creation.icosphere(subdivisions=2, radius=0.22)
    ball.apply_translation((0.35, 0.2, 0.3))
    ball.visual = trimesh.visual.ColorVisuals(ball, vertex_colors=np.tile([250, 140, 20, 255], (len(ball.vertices), 1)).astype(np.uint8))
    post = trimesh.creation.cylinder(radius=0.08, height=0.5, sections=12)
    post.apply_translation((-0.3, -0.15, 0.4))
    post.visual = trimesh.visual.ColorVisuals(post, vertex_colors=np.tile([240, 240, 240, 255], (len(post.vertices), 1)).astype(np.uint8))
    return trimesh.util.concatenate([box, ball, post])


# ---------------------------------------------------------------------- camera bugs
def with_cameras(views, c2w: torch.Tensor | None = None, intrinsics: torch.Tensor | None = None):
    """A copy of ``views`` (an ObjectViews) with other cameras."""
    import dataclasses

    return dataclasses.replace(
        views,
        c2w=views.c2w.clone() if c2w is None else c2w,
        intrinsics=views.intrinsics.clone() if intrinsics is None else intrinsics,
    )


def perturb_cameras(views, kind: str, render_size: int):
    """The views as a reader with a classic camera bug would load them.

    * ``opengl_camera_axes``: Blender/OpenGL camera axes (+Y up, +Z back) taken as OpenCV's
      (the missing ``opengl_to_opencv``): every camera looks away from the object.
    * ``w2c_as_c2w``: the world-to-camera matrix used as camera-to-world (inverse convention).
    * ``world_axis_flip``: the world's Y axis flipped (e.g. a handedness / axis-swap bug in a
      converter): the views stay consistent, of a mirrored object; only geometry can tell.
    * ``half_pixel``: pixel centres at integer coordinates instead of +0.5, i.e. the principal
      point off by half a pixel (of the fitted resolution) in x and y.
    """
    from mira.cameras import invert_rigid, opencv_to_opengl

    if kind == "opengl_camera_axes":
        return with_cameras(views, c2w=opencv_to_opengl(views.c2w))
    if kind == "w2c_as_c2w":
        return with_cameras(views, c2w=invert_rigid(views.c2w))
    if kind == "world_axis_flip":
        flip = torch.diag(torch.tensor([1.0, -1.0, 1.0, 1.0]))
        return with_cameras(views, c2w=flip @ views.c2w)
    if kind == "half_pixel":
        intrinsics = views.intrinsics.clone()
        intrinsics[:, 2:] += 0.5 / render_size
        return with_cameras(views, intrinsics=intrinsics)
    raise ValueError(f"unknown perturbation {kind}")


# ---------------------------------------------------------------------- datasets without Blender
def write_sphere_dataset(root: Path, num_val: int = 2, num_views: int = 4, size: int = 32, seed: int = 3) -> Path:
    """Analytic sphere objects in our render format (index.json, one train object) with the
    matching ground-truth ``mesh.ply`` (icospheres) in every val object."""
    import json

    from mira.training.synthetic_scenes import VAL_OBJECT_OFFSET, make_scene, write_synthetic_dataset

    write_synthetic_dataset(root, num_train=1, num_val=num_val, num_views=num_views, size=size, seed=seed)
    index = json.loads((root / "index.json").read_text())
    for i, object_id in enumerate(index["val"]):
        scene = make_scene(VAL_OBJECT_OFFSET + i, seed)
        parts = []
        for centre, radius in zip(scene.centers.tolist(), scene.radii.tolist()):
            part = trimesh.creation.icosphere(subdivisions=3, radius=radius)
            part.apply_translation(centre)
            parts.append(part)
        trimesh.util.concatenate(parts).export(root / object_id / "mesh.ply")
    return root
