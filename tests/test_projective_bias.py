"""The projective attention bias (mira/models/projective_bias.py): its geometry against brute-force
projection, its place in the decoder (gradients, camera dependence, checkpoints) and its errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from mira import cameras
from mira.config import load_config
from mira.models import MIRA
from mira.models.projective_bias import (ProjectiveAttentionBias, initial_slopes, patch_centres,
                                         token_segments)
from mira.rendering.triplane import PLANE_AXES, PLANE_AXES_BY_NAME

TINY_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "tiny.json"
RESOLUTION, PATCH, SIZE = 4, 14, 168
FOCAL = 1.09375 / 0.85  # a framed source view's normalised focal


def canonical_camera(batch: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """The canonical source camera of the source-view contract, (B, 4, 4) and (B, 4)."""
    c2w = cameras.canonical_source_c2w(torch.full((batch,), 1.6 * FOCAL))
    intrinsics = torch.tensor([[FOCAL, FOCAL, 0.5, 0.5]]).expand(batch, 4)
    return c2w, intrinsics


def distances(c2w: torch.Tensor, intrinsics: torch.Tensor, plane_axes=PLANE_AXES) -> torch.Tensor:
    bias = ProjectiveAttentionBias(RESOLUTION, plane_axes, [-1.0] * 3, [1.0] * 3, PATCH)
    return bias(c2w, intrinsics, (SIZE, SIZE), 1 + (SIZE // PATCH) ** 2)


def test_facing_plane_token_looks_at_its_own_patch() -> None:
    """Canonical camera on +X looking along -X: image right = +Y, image down = -Z. The YZ token of high Y
    and low Z is nearest the bottom-right patches; an XY token of high Y sees a whole right-hand column."""
    d = distances(*canonical_camera())[0]
    grid = SIZE // PATCH
    assert torch.all(d[:, 0] == 0)  # the CLS token is never penalised
    yz_low_z_high_y = 2 * RESOLUTION**2 + 0 * RESOLUTION + (RESOLUTION - 1)
    row, col = divmod(int(d[yz_low_z_high_y, 1:].argmin()), grid)
    assert row >= grid - 3 and col >= grid - 3
    xy_high_y = 0 * RESOLUTION**2 + (RESOLUTION - 1) * RESOLUTION + 1
    near = (d[xy_high_y, 1:].view(grid, grid) < 0.3).nonzero()
    assert set(near[:, 0].tolist()) == set(range(grid))  # every row: the line along Z spans the image
    assert near[:, 1].min() >= grid - 3  # only right-hand columns


@pytest.mark.parametrize("plane_axes", sorted(PLANE_AXES_BY_NAME))
def test_segment_distance_equals_brute_force_projection(plane_axes: str) -> None:
    """A 3D line projects to a 2D segment: the analytic distance equals the distance to 400 points of the
    line projected one by one, for oblique cameras and off-centre principal points."""
    torch.manual_seed(0)
    eye = cameras.spherical_to_cartesian(torch.tensor([30.0, 200.0]), torch.tensor([25.0, -40.0]),
                                         torch.tensor([2.6, 3.1]))
    c2w = cameras.look_at(eye)
    intrinsics = torch.tensor([[1.2, 1.2, 0.45, 0.55], [1.5, 1.5, 0.6, 0.4]])
    axes = PLANE_AXES_BY_NAME[plane_axes]
    d = distances(c2w, intrinsics, axes)[:, :, 1:]
    ends = token_segments(RESOLUTION, axes, [-1.0] * 3, [1.0] * 3)  # (N, 2, 3)
    t = torch.linspace(0.0, 1.0, 400)
    points = ends[:, :1] + t[None, :, None] * (ends[:, 1:] - ends[:, :1])  # (N, 400, 3)
    for b in range(2):
        uv, depth = cameras.project_points(points.reshape(1, -1, 3), c2w[b:b + 1], intrinsics[b:b + 1], SIZE, SIZE)
        assert bool((depth > 0).all())
        uv = uv.view(-1, 400, 2) / PATCH
        centres = patch_centres(SIZE, SIZE, PATCH) / PATCH
        brute = ((uv[:, :, None] - centres[None, None]) ** 2).sum(-1).amin(1)  # (N, M)
        torch.testing.assert_close(d[b], brute, atol=2e-3, rtol=1e-3)


def test_initial_slopes_span_sharp_to_wide() -> None:
    slopes = initial_slopes(6)
    assert slopes[0] == pytest.approx(1.0) and slopes[-1] == pytest.approx(1 / 64)
    assert bool((slopes[1:] < slopes[:-1]).all())


def tiny_model(**overrides: object) -> MIRA:
    torch.manual_seed(0)
    return MIRA(load_config(TINY_CONFIG, projective_attention_bias=True, **overrides))


def test_decoder_with_bias_depends_on_the_camera_and_learns_its_slopes() -> None:
    model = tiny_model().train()
    images = torch.rand(2, 3, 56, 56)
    c2w, intrinsics = canonical_camera(2)
    shifted = intrinsics.clone()
    shifted[:, 2] += 0.2  # the same image, a principal point moved: other patches are near each token
    triplanes = model.forward_triplanes(images, c2w, intrinsics)
    with torch.no_grad():
        other = model.forward_triplanes(images, c2w, shifted)
    assert not torch.allclose(triplanes, other, atol=1e-4)
    triplanes.square().mean().backward()
    slope_grads = [block.locality.raw_slope.grad for block in model.decoder.blocks]
    assert all(g is not None and bool(g.abs().sum() > 0) for g in slope_grads)
    # Slopes are vectors: no weight decay.
    no_decay = {id(p) for p in model.trainable_parameter_groups(0.05)[1]["params"]}
    assert all(id(block.locality.raw_slope) in no_decay for block in model.decoder.blocks)


def test_without_bias_no_slopes_and_the_same_decoder_as_before() -> None:
    torch.manual_seed(0)
    plain = MIRA(load_config(TINY_CONFIG))
    assert not any("locality" in name for name, _ in plain.named_parameters())
    assert plain.decoder.projection is None


def test_bias_round_trips_through_save_pretrained(tmp_path: Path) -> None:
    model = tiny_model().eval()
    with torch.no_grad():
        for block in model.decoder.blocks:
            block.locality.raw_slope.add_(0.3)
    model.save_pretrained(tmp_path / "m")
    loaded = MIRA.from_pretrained(tmp_path / "m").eval()
    images = torch.rand(1, 3, 56, 56)
    c2w, intrinsics = canonical_camera(1)
    with torch.no_grad():
        torch.testing.assert_close(loaded.forward_triplanes(images, c2w, intrinsics),
                                   model.forward_triplanes(images, c2w, intrinsics))


def test_decoder_without_cameras_is_a_clear_error() -> None:
    model = tiny_model()
    tokens = model.encoder(torch.rand(1, 3, 56, 56))
    with pytest.raises(ValueError, match="projective_attention_bias"):
        model.decoder(tokens, None)


def test_config_key_is_known_and_typed() -> None:
    config = load_config(TINY_CONFIG, projective_attention_bias=True)
    assert config.model.projective_attention_bias is True
    with pytest.raises(Exception, match="projective_attention_bias"):
        load_config(TINY_CONFIG, projective_attention_bias="yes")
