"""The radiance field alone: the op-by-op field against the fused field kernel, forward and forward + backward.

Both start from projected planes (``renderer.project_planes``: the field MLP's first layer applied to the planes)
and end at the MLP's raw outputs (density logit, three colour logits):

* ``op by op``: the Triton lookup adds the three projected planes (:func:`mira.rendering.triplane.sample_triplane`
  with ``fused=True``), then the first layer's bias and the other layers as PyTorch ops
  (``renderer.fused_field false``);
* ``fused field``: :func:`mira.rendering.field_kernels.fused_field_raw`, lookup and MLP in one kernel
  (``renderer.fused_field true``).

Default sizes are a ``mira-base`` training step's (8 triplanes of 3 x 80 x 64 x 64 projected to H = 64, a 4-layer
SiLU field, 16 384 rays x 128 samples per triplane), under bf16 autocast as training runs them; the two outputs
and the gradients of the planes and every field weight are compared.

    python benchmarks/bench_field.py --device cuda
    python benchmarks/bench_field.py --device cuda --tuning 64x4     # one launch shape, no autotuning (fast start)
    python benchmarks/bench_field.py --quick                        # CPU, tiny sizes, Triton's interpreter
"""

from __future__ import annotations

import argparse
import sys
from contextlib import nullcontext
from pathlib import Path
from typing import Callable

import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from mira.benchmarking import median_seconds  # noqa: E402
from mira.rendering import field_kernels  # noqa: E402
from mira.rendering.field import TriplaneField  # noqa: E402
from mira.rendering.triplane import PLANE_AXES_BY_NAME, normalize_points, sample_triplane  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch", type=int, default=8, help="triplanes")
    parser.add_argument("--channels", type=int, default=80, help="channels per plane")
    parser.add_argument("--hidden", type=int, default=64, help="field MLP width")
    parser.add_argument("--layers", type=int, default=4, help="field MLP layers")
    parser.add_argument("--resolution", type=int, default=64, help="plane side")
    parser.add_argument("--points", type=int, default=16384 * 128, help="points per triplane")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--tuning", default=None,
                        help="BLOCKxWARPS[xMAXNREG]: use this one launch shape (no autotuning)")
    parser.add_argument("--quick", action="store_true", help="CPU, tiny sizes, Triton's interpreter")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.quick:
        args.device, args.batch, args.channels, args.hidden, args.resolution, args.points, args.repeats = \
            "cpu", 2, 6, 16, 8, 300, 1
    if args.tuning:
        field_kernels.TUNING = [tuple(int(value) for value in args.tuning.lower().split("x"))]
    device = torch.device(args.device)
    torch.manual_seed(0)
    field = TriplaneField(3 * args.channels, args.hidden, args.layers).to(device)
    planes = torch.randn(args.batch, 3, args.channels, args.resolution, args.resolution, device=device)
    points = torch.rand(args.batch, args.points, 3, device=device) * 2.0 - 1.0
    box_min, box_max = -torch.ones(3, device=device), torch.ones(3, device=device)
    normalized = normalize_points(points, box_min, box_max)
    on_cuda = device.type == "cuda"
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if on_cuda else nullcontext()
    planes = planes.to(torch.bfloat16) if on_cuda else planes
    planes.requires_grad_(True)
    weights = torch.randn(args.batch, args.points, 4, device=device)

    def op_by_op() -> torch.Tensor:
        with autocast:
            projected = field.project_planes(planes, "concat")
            if on_cuda:
                first = sample_triplane(projected, points, box_min, box_max, "sum", fused=True)
            else:  # sample_triplane keeps grid_sample on the CPU
                first = sample_triplane(projected, points, box_min, box_max, "sum")
            return field.mlp[1:](first + field.mlp[0].bias.to(first.dtype)).float()

    def fused() -> torch.Tensor:
        with autocast:
            projected = field.project_planes(planes, "concat")
            return field_kernels.fused_field_raw(projected, normalized, field, PLANE_AXES_BY_NAME["xy_xz_yz"], "silu")

    def forward_backward(function: Callable[[], torch.Tensor]) -> None:
        field.zero_grad(set_to_none=True)
        planes.grad = None
        (function() * weights).sum().backward()

    outputs, rows = {}, []
    for name, function in (("op by op", op_by_op), ("fused field", fused)):
        with torch.no_grad():
            forward = median_seconds(function, device, args.repeats)
        both = median_seconds(lambda: forward_backward(function), device, args.repeats)
        if on_cuda:
            torch.cuda.reset_peak_memory_stats(device)
        forward_backward(function)
        peak = torch.cuda.max_memory_allocated(device) / 2**30 if on_cuda else float("nan")
        with torch.no_grad():
            raw = function()
        outputs[name] = (raw.float(), [planes.grad.float()] + [p.grad.float() for p in field.parameters()])
        rows.append((name, forward, both, peak))
    total = args.batch * args.points
    name = torch.cuda.get_device_name(device) if on_cuda else "CPU (interpreter)"
    print(f"field alone, {args.batch} x {args.points:,} points ({total / 1e6:.1f} M), planes {args.channels} -> "
          f"{args.hidden} channels at {args.resolution}^2, {args.layers} layers, {name}, torch {torch.__version__}")
    print("| field | forward ms | forward + backward ms | peak GPU memory GiB |\n|---|---:|---:|---:|")
    for label, forward, both, peak in rows:
        print(f"| {label} | {forward * 1e3:.2f} | {both * 1e3:.2f} | {peak:.2f} |")
    (raw_a, grads_a), (raw_b, grads_b) = outputs["op by op"], outputs["fused field"]
    value = float((raw_b - raw_a).norm() / raw_a.norm())
    gradient = max(float((b - a).norm() / a.norm().clamp_min(1e-12)) for a, b in zip(grads_a, grads_b))
    print(f"relative difference (fused vs op by op): raw outputs {value:.2e}, worst gradient {gradient:.2e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
