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
