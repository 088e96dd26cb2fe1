"""The camera convention of docs/CAMERAS.md, checked on the functions that enforce it."""

from __future__ import annotations

import math

import pytest
import torch

from mira import cameras


def random_c2w(n: int, generator: torch.Generator) -> torch.Tensor:
    """(n, 4, 4) random rigid camera-to-world matrices looking at the origin."""
    eye = torch.randn(n, 3, generator=generator, dtype=torch.float64)
    eye = eye / eye.norm(dim=-1, keepdim=True) * (1.5 + torch.rand(n, 1, generator=generator, dtype=torch.float64))
    return cameras.look_at(eye)


def test_look_at_axes_follow_opencv_and_z_up() -> None:
    c2w = cameras.look_at(torch.tensor([[2.0, 0.0, 0.0]]))[0]
    right, down, forward, centre = c2w[:3, 0], c2w[:3, 1], c2w[:3, 2], c2w[:3, 3]
    torch.testing.assert_close(forward, torch.tensor([-1.0, 0.0, 0.0]))
    # Seen from +X looking at the origin with +Z up, image right is world +Y.
    torch.testing.assert_close(right, torch.tensor([0.0, 1.0, 0.0]))
    torch.testing.assert_close(down, torch.tensor([0.0, 0.0, -1.0]))
    torch.testing.assert_close(centre, torch.tensor([2.0, 0.0, 0.0]))
    assert torch.linalg.det(c2w[:3, :3]) == pytest.approx(1.0)


def test_look_at_straight_down_is_still_a_rotation() -> None:
    c2w = cameras.look_at(torch.tensor([[0.0, 0.0, 3.0]]))[0]
    rotation = c2w[:3, :3]
    torch.testing.assert_close(rotation.T @ rotation, torch.eye(3), atol=1e-6, rtol=0)
    torch.testing.assert_close(c2w[:3, 2], torch.tensor([0.0, 0.0, -1.0]))


def test_opengl_opencv_round_trip_and_axes() -> None:
    c2w_cv = random_c2w(5, torch.Generator().manual_seed(0))
    c2w_gl = cameras.opencv_to_opengl(c2w_cv)
    torch.testing.assert_close(cameras.opengl_to_opencv(c2w_gl), c2w_cv)
    # OpenGL cameras look down their -Z axis: the same direction as OpenCV +Z.
    torch.testing.assert_close(-c2w_gl[:, :3, 2], c2w_cv[:, :3, 2])
    torch.testing.assert_close(c2w_gl[:, :3, 3], c2w_cv[:, :3, 3])


def test_invert_rigid_matches_matrix_inverse() -> None:
    c2w = random_c2w(4, torch.Generator().manual_seed(1))
    torch.testing.assert_close(cameras.c2w_to_w2c(c2w), torch.linalg.inv(c2w))
    torch.testing.assert_close(cameras.w2c_to_c2w(cameras.c2w_to_w2c(c2w)[:, :3, :]), c2w)


def test_projection_inverts_rays() -> None:
    generator = torch.Generator().manual_seed(2)
    c2w = random_c2w(3, generator)
    intrinsics = torch.tensor([[1.1, 1.3, 0.45, 0.55]] * 3, dtype=torch.float64)
    width, height = 40, 30
    uv = torch.rand(3, 50, 2, generator=generator, dtype=torch.float64) * torch.tensor([width, height])
    origins, directions = cameras.rays_from_pixels(c2w, intrinsics, uv, width, height)
    depth_along_ray = 0.5 + torch.rand(3, 50, 1, generator=generator, dtype=torch.float64)
    points = origins + depth_along_ray * directions
    uv_back, depth = cameras.project_points(points, c2w, intrinsics, width, height)
    torch.testing.assert_close(uv_back, uv)
    assert (depth > 0).all()


def test_principal_point_ray_hits_target_and_pixel_centres() -> None:
    c2w = cameras.look_at(torch.tensor([[1.0, -2.0, 0.5]], dtype=torch.float64))
    intrinsics = torch.tensor([[1.0, 1.0, 0.5, 0.5]], dtype=torch.float64)
    origin, direction = cameras.rays_from_pixels(c2w, intrinsics, torch.tensor([[8.0, 8.0]]), 16, 16)
    distance = torch.tensor([1.0, -2.0, 0.5]).norm()
    torch.testing.assert_close(origin + distance * direction, torch.zeros(1, 1, 3, dtype=torch.float64))
    centres = cameras.pixel_centers(2, 3)
    torch.testing.assert_close(centres[0], torch.tensor([0.5, 0.5]))
    torch.testing.assert_close(centres[-1], torch.tensor([2.5, 1.5]))


def test_a_point_right_and_below_the_axis_lands_right_and_below_centre() -> None:
    c2w = cameras.look_at(torch.tensor([[0.0, -3.0, 0.0]]))  # looking along +Y, image right = +X
    intrinsics = torch.tensor([[1.0, 1.0, 0.5, 0.5]])
    uv, _ = cameras.project_points(torch.tensor([[[0.2, 0.0, -0.1]]]), c2w, intrinsics, 100, 100)
    assert uv[0, 0, 0] > 50 and uv[0, 0, 1] > 50


def test_intrinsics_from_fov_and_matrix() -> None:
    intrinsics = cameras.intrinsics_from_fov(cameras.ZERO123_FOV_DEG)
    assert intrinsics[0].item() == pytest.approx(35.0 / 32.0, rel=1e-6)
    K = cameras.intrinsics_matrix(intrinsics, 256, 128)
    assert K[0, 0].item() == pytest.approx(256 * 35.0 / 32.0, rel=1e-6)
    assert K[1, 1].item() == pytest.approx(128 * 35.0 / 32.0, rel=1e-6)
    assert (K[0, 2].item(), K[1, 2].item()) == (128.0, 64.0)
    assert math.degrees(2 * math.atan(0.5 / intrinsics[0].item())) == pytest.approx(cameras.ZERO123_FOV_DEG)


def test_crop_intrinsics_keeps_projection_of_points() -> None:
    generator = torch.Generator().manual_seed(3)
    c2w = random_c2w(1, generator)
    intrinsics = torch.tensor([[1.2, 1.2, 0.5, 0.5]], dtype=torch.float64)
    points = torch.randn(1, 20, 3, generator=generator, dtype=torch.float64) * 0.3
    uv, _ = cameras.project_points(points, c2w, intrinsics, 64, 64)
    box = (10.0, 6.0, 42.0, 38.0)  # a 32 x 32 crop, later resized to 128 x 128
    cropped = cameras.crop_intrinsics(intrinsics, box, 64, 64)
    uv_crop, _ = cameras.project_points(points, c2w, cropped, 128, 128)
    expected = (uv - torch.tensor([box[0], box[1]], dtype=torch.float64)) * (128 / 32)
    torch.testing.assert_close(uv_crop, expected)


def test_orbit_cameras_circle_the_origin() -> None:
    c2w = cameras.orbit_cameras(8, elevation_deg=30.0, distance=2.0)
    centres = c2w[:, :3, 3]
    torch.testing.assert_close(centres.norm(dim=-1), torch.full((8,), 2.0))
    torch.testing.assert_close(centres[:, 2], torch.full((8,), 2.0 * math.sin(math.radians(30.0))))
    # Each camera looks at the origin.
    torch.testing.assert_close(c2w[:, :3, 2], -centres / 2.0)
    torch.testing.assert_close(centres[0], torch.tensor([2.0 * math.cos(math.radians(30.0)), 0.0, 1.0]))


def test_cartesian_to_spherical_inverts_spherical_to_cartesian() -> None:
    azimuth = torch.tensor([0.0, 45.0, 135.0, -90.0, 179.0], dtype=torch.float64)
    elevation = torch.tensor([0.0, 20.0, -30.0, 89.0, -60.0], dtype=torch.float64)
    distance = torch.tensor([1.0, 2.5, 0.3, 4.0, 2.0], dtype=torch.float64)
    c2w = cameras.look_at(cameras.spherical_to_cartesian(azimuth, elevation, distance))
    for got, expected in zip(cameras.cartesian_to_spherical(cameras.camera_centers(c2w)), (azimuth, elevation, distance)):
        torch.testing.assert_close(got, expected)


def test_camera_vector_layout() -> None:
    c2w = cameras.default_source_camera(2.5)
    intrinsics = torch.tensor([1.0, 1.1, 0.5, 0.4])
    vector = cameras.camera_vector(c2w, intrinsics)
    assert vector.shape == (20,)
    torch.testing.assert_close(vector[:16].reshape(4, 4), c2w)
    torch.testing.assert_close(vector[16:], intrinsics)


def test_to_homogeneous_rejects_bad_shapes() -> None:
    with pytest.raises(ValueError, match="3, 4"):
        cameras.to_homogeneous(torch.zeros(3, 3))
