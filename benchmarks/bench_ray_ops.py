"""The per-ray scans and merges of the renderer, alone: ``torch.cumsum`` along the samples against
:func:`mira.rendering.compositing.cumsum_along_rays`, and ``merge_samples`` by sort against by rank, at the
shapes of a video chunk and of a training step (CUDA-synchronised medians).

    python benchmarks/bench_ray_ops.py --device cuda
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from mira.benchmarking import median_seconds  # noqa: E402
from mira.rendering.compositing import cumsum_along_rays  # noqa: E402
from mira.rendering.ray_sampler import merge_samples  # noqa: E402

SHAPES = {"video chunk, demo (65k rays x 32)": (65_536, 32), "video chunk, base (262k rays x 64)": (262_144, 64),
          "training step, base (131k rays x 128)": (131_072, 128)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--quick", action="store_true", help="small shapes (checks the script)")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    print("| shape | torch.cumsum ms | cumsum_along_rays ms | merge by sort ms | merge by rank ms |")
    print("|---|---:|---:|---:|---:|")
    for name, (rays, samples) in SHAPES.items():
        if args.quick:
            rays //= 256
        values = torch.rand(1, rays, samples, device=device)
        t_a = torch.rand(1, rays, samples, device=device).sort(dim=-1).values
        t_b = torch.rand(1, rays, samples, device=device).sort(dim=-1).values
        v_a, v_b = [torch.rand(1, rays, samples, 1, device=device), torch.rand(1, rays, samples, 3, device=device)], \
            [torch.rand(1, rays, samples, 1, device=device), torch.rand(1, rays, samples, 3, device=device)]
        cells = [1e3 * median_seconds(lambda: torch.cumsum(values, dim=-1), device), 1e3 * median_seconds(lambda: cumsum_along_rays(values), device),
                 1e3 * median_seconds(lambda: merge_samples(t_a, v_a, t_b, v_b), device),
                 1e3 * median_seconds(lambda: merge_samples(t_a, v_a, t_b, v_b, presorted=True), device)]
        print(f"| {name} | " + " | ".join(f"{cell:.3f}" for cell in cells) + " |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
