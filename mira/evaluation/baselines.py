"""A trivial baseline for the evaluation protocol: the best sphere the source view allows.

From the framed source view alone (the same source-view contract the model gets), the baseline
predicts a sphere centred at the origin of the canonical frame (the object centre) whose
silhouette in the source camera covers the same area as the object's mask, filled with the mean
colour of the object's pixels (flat, unlit). Every target view and the geometry are scored
exactly as a model's (``python -m mira.evaluate --baseline sphere``), so a model must beat it by
a clear margin to show that it reconstructs anything beyond a blob of the right size and colour.
"""

from __future__ import annotations

import math

from torch import Tensor

from mira.cameras import image_rays
from mira.data.source_view import SourceView

# Rays per pixel along each axis when the sphere is drawn (anti-aliased edges, like the renders).
SPHERE_SUPERSAMPLING = 4
# Subdivisions of the icosphere scored against the ground-truth mesh (2562 vertices).
SPHERE_MESH_SUBDIVISIONS = 4


def sphere_from_source(view: SourceView) -> tuple[float, Tensor]:
    """The sphere of one source view (batch of 1): radius (canonical units) and sRGB colour (3,).

    A sphere of radius r at distance d subtends tan(theta) = r / sqrt(d^2 - r^2); its silhouette is
    a disc of radius f * tan(theta) in image-width units, of area pi (f tan(theta))^2 in a unit
    square image. Matching the mask's area fraction A gives tan(theta) = sqrt(A / pi) / f.
    """
    alpha = view.alpha[0, 0]
    area = float(alpha.mean())
    focal = float(view.intrinsics[0, :2].mean())
    distance = float(view.c2w[0, :3, 3].norm())
    tangent = math.sqrt(area / math.pi) / focal
    radius = distance * math.sin(math.atan(tangent))
    weights = alpha.clamp_min(0.0)
    # The source image is the object over the background: undo the compositing where alpha > 0.
    background = view.image[0, :, 0, 0]
    premultiplied = view.image[0] - (1.0 - alpha) * background[:, None, None]
    colour = (premultiplied.sum(dim=(1, 2)) / weights.sum().clamp_min(1e-6)).clamp(0.0, 1.0)
    return radius, colour


def render_sphere(radius: float, colour: Tensor, c2w: Tensor, intrinsics: Tensor, size: int,
                  background: Tensor) -> dict[str, Tensor]:
    """A flat-coloured sphere at the origin seen by V cameras.

    Args:
        radius: sphere radius; colour: (3,) RGB; c2w: (V, 4, 4); intrinsics: (V, 4) normalised;
        size: image side; background: (3,) RGB.
    Returns:
        {"rgb": (V, 3, size, size), "opacity": (V, 1, size, size)} with anti-aliased coverage.
    """
    fine = size * SPHERE_SUPERSAMPLING
    origins, directions = image_rays(c2w.double(), intrinsics.double(), fine, fine)  # (V, N, 3)
    b = (origins * directions).sum(-1)
    c = (origins * origins).sum(-1) - radius * radius
    hit = ((b * b - c) > 0) & (b < 0)
    views = c2w.shape[0]
    coverage = hit.float().reshape(views, 1, size, SPHERE_SUPERSAMPLING, size, SPHERE_SUPERSAMPLING).mean(dim=(3, 5))
    rgb = coverage * colour.view(1, 3, 1, 1) + (1.0 - coverage) * background.view(1, 3, 1, 1)
    return {"rgb": rgb.float(), "opacity": coverage.float()}


def sphere_mesh(radius: float):
    """An icosphere of ``radius`` at the origin (trimesh)."""
    import trimesh

    return trimesh.creation.icosphere(subdivisions=SPHERE_MESH_SUBDIVISIONS, radius=radius)
