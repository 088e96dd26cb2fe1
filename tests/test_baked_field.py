"""Video from a baked field (mira.rendering.baked_field): the grid holds the field's own values, an
occupancy grid only limits where it is evaluated, and the shipped model's frames match the exact
renderer's to better than 40 dB."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from helpers_inference import REPO_ROOT, sphere_renderer
from mira.cameras import orbit_cameras
from mira.inference.errors import InferenceError
from mira.inference.pipeline import CPU_DEFAULTS, GPU_DEFAULTS, InferenceSettings
from mira.rendering.baked_field import EMPTY_BAKED_LOGIT, BakedField, renderer_with_baked_field
from mira.rendering.occupancy import OccupancyGrid

INTRINSICS = torch.tensor([[[1.2, 1.2, 0.5, 0.5]]])


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(10 * np.log10(1.0 / max((a - b).pow(2).mean().item(), 1e-12)))


def test_baked_values_are_the_field_at_grid_points():
    renderer, triplanes, _ = sphere_renderer(center=(0.1, -0.15, 0.05), radius=0.45, threshold=5.0, steepness=20.0)
    baked = BakedField.from_renderer(renderer, triplanes, resolution=9)
    steps = torch.linspace(-1.0, 1.0, 9)
    points = torch.stack(torch.meshgrid(steps, steps, steps, indexing="ij"), -1).reshape(1, -1, 3)
    with torch.no_grad():
        exact_logit, exact_rgb = renderer.point_logits(triplanes, points)
    logit, rgb = baked.point_logits(triplanes, points)
    torch.testing.assert_close(logit, exact_logit, atol=1e-4, rtol=1e-5)
    torch.testing.assert_close(rgb, exact_rgb, atol=1e-5, rtol=1e-5)
    # between grid points: trilinear interpolation of the eight neighbours
    middle = torch.tensor([[[0.125, 0.125, 0.125]]])  # the centre of the cell [0, 0.25]^3
    corners = torch.tensor([[[x, y, z] for x in (0.0, 0.25) for y in (0.0, 0.25) for z in (0.0, 0.25)]])
    torch.testing.assert_close(baked.point_logits(triplanes, middle)[0][0, 0],
                               baked.point_logits(triplanes, corners)[0][0].mean(0), atol=1e-4, rtol=1e-5)


def test_occupancy_limits_the_bake_to_occupied_cells():
    renderer, triplanes, _ = sphere_renderer(center=(0.3, -0.2, 0.1), radius=0.3, threshold=5.0, steepness=50.0)
    grid = OccupancyGrid.from_field(renderer, triplanes, resolution=32)
    full = BakedField.from_renderer(renderer, triplanes, resolution=33)
    limited = BakedField.from_renderer(renderer, triplanes, resolution=33, occupancy=grid)
    baked = limited.volume[0, 0] > EMPTY_BAKED_LOGIT
    assert 0.0 < baked.float().mean() < 0.5  # far fewer points evaluated than the whole grid
    torch.testing.assert_close(limited.volume[:, :, baked], full.volume[:, :, baked])
    c2w = orbit_cameras(3, 20.0, 2.4)[None]
    with torch.no_grad():
        exact = renderer.render_images(triplanes, c2w, INTRINSICS.expand(1, 3, 4), 32, 32, occupancy=grid)
        from_grid = renderer_with_baked_field(renderer, limited).render_images(
            triplanes, c2w, INTRINSICS.expand(1, 3, 4), 32, 32, occupancy=grid)
    assert psnr(exact["opacity"], from_grid["opacity"]) > 30.0  # a sharp sphere: the hardest case for a grid


def test_shipped_model_frames_from_the_baked_field_match_the_exact_ones():
    """The CPU video default (96^3) against the exact field on mira-demo and a shipped example."""
    from mira.data.source_view import SourceFraming
    from mira.inference.checkpoint import DEFAULT_CHECKPOINT, load_model
    from mira.inference.preprocess import image_to_float_rgba, load_image, preprocess_arrays

    model = load_model(str(DEFAULT_CHECKPOINT)).eval()
    rgb, alpha = image_to_float_rgba(load_image(REPO_ROOT / "docs" / "examples" / "procedural_000000000_blender.png"))
    prepared = preprocess_arrays(rgb, alpha, SourceFraming.from_config(model.config, None),
                                 model.config.renderer.background_color, None, name="example")
    with torch.no_grad():
        triplanes = model.forward_triplanes(prepared.image[None], prepared.c2w[None], prepared.intrinsics[None])
        grid = OccupancyGrid.from_field(model.renderer, triplanes)
        baked = BakedField.from_renderer(model.renderer, triplanes, CPU_DEFAULTS["video_bake_resolution"], grid)
        c2w = orbit_cameras(2, 20.0, 2.5)[None]
        intrinsics = prepared.intrinsics[None, None].expand(1, 2, 4)
        exact = model.renderer.render_images(triplanes, c2w, intrinsics, 48, 48, occupancy=grid)["rgb"]
        fast = renderer_with_baked_field(model.renderer, baked).render_images(
            triplanes, c2w, intrinsics, 48, 48, occupancy=grid)["rgb"]
    assert psnr(exact.clamp(0, 1), fast.clamp(0, 1)) > 40.0  # measured 55 dB (60 frames of 128^2)


def test_bake_resolution_defaults_and_validation():
    assert CPU_DEFAULTS["video_bake_resolution"] == 96 and GPU_DEFAULTS["video_bake_resolution"] == 256
    with pytest.raises(InferenceError, match="video_bake_resolution"):
        InferenceSettings(checkpoint_path="c", inputs=["x"], output_path="o", video_bake_resolution=4).validate()
    InferenceSettings(checkpoint_path="c", inputs=["x"], output_path="o", video_bake_resolution=0).validate()
    with pytest.raises(ValueError, match="one triplane"):
        BakedField.from_renderer(None, torch.zeros(2, 3, 4, 8, 8))
