"""The fused field kernel (projected-plane lookup + field MLP in one Triton kernel) equals the op-by-op field:
values and every gradient, on the CPU through Triton's interpreter and on CUDA compiled; it compiles for sm_90
here; the renderer uses it only where it applies."""

from __future__ import annotations

import inspect

import pytest
import torch

from mira.config import RendererConfig
from mira.rendering import TriplaneRenderer
from mira.rendering.field import TriplaneField
from mira.rendering.field_kernels import fused_field_raw, fused_field_supported
from mira.rendering.triplane import PLANE_AXES_BY_NAME, normalize_points, sample_triplane
from mira.rendering.triplane_kernels import fused_sample_triplane

pytest.importorskip("triton")

BOX_MIN = -torch.ones(3)
BOX_MAX = torch.ones(3)


def _field(activation: str, num_layers: int, channels: int, hidden: int, aggregation: str) -> TriplaneField:
    """A field with non-trivial weights and biases (std 0.5), so every gradient is exercised."""
    input_dim = 3 * channels if aggregation == "concat" else channels
    field = TriplaneField(input_dim=input_dim, hidden_dim=hidden, num_layers=num_layers, activation=activation)
    with torch.no_grad():
        for parameter in field.parameters():
            parameter.normal_(0.0, 0.5)
    return field


def _op_by_op(field: TriplaneField, planes: torch.Tensor, points: torch.Tensor, aggregation: str,
              plane_axes: str) -> torch.Tensor:
    """The reference: projected planes looked up by grid_sample, added, the first bias, then the MLP's other layers."""
    projected = field.project_planes(planes, aggregation)
    first = sample_triplane(projected, points, BOX_MIN, BOX_MAX, "sum", plane_axes) + field.mlp[0].bias
    return field.mlp[1:](first)


@pytest.mark.parametrize("activation, num_layers, aggregation, plane_axes", [
    ("silu", 4, "concat", "xy_xz_yz"), ("relu", 3, "sum", "xy_xz_zy"), ("silu", 2, "mean", "xy_xz_yz")])
def test_fused_field_matches_the_op_by_op_field_on_cpu_interpreter(activation: str, num_layers: int,
                                                                   aggregation: str, plane_axes: str) -> None:
    torch.manual_seed(0)
    field = _field(activation, num_layers, channels=6, hidden=16, aggregation=aggregation)
    # Non-square planes (R_v 7, R_u 5); points over and beyond the box; P not a multiple of the block.
    planes = torch.randn(2, 3, 6, 7, 5).requires_grad_(True)
    points = torch.rand(2, 50, 3) * 2.4 - 1.2
    points[:, 0] = torch.tensor([1.0, -1.0, 0.999])
    reference = _op_by_op(field, planes, points, aggregation, plane_axes)
    weights = torch.randn_like(reference)
    inputs = [planes, *field.parameters()]
    reference_grads = torch.autograd.grad((reference * weights).sum(), inputs)

    fused = fused_field_raw(field.project_planes(planes, aggregation), normalize_points(points, BOX_MIN, BOX_MAX),
                            field, PLANE_AXES_BY_NAME[plane_axes], activation)
    assert fused.shape == (2, 50, 4) and fused.dtype == torch.float32
    grads = torch.autograd.grad((fused * weights).sum(), inputs)
    scale = reference.abs().max()
    assert (fused - reference).abs().max() < 1e-5 * scale
    names = ["planes", *(name for name, _ in field.named_parameters())]
    for name, grad, expected in zip(names, grads, reference_grads):
        assert (grad - expected).abs().max() < 1e-5 * expected.abs().max().clamp_min(1e-3), name


def test_fused_field_supports_what_it_can_run() -> None:
    assert fused_field_supported(_field("silu", 4, 80, 64, "concat"), 64, "silu")  # mira-base
    assert not fused_field_supported(_field("silu", 4, 80, 48, "concat"), 48, "silu")  # not a power of two
    assert not fused_field_supported(_field("silu", 1, 80, 64, "concat"), 64, "silu")  # no hidden width
    assert not fused_field_supported(_field("silu", 4, 80, 64, "concat"), 64, "gelu")


def test_renderer_fuses_the_field_only_with_projected_planes() -> None:
    """renderer.fused_field needs project_planes (the kernel reads projected planes); on the CPU the renderer runs
    the op-by-op field whatever the flag."""
    on = TriplaneRenderer(RendererConfig(fused_field=True, project_planes="on", mlp_hidden_dim=16), triplane_dim=8)
    off = TriplaneRenderer(RendererConfig(fused_field=True, project_planes="off", mlp_hidden_dim=16), triplane_dim=8)
    assert on.fuses_field and not off.fuses_field
    off.load_state_dict(on.state_dict())
    planes = torch.randn(1, 3, 8, 8, 8)
    points = torch.rand(1, 30, 3) * 2 - 1
    torch.testing.assert_close(on.point_logits(planes, points)[0], off.point_logits(planes, points)[0])


def test_field_kernel_compiles_for_hopper_without_a_gpu() -> None:
    """The bf16 forward and backward (training's case) compile for an H100 (sm_90) here, with tensor-core products
    and the planes read as 16-byte vectors (no per-channel bf16 loads), and ptxas assembles them."""
    from mira.rendering.field_kernels import OUT_PAD, SLOTS, _field_kernel
    from mira.rendering.kernel_check import compile_for_hopper, kernel_resources

    pointers = {name: "*fp32" for name in inspect.signature(_field_kernel).parameters if name.endswith("_ptr")}
    pointers["planes_ptr"] = "*bf16"
    for backward in (False, True):
        constants = {"HIDDEN": 64, "NUM_HIDDEN": 2, "RELU": False, "DOT": 1, "PRECISION": "tf32", "OUT_PAD": OUT_PAD,
                     "SLOTS": SLOTS, "BACKWARD": backward, "BLOCK_P": 64}
        ptx = compile_for_hopper(_field_kernel, constants, pointers, num_warps=4, multiples_of_16=("size_u", "size_v"))
        used = kernel_resources(ptx)
        assert "wgmma" in ptx and used.scalar_16bit_loads == 0 and used.vector_loads > 0
        assert 0 < used.registers <= 255


def test_kernel_resources_benchmark_prints_registers_and_spills(capsys) -> None:
    """benchmarks/kernel_resources.py: one row per kernel, pass and launch shape, from ptxas's report; a register
    cap (maxnreg) shows in it."""
    from helpers_training import load_benchmark

    argv = ["--kernel", "field", "--passes", "forward", "--shapes", "64x8", "64x8x96"]
    assert load_benchmark("kernel_resources").main(argv) == 0
    rows = [line.split("|")[1:-1] for line in capsys.readouterr().out.splitlines()[2:]]
    assert [row[2].strip() for row in rows] == ["64x8", "64x8x96"]
    registers = [int(row[3]) for row in rows]
    assert 96 < registers[0] <= 255 and registers[1] <= 96


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (the compiled kernels)")
def test_fused_field_renders_and_learns_as_the_op_by_op_field_on_cuda() -> None:
    """Training's case on the GPU: bf16 autocast, mira-base's field (C 80, H 64, 4 layers); the fused field's render
    and gradients agree with the op-by-op field's to bf16 rounding."""
    from helpers_kernels import render_training_case_on_cuda

    outputs = []
    for fused in (False, True):
        config = RendererConfig(rendering_samples_per_ray=32, importance_samples_per_ray=32, project_planes="on",
                                fused_field=fused)
        rgb, planes_grad, renderer = render_training_case_on_cuda(config)
        assert renderer.fuses_field == fused
        outputs.append((rgb, planes_grad, [p.grad.float() for p in renderer.field.parameters()]))
    (rgb_off, planes_off, params_off), (rgb_on, planes_on, params_on) = outputs
    torch.testing.assert_close(rgb_on, rgb_off, atol=2e-2, rtol=2e-2)
    assert (planes_on - planes_off).norm() / planes_off.norm() < 3e-2
    for grad_on, grad_off in zip(params_on, params_off):
        assert (grad_on - grad_off).norm() / grad_off.norm() < 3e-2


def test_field_benchmark_runs_and_checks_agreement(capsys) -> None:
    """benchmarks/bench_field.py --quick: both fields timed, their outputs and gradients compared."""
    from helpers_training import load_benchmark

    module = load_benchmark("bench_field")
    assert module.main(["--quick"]) == 0
    out = capsys.readouterr().out
    assert "| op by op |" in out and "| fused field |" in out
    value, gradient = (float(part.split()[-1]) for part in out.split("relative difference")[1].split(":", 1)[1].split(","))
    assert value < 1e-5 and gradient < 1e-5


def test_fused_field_of_no_points_is_empty_and_gives_zero_gradients() -> None:
    field = _field("silu", 3, channels=4, hidden=16, aggregation="concat")
    planes = torch.randn(1, 3, 4, 6, 6).requires_grad_(True)
    raw = fused_field_raw(field.project_planes(planes, "concat"), torch.zeros(1, 0, 3), field,
                          PLANE_AXES_BY_NAME["xy_xz_yz"], "silu")
    assert raw.shape == (1, 0, 4)
    raw.sum().backward()
    assert planes.grad.abs().max() == 0 and field.mlp[2].weight.grad.abs().max() == 0


def test_training_render_with_the_fused_field_takes_all_rays_in_one_chunk(monkeypatch) -> None:
    """While back-propagating into the triplanes with the fused field, one chunk (autograd keeps every chunk anyway);
    without gradients, ray_chunk_size rays at a time; the same render and gradient either way (the fused field run
    through Triton's interpreter on the CPU)."""
    import mira.rendering.renderer as renderer_module

    monkeypatch.setattr(renderer_module, "fused_sampling_available", lambda triplanes: True)
    chunk_sizes: list[int] = []
    real_chunked = renderer_module.chunked

    def recording_chunked(function, *tensors, chunk_size: int, dim: int):
        chunk_sizes.append(chunk_size)
        return real_chunked(function, *tensors, chunk_size=chunk_size, dim=dim)

    monkeypatch.setattr(renderer_module, "chunked", recording_chunked)
    config = RendererConfig(rendering_samples_per_ray=6, importance_samples_per_ray=4, project_planes="on",
                            mlp_hidden_dim=16, ray_chunk_size=4, fused_field=True)
    torch.manual_seed(0)
    renderer = TriplaneRenderer(config, triplane_dim=8).eval()  # no jitter: the same samples however chunked
    planes = (torch.randn(2, 3, 8, 8, 8) * 0.5).requires_grad_(True)
    origins = torch.tensor([0.1, -0.2, 3.0]).expand(2, 10, 3).contiguous()
    directions = torch.nn.functional.normalize(torch.randn(2, 10, 3) * 0.2 + torch.tensor([0.0, 0.0, -1.0]), dim=-1)
    rendered = {}
    for one_chunk in (True, False):
        chunk_sizes.clear()
        with torch.set_grad_enabled(one_chunk):
            rgb = renderer(planes if one_chunk else planes.detach(), origins, directions)["rgb"]
        assert chunk_sizes == ([10] if one_chunk else [2]), chunk_sizes  # 4 rays over a batch of 2: 2 per chunk
        rendered[one_chunk] = rgb
    torch.testing.assert_close(rendered[True].detach(), rendered[False], rtol=1e-5, atol=1e-6)
    rendered[True].square().sum().backward()
    assert planes.grad is not None and planes.grad.abs().max() > 0


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two CUDA devices")
def test_kernels_run_on_a_second_gpu_while_the_first_is_current() -> None:
    """A model on cuda:1 in a process whose current device is cuda:0 (mira.evaluate --device cuda:1): the Triton
    kernels (lookup and fused field, forward and backward) launch on the tensors' device and agree with cuda:0."""
    torch.manual_seed(0)
    field = _field("silu", 4, channels=8, hidden=32, aggregation="concat")
    planes = torch.randn(2, 3, 8, 16, 16)
    points = torch.rand(2, 500, 3) * 2 - 1
    axes = PLANE_AXES_BY_NAME["xy_xz_yz"]
    results = []
    for device in ("cuda:0", "cuda:1"):
        torch.cuda.set_device(0)
        moved = field.to(device)
        device_planes = planes.to(device).requires_grad_(True)
        looked_up = fused_sample_triplane(device_planes, normalize_points(points.to(device), BOX_MIN.to(device),
                                                                          BOX_MAX.to(device)), axes, torch.float32)
        raw = fused_field_raw(moved.project_planes(device_planes, "concat"),
                              normalize_points(points.to(device), BOX_MIN.to(device), BOX_MAX.to(device)), moved, axes,
                              "silu")
        (raw.sum() + looked_up.sum()).backward()
        results.append((raw.cpu(), looked_up.detach().cpu(), device_planes.grad.cpu()))
    for on_second, on_first in zip(results[1], results[0]):
        torch.testing.assert_close(on_second, on_first)
