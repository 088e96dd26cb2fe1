"""Renderer tests against analytic cases (CPU, small sizes)."""

from __future__ import annotations

import math
from typing import Callable

import pytest
import torch
from torch import Tensor

from mira.cameras import intrinsics_from_fov, look_at, orbit_cameras, rays_from_pixels
from mira.config import RendererConfig
from mira.rendering import TriplaneRenderer, importance_samples, intersect_box, merge_samples, sample_triplane
from mira.rendering.ray_sampler import interval_edges, stratified_samples

TRIPLANE_DIM = 4
RES = 8


def make_config(**overrides) -> RendererConfig:
    values = dict(
        rendering_samples_per_ray=32,
        importance_samples_per_ray=32,
        mlp_hidden_dim=16,
        mlp_num_layers=3,
        ray_chunk_size=4096,
    )
    values.update(overrides)
    return RendererConfig(**values)


def random_triplanes(batch: int = 1, seed: int = 0) -> Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 3, TRIPLANE_DIM, RES, RES, generator=generator)


class AnalyticRenderer(TriplaneRenderer):
    """The real renderer (sampling, compositing, chunking) over a field given as a formula."""

    def __init__(self, cfg: RendererConfig, density: Callable[[Tensor], Tensor], color: tuple[float, float, float] = (1.0, 0.0, 0.0)):
        super().__init__(cfg, triplane_dim=TRIPLANE_DIM)
        self.density_fn = density
        self.register_buffer("color", torch.tensor(color), persistent=False)

    def point_field(self, triplanes: Tensor, points: Tensor) -> tuple[Tensor, Tensor]:
        density = self.density_fn(points).unsqueeze(-1)
        return density, self.color.to(points).expand(*points.shape[:-1], 3)


def ball_density(center: Tensor, radius: float, value: float = 1e4) -> Callable[[Tensor], Tensor]:
    return lambda points: value * ((points - center.to(points)).norm(dim=-1) < radius).to(points.dtype)


def ray_sphere_distance(origins: Tensor, directions: Tensor, center: Tensor, radius: float) -> tuple[Tensor, Tensor]:
    """First intersection distance (N,) of unit rays with a sphere, and whether they hit it."""
    offset = origins - center
    b = (offset * directions).sum(-1)
    c = (offset * offset).sum(-1) - radius**2
    disc = b * b - c
    return -b - disc.clamp_min(0).sqrt(), disc > 0


def set_constant_field(renderer: TriplaneRenderer, sigma: float, color_logit: float = 0.0) -> None:
    """Zero the last MLP layer so the real field outputs density ``sigma`` and one colour everywhere."""
    layer = renderer.field.output_layer
    with torch.no_grad():
        layer.weight.zero_()
        raw = math.log(math.expm1(sigma)) - renderer.field.density_bias  # softplus^-1
        layer.bias.copy_(torch.tensor([raw, color_logit, color_logit, color_logit]))


# ---------------------------------------------------------------------- ray sampling
def test_intersect_box_slab_method():
    box_min, box_max = -torch.ones(3), torch.ones(3)
    origins = torch.tensor([[-3.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 2.0, 0.0], [-3.0, 0.0, 0.0], [-3.0, -3.0, -3.0]])
    directions = torch.tensor([[1.0, 0, 0], [1.0, 0, 0], [1.0, 0, 0], [-1.0, 0, 0], [1.0, 1.0, 1.0]])
    directions = directions / directions.norm(dim=-1, keepdim=True)
    near, far, hit = intersect_box(origins, directions, box_min, box_max)
    assert hit[:, 0].tolist() == [True, True, False, False, True]
    s3 = math.sqrt(3.0)
    torch.testing.assert_close(near[:, 0], torch.tensor([2.0, 0.0, 0.0, 0.0, 2 * s3]))
    torch.testing.assert_close(far[:, 0], torch.tensor([4.0, 1.0, 0.0, 0.0, 4 * s3]))


def test_stratified_samples_jitter_in_training_midpoints_in_eval():
    near, far = torch.tensor([[1.0], [2.0]]), torch.tensor([[3.0], [2.5]])
    midpoints = stratified_samples(near, far, 4, jitter=False)
    torch.testing.assert_close(midpoints, torch.tensor([[1.25, 1.75, 2.25, 2.75], [2.0625, 2.1875, 2.3125, 2.4375]]))
    torch.manual_seed(0)
    first, second = stratified_samples(near, far, 4, jitter=True), stratified_samples(near, far, 4, jitter=True)
    assert not torch.equal(first, second)
    bin_width = (far - near) / 4
    bin_index = torch.floor((first - near) / bin_width)
    assert torch.equal(bin_index, torch.arange(4.0).expand(2, 4))  # one sample in each bin


def test_interval_edges_cover_near_far_exactly():
    near, far = torch.tensor([[0.5]]), torch.tensor([[2.0]])
    t = torch.tensor([[0.6, 1.0, 1.9]])
    edges = interval_edges(t, near, far)
    torch.testing.assert_close(edges, torch.tensor([[0.5, 0.8, 1.45, 2.0]]))


def test_importance_samples_concentrate_where_the_weights_are():
    edges = torch.linspace(0.0, 1.0, 11).expand(2, 11)
    peaked = torch.zeros(2, 10)
    peaked[:, 3] = 1.0
    for deterministic in (True, False):
        samples = importance_samples(edges, peaked, 64, deterministic=deterministic)
        inside = ((samples >= 0.3) & (samples <= 0.4)).float().mean()
        assert inside > 0.99, f"deterministic={deterministic}: only {inside:.2f} of samples in the weighted bin"

    # Mass split 1:3 between the first and last bins -> samples split 1:3.
    split = torch.zeros(1, 10)
    split[0, 0], split[0, 9] = 0.25, 0.75
    samples = importance_samples(edges[:1], split, 40, deterministic=True)
    assert (samples > 0.9).sum().item() == 30 and (samples < 0.1).sum().item() == 10
    torch.manual_seed(0)
    samples = importance_samples(edges[:1], split, 4000, deterministic=False)
    assert abs((samples > 0.9).float().mean().item() - 0.75) < 0.03

    # Uniform weights: the deterministic quantiles are the inverse CDF of a uniform density.
    uniform = importance_samples(edges[:1], torch.ones(1, 10), 8, deterministic=True)
    torch.testing.assert_close(uniform, (torch.arange(8.0) + 0.5).unsqueeze(0) / 8)


def test_merge_samples_sorts_and_carries_values():
    t_a, t_b = torch.tensor([[0.1, 0.5, 0.9]]), torch.tensor([[0.3, 0.7]])
    values_a, values_b = t_a.unsqueeze(-1) * 10, t_b.unsqueeze(-1) * 10
    t, (values,) = merge_samples(t_a, [values_a], t_b, [values_b])
    torch.testing.assert_close(t, torch.tensor([[0.1, 0.3, 0.5, 0.7, 0.9]]))
    torch.testing.assert_close(values[..., 0], t * 10)



def test_merge_of_presorted_sets_equals_the_sorting_merge():
    """Eval-mode merging by rank gives the sort's samples and values, ties between the sets included."""
    generator = torch.Generator().manual_seed(3)
    t_a = torch.rand(4, 50, 16, generator=generator).sort(dim=-1).values
    t_b = torch.rand(4, 50, 24, generator=generator).sort(dim=-1).values
    t_b[:, :10, :8] = t_a[:, :10, 4:12]  # samples of b exactly on samples of a
    t_b = t_b.sort(dim=-1).values
    values_a = [t_a.unsqueeze(-1) * torch.tensor([1.0, -2.0]), t_a.unsqueeze(-1) ** 2]
    values_b = [t_b.unsqueeze(-1) * torch.tensor([1.0, -2.0]), t_b.unsqueeze(-1) ** 2]
    t_sorted, merged_sorted = merge_samples(t_a, values_a, t_b, values_b)
    t_ranked, merged_ranked = merge_samples(t_a, values_a, t_b, values_b, presorted=True)
    torch.testing.assert_close(t_ranked, t_sorted, rtol=0, atol=0)
    for ranked, sorted_ in zip(merged_ranked, merged_sorted):
        torch.testing.assert_close(ranked, sorted_, rtol=0, atol=0)
    # a merge that trusted unsorted input would leave slots unwritten; the renderer only asks on sorted sets
    assert bool((t_ranked[..., 1:] >= t_ranked[..., :-1]).all())


def test_deterministic_importance_samples_are_sorted_even_at_bin_edges():
    """Eval-mode fine samples never step back (merge_samples(presorted=True) relies on it), also where
    rounding would put a sample an ulp past its bin's upper edge."""
    generator = torch.Generator().manual_seed(0)
    edges = (torch.rand(2000, 33, generator=generator) * 3.0).sort(dim=-1).values + 1.7
    weights = torch.rand(2000, 32, generator=generator) ** 8  # peaked: many quantiles per bin, some bins empty
    samples = importance_samples(edges, weights, 64, deterministic=True)
    assert bool((samples[:, 1:] >= samples[:, :-1]).all())
    assert bool(((samples >= edges[:, :1]) & (samples <= edges[:, -1:])).all())


def test_cumsum_along_rays_matches_torch_cumsum():
    from mira.rendering.compositing import cumsum_along_rays

    values = torch.rand(3, 7, 33, requires_grad=True)
    torch.testing.assert_close(cumsum_along_rays(values), torch.cumsum(values, dim=-1))
    if torch.cuda.is_available():
        on_gpu = values.detach().cuda().requires_grad_()
        torch.testing.assert_close(cumsum_along_rays(on_gpu).cpu(), torch.cumsum(values, dim=-1).detach())
        cumsum_along_rays(on_gpu).sum().backward()
        torch.testing.assert_close(on_gpu.grad.cpu(), torch.arange(33, 0, -1.0).expand(3, 7, 33))

# ---------------------------------------------------------------------- triplane
def test_triplane_layout_matches_spec():
    """A point at the centre of a texel reads that texel from each plane: XY at (x, y), XZ at (x, z), YZ at (y, z)."""
    R, C = 8, 2
    triplanes = torch.randn(1, 3, C, R, R)
    box_min, box_max = torch.tensor([-1.0, -2.0, 0.0]), torch.tensor([1.0, 2.0, 4.0])
    index = torch.tensor([1, 6, 3])  # texel index along world x, y, z
    q = (2 * index.float() + 1) / R - 1  # texel centre, align_corners=False
    point = (box_min + (q + 1) / 2 * (box_max - box_min)).view(1, 1, 3)
    features = sample_triplane(triplanes, point, box_min, box_max, "concat")[0, 0]
    ix, iy, iz = index.tolist()
    expected = torch.cat([triplanes[0, 0, :, iy, ix], triplanes[0, 1, :, iz, ix], triplanes[0, 2, :, iz, iy]])
    torch.testing.assert_close(features, expected)
    total = sample_triplane(triplanes, point, box_min, box_max, "sum")[0, 0]
    mean = sample_triplane(triplanes, point, box_min, box_max, "mean")[0, 0]
    torch.testing.assert_close(total, expected.view(3, C).sum(0))
    torch.testing.assert_close(mean, total / 3)
    outside = sample_triplane(triplanes, torch.full((1, 1, 3), 10.0), box_min, box_max, "concat")
    assert torch.all(outside == 0)


# ---------------------------------------------------------------------- compositing, analytic
@pytest.mark.parametrize("training", [False, True])
def test_constant_density_gives_closed_form_opacity(training: bool):
    sigma = 0.7
    background = (0.2, 0.4, 0.6)
    renderer = TriplaneRenderer(make_config(background_color=list(background)), TRIPLANE_DIM)
    set_constant_field(renderer, sigma, color_logit=0.0)  # colour sigmoid(0) widened = 0.5
    renderer.train(training)
    s3, s2 = math.sqrt(3.0), math.sqrt(2.0)
    origins = torch.tensor([[-3.0, 0.2, -0.5], [-3.0, -3.0, -3.0], [0.0, 0.0, 0.0], [0.3, -0.5, 0.9], [0.0, -3.0, -3.0]])
    directions = torch.tensor([[1.0, 0, 0], [1 / s3, 1 / s3, 1 / s3], [1.0, 0, 0], [0, 0, -1.0], [0, 1 / s2, 1 / s2]])
    chords = torch.tensor([2.0, 2 * s3, 1.0, 1.9, 2 * s2])
    out = renderer(random_triplanes(), origins.unsqueeze(0), directions.unsqueeze(0))
    expected = 1 - torch.exp(-sigma * chords)
    torch.testing.assert_close(out["opacity"][0, :, 0], expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(
        out["rgb"][0], 0.5 * expected[:, None] + (1 - expected[:, None]) * torch.tensor(background), rtol=1e-5, atol=1e-5
    )
    if not training:  # expected depth of an exponential distribution truncated to the chord
        near, _, _ = intersect_box(origins, directions, -torch.ones(3), torch.ones(3))
        mean_in_chord = 1 / sigma - chords * torch.exp(-sigma * chords) / expected
        torch.testing.assert_close(out["depth"][0, :, 0], near[:, 0] + mean_in_chord, rtol=0, atol=5e-3)


def test_principal_point_ray_passes_through_target():
    torch.manual_seed(0)
    eye = torch.tensor([[2.0, -1.5, 1.2], [-0.4, 2.6, -0.8]])
    target = torch.tensor([[0.3, -0.2, 0.1], [-0.5, 0.4, 0.2]])
    c2w = look_at(eye, target)
    intrinsics = torch.tensor([[1.1, 1.2, 0.4, 0.55], [0.9, 0.9, 0.5, 0.5]])
    W, H = 40, 30
    uv = torch.stack([intrinsics[:, 2] * W, intrinsics[:, 3] * H], dim=-1).unsqueeze(1)  # (B, 1, 2)
    origins, directions = rays_from_pixels(c2w, intrinsics, uv, W, H)
    to_target = target - eye
    distance = to_target.norm(dim=-1)
    torch.testing.assert_close(origins[:, 0] + distance[:, None] * directions[:, 0], target, atol=1e-5, rtol=0)

    # Through the renderer: a small ball at the target is hit by the principal-point pixel only.
    radius = 0.05
    for b in range(2):
        renderer = AnalyticRenderer(make_config(rendering_samples_per_ray=64), ball_density(target[b], radius)).eval()
        corner = torch.tensor([[0.5, 0.5]])
        out = renderer.render_pixels(
            random_triplanes(), c2w[b].view(1, 1, 4, 4), intrinsics[b].view(1, 1, 4),
            torch.cat([uv[b], corner]).view(1, 1, 2, 2), H, W,
        )
        assert out["opacity"][0, 0, 0, 0] > 0.999 and out["opacity"][0, 0, 1, 0] == 0
        assert abs(out["depth"][0, 0, 0, 0].item() - (distance[b].item() - radius)) < 0.03


def test_depth_of_a_known_sphere_and_importance_sampling_refines_it():
    center, radius = torch.tensor([0.1, -0.1, 0.05]), 0.5
    c2w = orbit_cameras(2, elevation_deg=25.0, distance=2.5).unsqueeze(0)  # (1, 2, 4, 4)
    intrinsics = intrinsics_from_fov(40.0).expand(1, 2, 4)
    size = 12
    errors = {}
    for fine in (0, 32):
        renderer = AnalyticRenderer(make_config(rendering_samples_per_ray=32, importance_samples_per_ray=fine), ball_density(center, radius))
        out = renderer.eval().render_images(random_triplanes(), c2w, intrinsics, size, size)
        origins, directions = rays_from_pixels(
            c2w[0], intrinsics[0], torch.cartesian_prod(torch.arange(size) + 0.5, torch.arange(size) + 0.5).flip(-1), size, size
        )
        t_true, hits = ray_sphere_distance(origins, directions, center, radius)
        depth = out["depth"][0, :, 0].reshape(2, -1)
        opacity = out["opacity"][0, :, 0].reshape(2, -1)
        near, far, _ = intersect_box(origins, directions, -torch.ones(3), torch.ones(3))
        bin_width = (far - near)[..., 0] / 32
        # Rays hitting the sphere comfortably: opaque, depth within one coarse bin of the truth.
        _, solid = ray_sphere_distance(origins, directions, center, radius * 0.9)
        _, clear = ray_sphere_distance(origins, directions, center, radius * 1.1)
        assert solid.sum() > 20 and (~clear).sum() > 20
        assert torch.all(opacity[solid] > 0.999) and torch.all(opacity[~clear] == 0)
        error = (depth[solid] - t_true[solid]).abs()
        assert torch.all(error <= bin_width[solid]), f"importance={fine}: depth error {error.max():.3f}"
        errors[fine] = error.mean().item()
    assert errors[32] < 0.5 * errors[0], f"importance sampling did not refine depth: {errors}"


def test_rays_missing_the_box_get_the_background():
    background = [0.2, 0.4, 0.6]
    renderer = TriplaneRenderer(make_config(background_color=background), TRIPLANE_DIM)
    set_constant_field(renderer, 50.0, color_logit=3.0)
    origins = torch.tensor([[[0.0, 0.0, 3.0], [3.0, 3.0, 3.0], [-3.0, 0.0, 0.0], [0.0, 1.5, 0.0]]])
    directions = torch.tensor([[[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, -1.0]]])
    for training in (False, True):
        out = renderer.train(training)(random_triplanes(), origins, directions)
        assert torch.all(out["opacity"][0, [0, 1, 3]] == 0) and torch.all(out["depth"][0, [0, 1, 3]] == 0)
        assert torch.equal(out["rgb"][0, [0, 1, 3]], torch.tensor(background).expand(3, 3))
        assert out["opacity"][0, 2, 0] > 0.999  # the one ray that crosses the dense box


# ---------------------------------------------------------------------- the module
def test_chunked_equals_unchunked():
    triplanes = random_triplanes(batch=2)
    c2w = orbit_cameras(3, elevation_deg=30.0, distance=2.2).expand(2, 3, 4, 4)
    intrinsics = intrinsics_from_fov(50.0).expand(2, 3, 4)
    whole = TriplaneRenderer(make_config(ray_chunk_size=100_000), TRIPLANE_DIM).eval()
    chunked = TriplaneRenderer(make_config(ray_chunk_size=14), TRIPLANE_DIM).eval()  # 7 rays per chunk, B = 2
    chunked.load_state_dict(whole.state_dict())
    out_whole = whole.render_images(triplanes, c2w, intrinsics, 9, 7)
    out_chunked = chunked.render_images(triplanes, c2w, intrinsics, 9, 7)
    for key in out_whole:
        torch.testing.assert_close(out_chunked[key], out_whole[key], rtol=1e-5, atol=1e-6)
    points = torch.rand(2, 1000, 3) * 2 - 1
    for key, value in whole.query(triplanes, points).items():
        torch.testing.assert_close(chunked.query(triplanes, points)[key], value)


def test_shapes_dtypes_and_value_ranges():
    B, V, N, H, W = 2, 3, 5, 6, 4
    renderer = TriplaneRenderer(make_config(rendering_samples_per_ray=8, importance_samples_per_ray=8), TRIPLANE_DIM)
    triplanes = random_triplanes(batch=B)
    c2w = orbit_cameras(V, elevation_deg=20.0, distance=2.5).expand(B, V, 4, 4)
    intrinsics = intrinsics_from_fov(45.0).expand(B, V, 4)
    origins, directions = rays_from_pixels(c2w[:, 0], intrinsics[:, 0], torch.rand(N, 2) * 4, W, H)
    rays = renderer(triplanes, origins, directions)
    pixels = renderer.render_pixels(triplanes, c2w, intrinsics, torch.rand(B, V, N, 2) * 4, H, W)
    shared = renderer.render_pixels(triplanes, c2w, intrinsics, torch.rand(N, 2) * 4, H, W)
    images = renderer.render_images(triplanes, c2w, intrinsics, H, W)
    query = renderer.query(triplanes, torch.rand(B, 17, 3) * 2.4 - 1.2)
    channels = {"rgb": 3, "depth": 1, "opacity": 1}
    for key, c in channels.items():
        assert rays[key].shape == (B, N, c) and rays[key].dtype == torch.float32
        assert pixels[key].shape == (B, V, N, c) and shared[key].shape == (B, V, N, c)
        assert images[key].shape == (B, V, c, H, W)
    assert query["density"].shape == (B, 17, 1) and query["rgb"].shape == (B, 17, 3)
    assert torch.all(query["density"] >= 0) and torch.all((query["rgb"] >= 0) & (query["rgb"] <= 1))
    assert torch.all((images["opacity"] >= 0) & (images["opacity"] <= 1 + 1e-6))

    double = renderer.double().eval()
    out = double.render_images(triplanes.double(), c2w.double(), intrinsics.double(), H, W)
    assert all(value.dtype == torch.float64 for value in out.values())


def test_render_images_is_row_major_render_pixels():
    """Pixel (row i, column j) of render_images is the ray through uv = (j + 0.5, i + 0.5)."""
    H, W = 5, 3
    renderer = TriplaneRenderer(make_config(rendering_samples_per_ray=8, importance_samples_per_ray=0), TRIPLANE_DIM).eval()
    triplanes = random_triplanes()
    c2w = look_at(torch.tensor([[2.0, 0.5, 0.7]])).unsqueeze(0)
    intrinsics = torch.tensor([[[0.4, 0.4, 0.45, 0.55]]])
    images = renderer.render_images(triplanes, c2w, intrinsics, H, W)
    uv = torch.tensor([[[2.5, 0.5], [0.5, 3.5]]])
    pixels = renderer.render_pixels(triplanes, c2w, intrinsics, uv.unsqueeze(0), H, W)
    torch.testing.assert_close(pixels["rgb"][0, 0, 0], images["rgb"][0, 0, :, 0, 2])
    torch.testing.assert_close(pixels["rgb"][0, 0, 1], images["rgb"][0, 0, :, 3, 0])


def test_gradients_reach_triplanes_and_mlp():
    renderer = TriplaneRenderer(make_config(rendering_samples_per_ray=8, importance_samples_per_ray=8), TRIPLANE_DIM)
    triplanes = random_triplanes().requires_grad_(True)
    c2w = orbit_cameras(2, elevation_deg=20.0, distance=2.0).unsqueeze(0)
    out = renderer.render_images(triplanes, c2w, intrinsics_from_fov(50.0).expand(1, 2, 4), 8, 8)
    (out["rgb"].mean() + out["depth"].mean() + out["opacity"].mean()).backward()
    assert triplanes.grad is not None and torch.isfinite(triplanes.grad).all() and triplanes.grad.abs().sum() > 0
    for name, parameter in renderer.named_parameters():
        assert parameter.grad is not None and torch.isfinite(parameter.grad).all(), name
        assert parameter.grad.abs().sum() > 0, f"no gradient reaches {name}"


def test_bf16_autocast_composites_in_float32():
    renderer = TriplaneRenderer(make_config(rendering_samples_per_ray=8, importance_samples_per_ray=8), TRIPLANE_DIM).eval()
    triplanes = random_triplanes()
    c2w = orbit_cameras(1, elevation_deg=20.0, distance=2.0).unsqueeze(0)
    intrinsics = intrinsics_from_fov(50.0).expand(1, 1, 4)
    reference = renderer.render_images(triplanes, c2w, intrinsics, 6, 6)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = renderer.render_images(triplanes, c2w, intrinsics, 6, 6)
    for key in reference:
        assert low[key].dtype == torch.float32 and torch.isfinite(low[key]).all()
        torch.testing.assert_close(low[key], reference[key], rtol=0, atol=0.05)


def test_bad_inputs_give_clear_errors():
    renderer = TriplaneRenderer(make_config(), TRIPLANE_DIM)
    with pytest.raises(ValueError, match="triplanes must be"):
        renderer(torch.zeros(1, 2, TRIPLANE_DIM, RES, RES), torch.zeros(1, 3, 3), torch.zeros(1, 3, 3))
    with pytest.raises(ValueError, match="origins must be"):
        renderer(random_triplanes(batch=2), torch.zeros(1, 3, 3), torch.zeros(1, 3, 3))
    with pytest.raises(ValueError, match="uv must be"):
        renderer.render_pixels(random_triplanes(), torch.eye(4).expand(1, 1, 4, 4), torch.ones(1, 1, 4), torch.zeros(2, 1, 5, 2), 4, 4)
    with pytest.raises(ValueError, match="aggregation"):
        TriplaneRenderer(make_config(triplane_aggregation="max"), TRIPLANE_DIM)


def test_sampling_is_random_in_training_and_deterministic_in_eval(monkeypatch):
    import mira.rendering.renderer as renderer_module

    modes = []
    original = renderer_module.importance_samples

    def spy(edges, weights, num_samples, deterministic):
        modes.append(deterministic)
        return original(edges, weights, num_samples, deterministic)

    monkeypatch.setattr(renderer_module, "importance_samples", spy)
    renderer = TriplaneRenderer(make_config(rendering_samples_per_ray=8, importance_samples_per_ray=8), TRIPLANE_DIM)
    triplanes = random_triplanes()
    c2w = orbit_cameras(1, elevation_deg=20.0, distance=2.0).unsqueeze(0)
    intrinsics = intrinsics_from_fov(50.0).expand(1, 1, 4)
    first = renderer.eval().render_images(triplanes, c2w, intrinsics, 5, 5)["rgb"]
    second = renderer.render_images(triplanes, c2w, intrinsics, 5, 5)["rgb"]
    assert torch.equal(first, second) and modes == [True, True]
    first = renderer.train().render_images(triplanes, c2w, intrinsics, 5, 5)["rgb"]
    second = renderer.render_images(triplanes, c2w, intrinsics, 5, 5)["rgb"]
    assert not torch.equal(first, second) and modes[2:] == [False, False]


def test_empty_inputs_give_empty_outputs():
    renderer = TriplaneRenderer(make_config(), TRIPLANE_DIM)
    out = renderer(random_triplanes(), torch.zeros(1, 0, 3), torch.zeros(1, 0, 3))
    assert out["rgb"].shape == (1, 0, 3) and out["depth"].shape == (1, 0, 1)
    assert renderer.query(random_triplanes(), torch.zeros(1, 0, 3))["density"].shape == (1, 0, 1)
