"""The one place for camera maths in MIRA. ``docs/CAMERAS.md`` states the convention.

Convention, in short:

* **World frame**: right-handed, **+Z up** (Blender's world frame). Objects live in
  the box ``[-1, 1]^3`` by default.
* **Camera frame**: OpenCV: +X right, +Y down, +Z forward (the viewing direction).
* **Pose**: ``c2w`` is the 4x4 camera-to-world matrix, ``x_world = c2w @ x_cam``;
  its columns 0..2 are the camera axes in world coordinates and column 3 is the
  camera centre. ``w2c = inverse(c2w)``.
* **Intrinsics** are *normalised* by the image size: ``(fx/W, fy/H, cx/W, cy/H)``
  with pixel coordinates in which the image's top-left corner is ``(0, 0)`` and
  the centre of pixel (row i, column j) is ``(j + 0.5, i + 0.5)``. The same
  normalised intrinsics describe a camera at every resolution.

Other conventions enter and leave only through the converters here
(:func:`opengl_to_opencv`, :func:`opencv_to_opengl`, :func:`w2c_to_c2w`).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

WORLD_UP = (0.0, 0.0, 1.0)

# The zero123 / Objaverse "views_release" renders: Blender lens 35 mm on a 32 mm
# sensor, i.e. a horizontal field of view of 2 * atan(16 / 35) = 49.13 degrees.
ZERO123_FOV_DEG = math.degrees(2.0 * math.atan(16.0 / 35.0))


def _flip(c2w: Tensor) -> Tensor:
    """Flip of the camera's Y and Z axes, OpenGL/Blender (x right, y up, z back) <-> OpenCV (x right, y down,
    z forward), its own inverse: c2w @ diag(1, -1, -1, 1), the y and z columns negated. Device ops only (no
    constant copied from the host), so it can run inside a CUDA-graph capture (``graph_reconstruction``)."""
    return torch.cat([c2w[..., :1], -c2w[..., 1:3], c2w[..., 3:]], dim=-1)


def opengl_to_opencv(c2w_gl: Tensor) -> Tensor:
    """Camera-to-world (..., 4, 4) with OpenGL/Blender camera axes -> OpenCV camera axes."""
    return _flip(c2w_gl)


def opencv_to_opengl(c2w_cv: Tensor) -> Tensor:
    """Camera-to-world (..., 4, 4) with OpenCV camera axes -> OpenGL/Blender camera axes."""
    return _flip(c2w_cv)


def to_homogeneous(pose: Tensor) -> Tensor:
    """(..., 3, 4) or (..., 4, 4) rigid transform -> (..., 4, 4)."""
    if pose.shape[-2:] == (4, 4):
        return pose
    if pose.shape[-2:] != (3, 4):
        raise ValueError(f"expected a (..., 3, 4) or (..., 4, 4) pose, got {tuple(pose.shape)}")
    bottom = torch.zeros(*pose.shape[:-2], 1, 4, dtype=pose.dtype, device=pose.device)
    bottom[..., 0, 3] = 1.0
    return torch.cat([pose, bottom], dim=-2)


def invert_rigid(pose: Tensor) -> Tensor:
    """Inverse of a rigid (rotation + translation) transform, (..., 3|4, 4) -> (..., 4, 4)."""
    pose = to_homogeneous(pose)
    rotation_t = pose[..., :3, :3].transpose(-1, -2)
    inverse = torch.zeros_like(pose)
    inverse[..., :3, :3] = rotation_t
    inverse[..., :3, 3] = -(rotation_t @ pose[..., :3, 3:4])[..., 0]
    inverse[..., 3, 3] = 1.0
    return inverse


def w2c_to_c2w(w2c: Tensor) -> Tensor:
    """World-to-camera (..., 3|4, 4) -> camera-to-world (..., 4, 4) (same camera axes)."""
    return invert_rigid(w2c)


def c2w_to_w2c(c2w: Tensor) -> Tensor:
    """Camera-to-world (..., 3|4, 4) -> world-to-camera (..., 4, 4) (same camera axes)."""
    return invert_rigid(c2w)


def look_at(eye: Tensor, target: Tensor | None = None, up: Tensor | None = None) -> Tensor:
    """OpenCV camera-to-world matrices of cameras at ``eye`` looking at ``target``.

    Args:
        eye: (..., 3) camera centres in world coordinates.
        target: (..., 3) points looked at; default the origin.
        up: (3,) or (..., 3) world up; default +Z. The camera's -Y axis (image up)
            lies in the plane of ``up`` and the viewing direction.
    Returns:
        (..., 4, 4) c2w; column 2 (camera +Z) points from ``eye`` to ``target``.
    """
    if target is None:
        target = torch.zeros_like(eye)
    if up is None:
        up = torch.tensor(WORLD_UP, dtype=eye.dtype, device=eye.device)
    up = up.expand_as(eye)
    forward = torch.nn.functional.normalize(target - eye, dim=-1)
    right = torch.linalg.cross(forward, up, dim=-1)
    # Looking straight along +-up: any right vector perpendicular to forward will do.
    degenerate = right.norm(dim=-1, keepdim=True) < 1e-6
    fallback = torch.linalg.cross(forward, torch.tensor([0.0, 1.0, 0.0], dtype=eye.dtype, device=eye.device).expand_as(eye), dim=-1)
    right = torch.where(degenerate, fallback, right)
    right = torch.nn.functional.normalize(right, dim=-1)
    down = torch.linalg.cross(forward, right, dim=-1)
    c2w = torch.zeros(*eye.shape[:-1], 4, 4, dtype=eye.dtype, device=eye.device)
    c2w[..., :3, 0] = right
    c2w[..., :3, 1] = down
    c2w[..., :3, 2] = forward
    c2w[..., :3, 3] = eye
    c2w[..., 3, 3] = 1.0
    return c2w


def spherical_to_cartesian(azimuth_deg: Tensor, elevation_deg: Tensor, distance: Tensor) -> Tensor:
    """Points on a sphere around the origin, Z up.

    Azimuth is measured from +X towards +Y; elevation from the XY plane towards +Z.
    All inputs broadcast; returns (..., 3).
    """
    azimuth = torch.deg2rad(azimuth_deg)
    elevation = torch.deg2rad(elevation_deg)
    return torch.stack(
        [
            distance * torch.cos(elevation) * torch.cos(azimuth),
            distance * torch.cos(elevation) * torch.sin(azimuth),
            distance * torch.sin(elevation),
        ],
        dim=-1,
    )


def cartesian_to_spherical(points: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Inverse of :func:`spherical_to_cartesian`: points (..., 3) -> ``(azimuth_deg, elevation_deg,
    distance)``, each (...). Azimuth in (-180, 180]; elevation in [-90, 90]; 0 degrees at the origin."""
    distance = points.norm(dim=-1)
    sine = (points[..., 2] / distance.clamp_min(1e-12)).clamp(-1.0, 1.0)
    elevation = torch.rad2deg(torch.asin(sine))
    azimuth = torch.rad2deg(torch.atan2(points[..., 1], points[..., 0]))
    return azimuth, elevation, distance


def camera_centers(c2w: Tensor) -> Tensor:
    """Camera centres in world coordinates: c2w (..., 4, 4) -> (..., 3)."""
    return c2w[..., :3, 3]


def orbit_cameras(
    num_views: int,
    elevation_deg: float = 20.0,
    distance: float = 2.0,
    start_azimuth_deg: float = 0.0,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> Tensor:
    """``num_views`` OpenCV c2w matrices (N, 4, 4) evenly spaced on a circle, looking at the origin."""
    azimuth = start_azimuth_deg + torch.arange(num_views, dtype=dtype, device=device) * (360.0 / num_views)
    elevation = torch.full_like(azimuth, elevation_deg)
    eye = spherical_to_cartesian(azimuth, elevation, torch.full_like(azimuth, distance))
    return look_at(eye)


def default_source_camera(
    distance: float = 2.0,
    elevation_deg: float = 0.0,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> Tensor:
    """A camera at azimuth 0 and the given elevation and distance, looking at the origin: (4, 4) c2w."""
    return orbit_cameras(1, elevation_deg, distance, 0.0, dtype=dtype, device=device)[0]


# ---------------------------------------------------------------------- the canonical source frame
def canonical_source_c2w(distance: Tensor, azimuth_deg: float = 0.0) -> Tensor:
    """The canonical source pose at ``distance`` (...,): (..., 4, 4) OpenCV c2w.

    The camera sits at elevation 0 and ``azimuth_deg`` (``data.source_camera_azimuth_deg``), by
    default on the +X axis (image right is world +Y, image down is world -Z), looking at the origin
    with +Z up; OpenLRM's source camera is at azimuth -90 (on -Y, looking along +Y). Every source
    view is re-expressed in the frame where its camera has this pose (:func:`source_to_canonical`).
    """
    # cos / sin rounded so that multiples of 90 degrees put the camera exactly on an axis.
    x, y = (round(f(math.radians(azimuth_deg)), 15) for f in (math.cos, math.sin))
    zeros = torch.zeros_like(distance)
    return look_at(torch.stack([distance * x, distance * y, zeros], dim=-1))


def similarity_scale(similarity: Tensor) -> Tensor:
    """The uniform scale ``s`` of similarity transforms ``[[s R, t], [0, 1]]`` (..., 4, 4) -> (...,)."""
    return similarity[..., :3, 0].norm(dim=-1)


def source_to_canonical(source_c2w: Tensor, canonical_distance: Tensor, azimuth_deg: float = 0.0) -> Tensor:
    """The similarity transform that moves a source camera to the canonical source pose.

    ``x' = s R (x - c) + c'`` with ``R = R' R^T`` (the source camera's rotation ``R`` onto the
    canonical one ``R'``), ``c`` / ``c'`` the source / canonical camera centres and
    ``s = canonical_distance / z0``, where ``z0`` is the depth of the world origin in the source
    camera (its distance when it looks at the origin). Applied to the whole scene (cameras with
    :func:`transform_cameras`, points with :func:`transform_points`) it changes no image: the
    source camera ends up exactly at :func:`canonical_source_c2w` and the world origin (the object
    centre) stays at the origin when the source camera looks at it.

    Args:
        source_c2w: (..., 4, 4) OpenCV camera-to-world of the source views.
        canonical_distance: (...,) distance of the canonical camera from the origin.
        azimuth_deg: azimuth of the canonical camera (:func:`canonical_source_c2w`).
    Returns:
        (..., 4, 4) similarity ``[[s R, t], [0, 1]]`` (world -> canonical world).
    """
    canonical = canonical_source_c2w(canonical_distance.to(source_c2w.dtype), azimuth_deg)
    rotation = canonical[..., :3, :3] @ source_c2w[..., :3, :3].transpose(-1, -2)
    centre = source_c2w[..., :3, 3]
    origin_depth = -(centre * source_c2w[..., :3, 2]).sum(-1)  # z of the world origin in the source camera
    if bool((origin_depth <= 0).any()):
        raise ValueError("source_to_canonical: the world origin (object centre) is behind a source camera")
    scale = canonical_distance.to(source_c2w.dtype) / origin_depth
    similarity = torch.zeros_like(source_c2w)
    similarity[..., :3, :3] = scale[..., None, None] * rotation
    similarity[..., :3, 3] = canonical[..., :3, 3] - scale[..., None] * (rotation @ centre[..., None])[..., 0]
    similarity[..., 3, 3] = 1.0
    return similarity


def transform_points(similarity: Tensor, points: Tensor) -> Tensor:
    """Apply similarity transforms (B, 4, 4) to points (B, N, 3) -> (B, N, 3)."""
    return points @ similarity[:, :3, :3].transpose(-1, -2) + similarity[:, None, :3, 3]


def transform_cameras(similarity: Tensor, c2w: Tensor) -> Tensor:
    """Move cameras c2w (B, V, 4, 4) with the scene under similarities (B, 4, 4) -> (B, V, 4, 4).

    The camera centre is transformed like a point and its axes are rotated (the scale only
    moves the centre), so an image a camera sees of the transformed scene is unchanged.
    """
    moved = similarity[:, None] @ c2w
    moved[..., :3, :3] = moved[..., :3, :3] / similarity_scale(similarity)[:, None, None, None]
    return moved


# ---------------------------------------------------------------------- intrinsics
def normalize_intrinsics(fx: float, fy: float, cx: float, cy: float, width: int, height: int) -> Tensor:
    """Pixel intrinsics -> normalised (4,) tensor ``(fx/W, fy/H, cx/W, cy/H)``."""
    return torch.tensor([fx / width, fy / height, cx / width, cy / height], dtype=torch.float32)


def intrinsics_from_fov(fov_x_deg: float, fov_y_deg: float | None = None) -> Tensor:
    """Normalised (4,) intrinsics of a centred pinhole camera with the given field(s) of view."""
    fov_y_deg = fov_x_deg if fov_y_deg is None else fov_y_deg
    fx = 0.5 / math.tan(math.radians(fov_x_deg) / 2.0)
    fy = 0.5 / math.tan(math.radians(fov_y_deg) / 2.0)
    return torch.tensor([fx, fy, 0.5, 0.5], dtype=torch.float32)


def intrinsics_matrix(intrinsics: Tensor, width: int, height: int) -> Tensor:
    """Normalised (..., 4) intrinsics -> pixel 3x3 matrices K (..., 3, 3) for a W x H image."""
    fx, fy, cx, cy = intrinsics.unbind(-1)
    K = torch.zeros(*intrinsics.shape[:-1], 3, 3, dtype=intrinsics.dtype, device=intrinsics.device)
    K[..., 0, 0] = fx * width
    K[..., 1, 1] = fy * height
    K[..., 0, 2] = cx * width
    K[..., 1, 2] = cy * height
    K[..., 2, 2] = 1.0
    return K


def crop_intrinsics(intrinsics: Tensor, box: tuple[float, float, float, float], width: int, height: int) -> Tensor:
    """Normalised intrinsics (..., 4) of the crop ``box = (left, top, right, bottom)`` in pixels
    of a ``width`` x ``height`` image; valid for any later resize of the crop."""
    left, top, right, bottom = box
    crop_w, crop_h = right - left, bottom - top
    fx, fy, cx, cy = intrinsics.unbind(-1)
    return torch.stack(
        [fx * width / crop_w, fy * height / crop_h, (cx * width - left) / crop_w, (cy * height - top) / crop_h],
        dim=-1,
    )


def camera_vector(c2w: Tensor, intrinsics: Tensor, layout: str = "c2w4x4_opencv") -> Tensor:
    """The model's source-camera input (``model.camera_vector_layout``).

    Args:
        c2w: (..., 4, 4) OpenCV camera-to-world.
        intrinsics: (..., 4) normalised fx, fy, cx, cy.
        layout: "c2w4x4_opencv": the flattened c2w (16, row-major) + intrinsics (4) -> (..., 20);
            "c2w3x4_opengl": the top three rows of the c2w in OpenGL camera axes (12, row-major)
            + intrinsics (4) -> (..., 16), the vector OpenLRM's camera embedder reads.
    Returns:
        (..., 20) or (..., 16).
    """
    if layout == "c2w4x4_opencv":
        return torch.cat([c2w.flatten(-2), intrinsics], dim=-1)
    if layout == "c2w3x4_opengl":
        return torch.cat([opencv_to_opengl(c2w)[..., :3, :].flatten(-2), intrinsics], dim=-1)
    raise ValueError(f"camera vector layout must be 'c2w4x4_opencv' or 'c2w3x4_opengl', got '{layout}'")


# ---------------------------------------------------------------------- rays
def pixel_centers(height: int, width: int, device: torch.device | str | None = None) -> Tensor:
    """(H * W, 2) pixel-centre coordinates ``(u, v) = (j + 0.5, i + 0.5)``, row-major."""
    rows = torch.arange(height, dtype=torch.float32, device=device) + 0.5
    cols = torch.arange(width, dtype=torch.float32, device=device) + 0.5
    v, u = torch.meshgrid(rows, cols, indexing="ij")
    return torch.stack([u, v], dim=-1).reshape(-1, 2)


def rays_from_pixels(c2w: Tensor, intrinsics: Tensor, uv: Tensor, width: int, height: int) -> tuple[Tensor, Tensor]:
    """World-space rays through pixel coordinates.

    Args:
        c2w: (B, 4, 4) OpenCV camera-to-world.
        intrinsics: (B, 4) normalised fx, fy, cx, cy.
        uv: (B, N, 2) or (N, 2) pixel coordinates (u right, v down; pixel centres at +0.5).
        width, height: image size in pixels that ``uv`` refers to.
    Returns:
        origins (B, N, 3) and unit directions (B, N, 3).
    """
    if uv.dim() == 2:
        uv = uv.unsqueeze(0).expand(c2w.shape[0], -1, -1)
    uv = uv.to(c2w.dtype)
    fx, fy, cx, cy = (intrinsics.to(c2w.dtype)[:, None, k] for k in range(4))
    x = (uv[..., 0] / width - cx) / fx
    y = (uv[..., 1] / height - cy) / fy
    directions_cam = torch.stack([x, y, torch.ones_like(x)], dim=-1)  # (B, N, 3)
    directions = directions_cam @ c2w[:, :3, :3].transpose(-1, -2)
    directions = torch.nn.functional.normalize(directions, dim=-1)
    origins = c2w[:, None, :3, 3].expand_as(directions)
    return origins, directions


def image_rays(c2w: Tensor, intrinsics: Tensor, height: int, width: int) -> tuple[Tensor, Tensor]:
    """Rays through every pixel centre, row-major: origins and directions (B, H * W, 3)."""
    uv = pixel_centers(height, width, device=c2w.device)
    return rays_from_pixels(c2w, intrinsics, uv, width, height)


def project_points(points: Tensor, c2w: Tensor, intrinsics: Tensor, width: int, height: int) -> tuple[Tensor, Tensor]:
    """Project world points to pixel coordinates (inverse of :func:`rays_from_pixels`).

    Args:
        points: (B, N, 3) world points.
        c2w: (B, 4, 4) OpenCV camera-to-world.
        intrinsics: (B, 4) normalised.
    Returns:
        uv (B, N, 2) pixel coordinates and depth (B, N) along the camera's +Z.
    """
    w2c = c2w_to_w2c(c2w)
    cam = points @ w2c[:, :3, :3].transpose(-1, -2) + w2c[:, None, :3, 3]
    depth = cam[..., 2]
    K = intrinsics_matrix(intrinsics.to(points.dtype), width, height)
    pix = cam @ K.transpose(-1, -2)
    uv = pix[..., :2] / depth.unsqueeze(-1).clamp_min(1e-9)
    return uv, depth
