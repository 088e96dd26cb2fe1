"""The fused Triton triplane lookup equals grid_sample (values and gradients), on the CPU through
Triton's interpreter and on CUDA compiled; field checkpointing leaves the renderer's gradients unchanged."""

from __future__ import annotations

import pytest
import torch

from mira.config import RendererConfig
from mira.rendering import TriplaneRenderer
from mira.rendering.triplane import PLANE_AXES_BY_NAME, normalize_points, sample_triplane
from mira.rendering.triplane_kernels import fused_sample_triplane

pytest.importorskip("triton")

BOX_MIN = torch.tensor([-1.0, -1.0, -1.0])
BOX_MAX = torch.tensor([1.0, 1.0, 1.0])


def _points(batch: int, count: int, generator: torch.Generator) -> torch.Tensor:
    """(B, P, 3) points over and beyond the box, with some exactly on its faces and corners."""
    points = torch.rand(batch, count, 3, generator=generator) * 2.6 - 1.3
    points[:, 0] = torch.tensor([-1.0, 1.0, 0.999])
    points[:, 1] = torch.tensor([1.0, -1.0, -1.0])
    return points


def _compare(triplanes: torch.Tensor, points: torch.Tensor, plane_axes: str, device: str,
             aggregation: str = "concat") -> tuple[float, float]:
    """Max abs differences (features, triplane gradients) between the fused kernels and grid_sample, the planes'
    features concatenated or (``aggregation`` "sum") added."""
    triplanes = triplanes.to(device).requires_grad_(True)
    points = points.to(device)
    reference = sample_triplane(triplanes, points, BOX_MIN.to(device), BOX_MAX.to(device), aggregation, plane_axes)
    weights = torch.randn(reference.shape, generator=torch.Generator().manual_seed(1)).to(device)
    (reference * weights).sum().backward()
    reference_grad, triplanes.grad = triplanes.grad.clone(), None
    fused = fused_sample_triplane(triplanes, normalize_points(points, BOX_MIN.to(device), BOX_MAX.to(device)),
                                  PLANE_AXES_BY_NAME[plane_axes], torch.float32, sum_planes=aggregation == "sum")
    (fused * weights).sum().backward()
    return (fused - reference).abs().max().item(), (triplanes.grad - reference_grad).abs().max().item()


@pytest.mark.parametrize("aggregation", ["concat", "sum"])
@pytest.mark.parametrize("plane_axes", sorted(PLANE_AXES_BY_NAME))
def test_fused_sampling_matches_grid_sample_on_cpu_interpreter(plane_axes: str, aggregation: str) -> None:
    generator = torch.Generator().manual_seed(0)
    # Non-square planes (H 7, W 6), C not a power of two, P not a multiple of the kernel's block.
    triplanes = torch.randn(2, 3, 5, 7, 6, generator=generator)
    value_error, grad_error = _compare(triplanes, _points(2, 70, generator), plane_axes, "cpu", aggregation)
    assert value_error < 1e-5
    assert grad_error < 1e-5


def test_fused_sampling_sees_each_plane_and_reads_zero_outside() -> None:
    """A planted value in one cell of one plane reaches exactly the points whose bilinear footprint covers it."""
    triplanes = torch.zeros(1, 3, 2, 4, 4)
    triplanes[0, 2, 1, 3, 0] = 1.0  # plane YZ, channel 1, row (z) 3, column (y) 0
    # The centre of that cell: y = (0 + 0.5) / 4 * 2 - 1, z = (3 + 0.5) / 4 * 2 - 1; x anywhere inside.
    points = torch.tensor([[[0.3, -0.75, 0.75], [0.3, 0.75, -0.75], [5.0, 5.0, 5.0]]])
    features = fused_sample_triplane(triplanes, normalize_points(points, BOX_MIN, BOX_MAX),
                                     PLANE_AXES_BY_NAME["xy_xz_yz"], torch.float32)
    assert features.shape == (1, 3, 6)
    assert features[0, 0].tolist() == [0.0, 0.0, 0.0, 0.0, 0.0, 1.0]
    assert features[0, 1:].abs().max().item() == 0.0


@pytest.mark.parametrize("project_planes", ["off", "on"])
def test_field_checkpointing_keeps_values_and_gradients(project_planes: str) -> None:
    """Recomputing the field in the backward pass changes neither the render nor any gradient (with projected
    planes the checkpoint recomputes from the render call's one projection)."""
    config = RendererConfig(rendering_samples_per_ray=8, importance_samples_per_ray=8, mlp_hidden_dim=16,
                            project_planes=project_planes)
    renderer = TriplaneRenderer(config, triplane_dim=4).train()
    generator = torch.Generator().manual_seed(3)
    triplanes = torch.randn(2, 3, 4, 8, 8, generator=generator)
    origins = torch.tensor([0.0, 0.0, 3.0]).expand(2, 16, 3).contiguous()
    directions = torch.nn.functional.normalize(torch.randn(2, 16, 3, generator=generator) * 0.2
                                               + torch.tensor([0.0, 0.0, -1.0]), dim=-1)
    results = []
    for checkpointing in (False, True):
        renderer.config.field_checkpointing = checkpointing
        renderer.zero_grad()
        planes = triplanes.clone().requires_grad_(True)
        torch.manual_seed(5)  # the same stratified jitter and importance samples in both runs
        rgb = renderer(planes, origins, directions)["rgb"]
        rgb.square().sum().backward()
        results.append((rgb.detach(), planes.grad, [p.grad.clone() for p in renderer.field.parameters()]))
    (rgb_a, planes_a, params_a), (rgb_b, planes_b, params_b) = results
    torch.testing.assert_close(rgb_b, rgb_a)
    torch.testing.assert_close(planes_b, planes_a)
    for grad_a, grad_b in zip(params_a, params_b):
        torch.testing.assert_close(grad_b, grad_a)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (the compiled kernels)")
@pytest.mark.parametrize("aggregation", ["concat", "sum"])
@pytest.mark.parametrize("plane_axes", sorted(PLANE_AXES_BY_NAME))
def test_fused_sampling_matches_grid_sample_on_cuda(plane_axes: str, aggregation: str) -> None:
    generator = torch.Generator().manual_seed(0)
    triplanes = torch.randn(3, 3, 40, 64, 64, generator=generator)
    value_error, grad_error = _compare(triplanes, _points(3, 20000, generator), plane_axes, "cuda", aggregation)
    assert value_error < 1e-5
    assert grad_error < 1e-4  # fp32 atomics accumulate in a different order


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (the compiled kernels)")
def test_fused_sampling_of_bf16_planes_under_autocast_on_cuda() -> None:
    """Training's case: bf16 triplanes, features in the autocast dtype, the same as grid_sample's up to rounding."""
    generator = torch.Generator().manual_seed(0)
    triplanes = torch.randn(2, 3, 80, 64, 64, generator=generator).cuda().bfloat16().requires_grad_(True)
    points = _points(2, 30000, generator).cuda()
    box_min, box_max = BOX_MIN.cuda(), BOX_MAX.cuda()
    reference = sample_triplane(triplanes, points, box_min, box_max, "concat")
    reference.float().square().sum().backward()
    reference_grad, triplanes.grad = triplanes.grad.clone(), None
    with torch.autocast("cuda", dtype=torch.bfloat16):
        fused = sample_triplane(triplanes, points, box_min, box_max, "concat", fused=True)
    assert fused.dtype == torch.bfloat16
    fused.float().square().sum().backward()
    torch.testing.assert_close(fused.float(), reference.float(), atol=2e-2, rtol=1e-2)
    torch.testing.assert_close(triplanes.grad.float(), reference_grad.float(), atol=5e-2, rtol=2e-2)


def test_lookup_benchmark_runs_and_checks_agreement(capsys) -> None:
    """benchmarks/bench_triplane.py --quick: both lookups timed, their features and gradients compared."""
    from helpers_training import load_benchmark

    module = load_benchmark("bench_triplane")
    assert module.main(["--quick"]) == 0
    out = capsys.readouterr().out
    assert "| grid_sample |" in out and "| fused Triton |" in out
    errors = [float(word.rstrip(",")) for word in out.split("max |difference|: ")[1].split() if word[0].isdigit()]
    assert len(errors) == 2 and max(errors) < 1e-5


def test_kernels_compile_for_hopper_without_a_gpu() -> None:
    """Every variant of the lookup kernel (forward / backward, concatenated / summed planes, the tuned block
    shapes) compiles for an H100 (sm_90) here, so a kernel that only the interpreter accepts fails in CI and not
    on a lent GPU."""
    from mira.rendering.kernel_check import compile_for_hopper
    from mira.rendering.triplane_kernels import TUNING, _sample_kernel

    for backward in (False, True):
        for sum_planes in (False, True):
            block_p, block_c, warps = TUNING[-1] if sum_planes else TUNING[0]
            constants = {"CHANNELS": 64 if sum_planes else 80, "BACKWARD": backward, "SUM_PLANES": sum_planes,
                         "BLOCK_P": block_p, "BLOCK_C": block_c}
            data = "*fp32" if backward else "*bf16"
            ptx = compile_for_hopper(_sample_kernel, constants, {"src_ptr": data, "dst_ptr": data, "grid_ptr": "*fp32"},
                                     warps)
            assert "atom" in ptx if backward else "ld.global" in ptx


@pytest.mark.parametrize("aggregation, plane_axes, ray_marching", [
    ("concat", "xy_xz_yz", "mira"), ("sum", "xy_xz_zy", "eg3d"), ("mean", "xy_xz_yz", "normalized_midpoint")])
def test_projected_planes_render_and_learn_as_the_plain_lookup(aggregation: str, plane_axes: str,
                                                               ray_marching: str) -> None:
    """renderer.project_planes "on" (the field's first layer applied to the planes, the projected planes added
    at each sample) renders the same colours, depths and opacities and gives the same gradients to the
    triplanes and every field weight as "off" (features looked up, then the first layer)."""
    importance = 0 if ray_marching == "normalized_midpoint" else 8
    outputs = []
    for mode in ("off", "on"):
        config = RendererConfig(rendering_samples_per_ray=8, importance_samples_per_ray=importance, mlp_hidden_dim=16,
                                triplane_aggregation=aggregation, plane_axes=plane_axes, ray_marching=ray_marching,
                                project_planes=mode)
        torch.manual_seed(2)  # the same field weights for both
        renderer = TriplaneRenderer(config, triplane_dim=6).double().train()
        assert renderer.projects_planes == (mode == "on")
        generator = torch.Generator().manual_seed(3)
        planes = torch.randn(2, 3, 6, 8, 8, generator=generator, dtype=torch.float64).requires_grad_(True)
        origins = torch.tensor([0.2, -0.1, 3.0], dtype=torch.float64).expand(2, 24, 3).contiguous()
        directions = torch.nn.functional.normalize(torch.randn(2, 24, 3, generator=generator, dtype=torch.float64)
                                                   * 0.25 + torch.tensor([0.0, 0.0, -1.0], dtype=torch.float64), dim=-1)
        torch.manual_seed(5)  # the same stratified jitter and importance samples
        out = renderer(planes, origins, directions)
        (out["rgb"].square().sum() + out["depth"].sum() + out["opacity"].sum()).backward()
        outputs.append((out, planes.grad, {name: p.grad for name, p in renderer.field.named_parameters()}))
    (out_off, planes_off, params_off), (out_on, planes_on, params_on) = outputs
    assert out_off["opacity"].max() > 0.05  # the rays see the field
    for key in ("rgb", "depth", "opacity"):
        torch.testing.assert_close(out_on[key], out_off[key], rtol=1e-9, atol=1e-10)
    torch.testing.assert_close(planes_on, planes_off, rtol=1e-9, atol=1e-10)
    for name, grad in params_off.items():
        torch.testing.assert_close(params_on[name], grad, rtol=1e-9, atol=1e-10, msg=name)


def test_project_planes_auto_projects_only_when_it_reads_no_more_channels() -> None:
    from mira.rendering.renderer import planes_are_projected

    assert planes_are_projected("auto", hidden_dim=64, triplane_dim=80)  # mira-base, OpenLRM
    assert not planes_are_projected("auto", hidden_dim=64, triplane_dim=32)  # mira-demo
    assert planes_are_projected("on", hidden_dim=64, triplane_dim=32)
    assert not planes_are_projected("off", hidden_dim=64, triplane_dim=80)
    with pytest.raises(ValueError, match="project_planes"):
        planes_are_projected("always", hidden_dim=64, triplane_dim=80)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (the compiled kernels)")
def test_projected_planes_match_under_bf16_autocast_on_cuda() -> None:
    """Training's case on the GPU: bf16 triplanes, fused lookups; projected and plain agree to bf16 rounding."""
    from helpers_kernels import render_training_case_on_cuda

    outputs = []
    for mode in ("off", "on"):
        config = RendererConfig(rendering_samples_per_ray=32, importance_samples_per_ray=32, project_planes=mode)
        rgb, planes_grad, renderer = render_training_case_on_cuda(config)
        outputs.append((rgb, planes_grad, renderer.field.mlp[0].weight.grad.float()))
    (rgb_off, planes_off, weight_off), (rgb_on, planes_on, weight_on) = outputs
    torch.testing.assert_close(rgb_on, rgb_off, atol=2e-2, rtol=2e-2)
    assert (planes_on - planes_off).norm() / planes_off.norm() < 2e-2
    assert (weight_on - weight_off).norm() / weight_off.norm() < 2e-2


def test_planes_are_projected_once_per_render_and_query_call(monkeypatch) -> None:
    """A render of many ray chunks (each with a coarse and a fine pass) and a chunked query project the planes once
    per call; the result equals the unprojected renderer's."""
    config = RendererConfig(rendering_samples_per_ray=8, importance_samples_per_ray=8, mlp_hidden_dim=16,
                            ray_chunk_size=8, project_planes="on")
    torch.manual_seed(0)
    renderer = TriplaneRenderer(config, triplane_dim=16).eval()
    calls = []
    project = renderer.field.project_planes
    monkeypatch.setattr(renderer.field, "project_planes", lambda *args: calls.append(1) or project(*args))
    planes = torch.randn(1, 3, 16, 8, 8)
    origins = torch.tensor([0.0, 0.0, 3.0]).expand(1, 40, 3).contiguous()
    directions = torch.nn.functional.normalize(torch.randn(1, 40, 3) * 0.2 + torch.tensor([0.0, 0.0, -1.0]), dim=-1)
    rgb = renderer(planes, origins, directions)["rgb"]
    assert len(calls) == 1  # 5 chunks x (coarse + fine) field queries
    density = renderer.query(planes, torch.rand(1, 3000, 3) * 2 - 1)["density"]
    assert len(calls) == 2  # 47 chunks of 64 points
    plain = TriplaneRenderer(RendererConfig(rendering_samples_per_ray=8, importance_samples_per_ray=8, mlp_hidden_dim=16,
                                            ray_chunk_size=8, project_planes="off"), triplane_dim=16).eval()
    plain.load_state_dict(renderer.state_dict())
    torch.testing.assert_close(plain(planes, origins, directions)["rgb"], rgb, atol=1e-5, rtol=1e-5)
    assert density.shape == (1, 3000, 1)
