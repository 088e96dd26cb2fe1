"""Empty-space skipping: the occupancy grid marks the matter, and skipping renders what the exhaustive renderer does."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from helpers_inference import AnalyticField, position_color, sphere_renderer
from mira.cameras import orbit_cameras, pixel_centers, rays_from_pixels
from mira.rendering.occupancy import OccupancyGrid

INTRINSICS = torch.tensor([[[1.2, 1.2, 0.5, 0.5]]])


def ball_field(center=(0.3, -0.2, 0.1), radius=0.35):
    """A hard ball of density 50 (zero outside) in the [-1, 1] box."""
    c = torch.tensor(center, dtype=torch.float64)
    return AnalyticField(lambda p: 50.0 * ((p - c).norm(dim=-1) < radius).double(), position_color), c, radius


def test_grid_marks_the_ball_and_little_else():
    field, center, radius = ball_field()
    grid = OccupancyGrid.from_field(field, torch.zeros(1, 3, 1, 2, 2), resolution=32, dilation=1)
    cell = 2.0 / 32
    centres = torch.stack(torch.meshgrid(*[torch.linspace(-1 + cell / 2, 1 - cell / 2, 32)] * 3, indexing="ij"), -1)
    distance = (centres.double() - center).norm(dim=-1)
    assert grid.occupied[distance < radius - cell].all()  # every cell inside the ball
    assert not grid.occupied[distance > radius + 3 * cell].any()  # nothing beyond the dilated shell
    ball_fraction = 4 / 3 * np.pi * radius**3 / 8
    assert ball_fraction < grid.occupied_fraction < 3.0 * ball_fraction  # measured 2.65x: corner hits + dilation
    # contains(): world points map to their cells; outside the box is empty.
    points = torch.tensor([[0.3, -0.2, 0.1], [-0.9, 0.9, -0.9], [1.5, 0.0, 0.0]])
    assert grid.contains(points).tolist() == [True, False, False]


def test_grid_probes_cell_centres_and_corners():
    """A slab between corner probes (x in [0.005, 0.025], corners at 0 and 0.03125) is found by the centres."""
    field = AnalyticField(lambda p: 10.0 * ((p[:, 0] > 0.005) & (p[:, 0] < 0.025)).double(), position_color)
    grid = OccupancyGrid.from_field(field, torch.zeros(1, 3, 1, 2, 2), resolution=64, dilation=0)
    assert grid.occupied[32].all() and grid.occupied.sum() == 64 * 64


@pytest.mark.parametrize("elevation", [0.0, 35.0])
def test_skipping_matches_the_exhaustive_render_with_fewer_field_queries(elevation, monkeypatch):
    renderer, triplanes, _ = sphere_renderer(center=(0.1, -0.15, 0.05), radius=0.45, threshold=5.0, steepness=200.0)
    grid = OccupancyGrid.from_field(renderer, triplanes, resolution=48)
    c2w = orbit_cameras(3, elevation, 2.4)[None]
    queried = []
    original = renderer.point_field
    monkeypatch.setattr(renderer, "point_field", lambda t, p: (queried.append(p.shape[1]), original(t, p))[1])
    with torch.no_grad():
        exhaustive = renderer.render_images(triplanes, c2w, INTRINSICS.expand(1, 3, 4), 40, 40)
        exhaustive_points = sum(queried)
        queried.clear()
        skipped = renderer.render_images(triplanes, c2w, INTRINSICS.expand(1, 3, 4), 40, 40, occupancy=grid)
    assert sum(queried) < 0.5 * exhaustive_points
    for key in ("rgb", "opacity"):
        mse = (exhaustive[key] - skipped[key]).pow(2).mean().item()
        assert 10 * np.log10(1.0 / max(mse, 1e-12)) > 45.0, key
    assert exhaustive["opacity"].mean() > 0.1  # the sphere is in view


def test_grid_belongs_to_one_triplane():
    renderer, triplanes, _ = sphere_renderer(center=(0.0, 0.0, 0.0), radius=0.4, threshold=5.0)
    grid = OccupancyGrid.from_field(renderer, triplanes, resolution=16)
    with pytest.raises(ValueError, match="one triplane"):
        renderer(triplanes.expand(2, -1, -1, -1, -1), torch.zeros(2, 4, 3), torch.ones(2, 4, 3) / 3**0.5, occupancy=grid)
    with pytest.raises(ValueError, match="one triplane"):
        OccupancyGrid.from_field(renderer, triplanes.expand(2, -1, -1, -1, -1))


@pytest.mark.parametrize("marching", ["mira", "eg3d", "normalized_midpoint"])
def test_rays_missing_the_occupied_cells_get_the_background_they_would_composite(marching):
    """Skipping renders only the rays that meet the occupied cells' bounding box; every pixel equals the
    render of all rays with the same grid (the culled rays composite nothing), for each ray marcher."""
    overrides = {"ray_marching": marching}
    if marching == "normalized_midpoint":
        overrides["importance_samples_per_ray"] = 0
    renderer, triplanes, _ = sphere_renderer(center=(0.2, -0.1, 0.05), radius=0.3, threshold=5.0, steepness=200.0,
                                             overrides=overrides)
    grid = OccupancyGrid.from_field(renderer, triplanes, resolution=32)
    low, high = grid.bounds()
    assert bool((low > -1).all() and (high < 1).all())  # a small ball: most rays are culled
    c2w = orbit_cameras(2, 20.0, 2.4)[None]
    background = torch.tensor([[0.2, 0.5, 0.9]])
    with torch.no_grad():
        culled = renderer.render_images(triplanes, c2w, INTRINSICS.expand(1, 2, 4), 24, 24, background, occupancy=grid)
        uv = pixel_centers(24, 24).expand(2, -1, -1)
        origins, directions = rays_from_pixels(c2w[0], INTRINSICS[0].expand(2, 4), uv, 24, 24)
        every_ray = renderer._render_rays(triplanes, origins.reshape(1, -1, 3), directions.reshape(1, -1, 3),
                                          background[:, None], grid)
    for key in ("rgb", "depth", "opacity"):
        expected = every_ray[key].reshape(1, 2, 24, 24, -1).permute(0, 1, 4, 2, 3)
        torch.testing.assert_close(culled[key], expected, rtol=0, atol=1e-6)
    assert (culled["opacity"] == 0).float().mean() > 0.3


def test_an_empty_grid_renders_the_background():
    renderer, triplanes, _ = sphere_renderer(center=(0.0, 0.0, 0.0), radius=0.3, threshold=5.0)
    empty = OccupancyGrid(torch.zeros(8, 8, 8, dtype=torch.bool), renderer.box_min, renderer.box_max)
    assert empty.bounds() is None
    with torch.no_grad():
        out = renderer.render_images(triplanes, orbit_cameras(1, 0.0, 2.4)[None], INTRINSICS, 8, 8, occupancy=empty)
    torch.testing.assert_close(out["rgb"], renderer.background.view(1, 1, 3, 1, 1).expand(1, 1, 3, 8, 8))
    assert bool((out["opacity"] == 0).all() and (out["depth"] == 0).all())
