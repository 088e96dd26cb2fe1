"""The triplane lookup alone: MIRA's Triton kernels against ``F.grid_sample``, forward and backward.

Times :func:`mira.rendering.triplane.sample_triplane` with ``fused=False`` (``grid_sample`` on NCHW planes,
the features permuted to ``(B, P, 3C)``) and ``fused=True`` (:mod:`mira.rendering.triplane_kernels`) on one
batch of random triplanes and random points in the box, at the sizes of a ``mira-base`` training step by
default (8 triplanes of 3 x 80 x 64 x 64, 16 384 rays x 128 samples per triplane = 2.1 M points each), under
bf16 autocast as training runs it; checks that both give the same features and triplane gradients.

    python benchmarks/bench_triplane.py --device cuda
    python benchmarks/bench_triplane.py --device cuda --points 262144 --channels 40   # TripoSR-like
    python benchmarks/bench_triplane.py --quick        # CPU, tiny sizes, the interpreter (checks the script)
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from mira.rendering.triplane import PLANE_AXES_BY_NAME, normalize_points, sample_triplane  # noqa: E402
from mira.rendering.triplane_kernels import fused_sample_triplane  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch", type=int, default=8, help="triplanes")
    parser.add_argument("--channels", type=int, default=80, help="channels per plane")
    parser.add_argument("--resolution", type=int, default=64, help="plane side")
    parser.add_argument("--points", type=int, default=16384 * 128, help="points per triplane")
    parser.add_argument("--precision", choices=("bf16", "fp32"), default="bf16", help="triplanes and autocast")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--quick", action="store_true", help="CPU, tiny sizes, Triton's interpreter")
    return parser.parse_args(argv)


def timed(function: Callable[[], object], repeats: int, device: torch.device) -> float:
    """Median seconds of ``function`` after one warm-up (which also runs Triton's autotuning)."""
    function()
    seconds = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        function()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.quick:
        args.device, args.batch, args.channels, args.resolution, args.points, args.repeats = "cpu", 2, 12, 8, 300, 1
    device = torch.device(args.device)
    dtype = torch.bfloat16 if args.precision == "bf16" and device.type == "cuda" else torch.float32
    generator = torch.Generator().manual_seed(0)
    triplanes = torch.randn(args.batch, 3, args.channels, args.resolution, args.resolution,
                            generator=generator).to(device, dtype).requires_grad_(True)
    points = (torch.rand(args.batch, args.points, 3, generator=generator) * 2.2 - 1.1).to(device)
    box_min, box_max = -torch.ones(3, device=device), torch.ones(3, device=device)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=dtype == torch.bfloat16)
    grad_out = torch.randn(args.batch, args.points, 3 * args.channels, generator=generator).to(device)

    def lookup(fused: bool) -> torch.Tensor:
        with autocast:
            if fused and device.type == "cpu":  # sample_triplane keeps grid_sample on the CPU: call the kernels
                return fused_sample_triplane(triplanes, normalize_points(points, box_min, box_max),
                                             PLANE_AXES_BY_NAME["xy_xz_yz"], torch.float32)
            return sample_triplane(triplanes, points, box_min, box_max, "concat", fused=fused)

    def forward_backward(fused: bool) -> None:
        features = lookup(fused)
        features.backward(grad_out.to(features.dtype))

    rows, outputs = [], {}
    for fused in (False, True):
        name = "fused Triton" if fused else "grid_sample"
        with torch.no_grad():
            forward = timed(lambda: lookup(fused), args.repeats, device)
        both = timed(lambda: forward_backward(fused), args.repeats, device)
        triplanes.grad = None
        features = lookup(fused)
        features.backward(grad_out.to(features.dtype))
        outputs[fused] = (features.detach().float(), triplanes.grad.float())
        triplanes.grad = None
        rows.append((name, forward, both - forward, both))
    value_error = (outputs[True][0] - outputs[False][0]).abs().max().item()
    grad_error = (outputs[True][1] - outputs[False][1]).abs().max().item()
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu (Triton interpreter)"
    print(f"device {name}, {args.batch} triplanes of 3 x {args.channels} x {args.resolution}^2, "
          f"{args.points:,} points each, triplanes {str(dtype).removeprefix('torch.')}")
    print("| lookup | forward ms | backward ms | forward + backward ms |")
    print("|---|---:|---:|---:|")
    for label, forward, backward, both in rows:
        print(f"| {label} | {forward * 1e3:.2f} | {backward * 1e3:.2f} | {both * 1e3:.2f} |")
    print(f"speed-up (forward + backward): {rows[0][3] / rows[1][3]:.2f}x; max |difference|: features "
          f"{value_error:.2e}, triplane gradients {grad_error:.2e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
