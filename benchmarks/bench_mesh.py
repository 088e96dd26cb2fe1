"""The mesh stage on a real object, per step: before (dense grid, binary_fill_holes, PyMCubes) and now.

Loads the shipped model (``mira/weights/mira-demo``), reconstructs the shipped example's triplane once,
then times ``--repeats`` runs (after one warm-up; the paths take turns, and each step's best run is
reported, so that other work on a shared machine skews no path more than another) of each mesh path
at each ``--resolutions``, and checks
that every path gives the same triangles as the old one (up to order; vertices within ``1e-5``):

* ``before``: every grid point through ``renderer.query``, ``scipy.ndimage.binary_fill_holes`` cavity
  filling, PyMCubes, vertex colours (``extract_mesh`` as of 2026-11-25);
* ``dense + pymcubes``, ``dense + torch``: every grid point, extract_mesh's cavity filling (labelling on the CPU, flood fill on a GPU), one of the
  two marching cubes;
* ``coarse-to-fine + pymcubes``, ``coarse-to-fine + torch`` (today's default): the density evaluated
  at full resolution only near the surface (:mod:`mira.rendering.density_grid`).

    python benchmarks/bench_mesh.py                          # CPU, 128^3 and 256^3
    python benchmarks/bench_mesh.py --resolutions 512 --repeats 1 --only_default
    python benchmarks/bench_mesh.py --device cuda --resolutions 256 512
    python benchmarks/bench_mesh.py --quick                  # 48^3, checks the script
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from mira.export.mesh import (  # noqa: E402
    density_function,
    density_grid,
    fill_enclosed_cavities_on_device,
    marching_cubes_world,
    query_density_grid,
    query_vertex_colors,
    renderer_box,
    surface_density_threshold,
)
from mira.benchmarking import print_top_operators  # noqa: E402
from mira.inference.checkpoint import DEFAULT_CHECKPOINT  # noqa: E402
from mira.rendering.density_grid import coarse_to_fine_density_grid  # noqa: E402
from mira.rendering.marching_cubes import triangle_set_difference  # noqa: E402
from mira.inference.pipeline import InferencePipeline, InferenceSettings  # noqa: E402
from mira.inference.preprocess import load_image  # noqa: E402

EXAMPLE = REPO_ROOT / "docs" / "examples" / "procedural_000000000_blender.png"
STEPS = ("density grid", "cavities", "marching cubes", "vertex colours")


def example_triplanes(args: argparse.Namespace) -> tuple[InferencePipeline, torch.Tensor]:
    """The shipped model and the triplanes (1, 3, C, R, R) of the example, as test.py makes them."""
    settings = InferenceSettings(checkpoint_path=args.checkpoint, inputs=[str(args.input)], output_path="unused",
                                 device=args.device, progress=False)
    pipeline = InferencePipeline(settings)
    pipeline.load()
    prepared = pipeline.prepare_image(load_image(str(args.input)), str(args.input))
    return pipeline, pipeline.reconstruct(prepared).float()


def fill_cavities_before(density: np.ndarray, threshold: float) -> np.ndarray:
    """Cavity filling as extract_mesh did it before: ``binary_fill_holes`` over the whole grid."""
    from scipy.ndimage import binary_fill_holes

    occupied = density > threshold
    cavities = binary_fill_holes(occupied) & ~occupied
    if not cavities.any():
        return density
    filled = density.copy()
    filled[cavities] = 2.0 * threshold
    return filled


def mesh_path(renderer, triplanes, resolution: int, threshold: float, grid: str, method: str,
              before: bool = False) -> tuple[dict[str, float], tuple[np.ndarray, np.ndarray]]:
    """One mesh extraction, seconds per step, and its (vertices, faces)."""
    box = renderer_box(renderer)
    seconds: dict[str, float] = {}

    def timed(step: str, function: Callable[[], object]) -> object:
        if triplanes.device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        result = function()
        if triplanes.device.type == "cuda":
            torch.cuda.synchronize()
        seconds[step] = time.perf_counter() - start
        return result

    if before:
        density = timed("density grid", lambda: query_density_grid(renderer, triplanes, resolution, *box))
        density = timed("cavities", lambda: fill_cavities_before(density, threshold))
    else:
        density = timed("density grid", lambda: density_grid(renderer, triplanes, resolution, *box, threshold,
                                                              coarse_to_fine=grid == "coarse-to-fine"))

        density = timed("cavities", lambda: fill_enclosed_cavities_on_device(density, threshold))
    vertices, faces = timed("marching cubes", lambda: marching_cubes_world(density, threshold, *box, method=method))
    timed("vertex colours", lambda: query_vertex_colors(renderer, triplanes, vertices))
    seconds["total"] = sum(seconds.values())
    return seconds, (vertices, faces)


def same_mesh(reference: tuple[np.ndarray, np.ndarray], mesh: tuple[np.ndarray, np.ndarray]) -> str:
    """``same`` (the same triangles, vertices within 1e-5: :func:`triangle_set_difference`), else how they differ."""
    difference = triangle_set_difference(reference, mesh)
    return "same" if difference is None else f"differs: {difference}"


def profile_default_path(renderer, triplanes: torch.Tensor, resolution: int, threshold: float, rows: int = 30) -> None:
    """Print the top operators of one default mesh extraction (device time on a GPU, else CPU time)."""
    with torch.inference_mode():
        print_top_operators(lambda: mesh_path(renderer, triplanes, resolution, threshold, grid="coarse-to-fine",
                                              method="torch"), triplanes.device, rows,
                            f"profile of the default path at {resolution}^3:")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default=str(DEFAULT_CHECKPOINT))
    parser.add_argument("--input", type=Path, default=EXAMPLE)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--resolutions", type=int, nargs="+", default=[128, 256])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only_default", action="store_true",
                        help="time extract_mesh's default path only (e.g. 512^3 on the CPU, where the dense ones take minutes)")
    parser.add_argument("--profile", action="store_true",
                        help="also print the top operators (torch.profiler, device time) of the default path")
    parser.add_argument("--quick", action="store_true", help="48^3, one repeat (checks the script)")
    args = parser.parse_args(argv)
    if args.quick:
        args.resolutions, args.repeats = [48], 1
    pipeline, triplanes = example_triplanes(args)
    renderer = pipeline.model.renderer
    threshold = surface_density_threshold(renderer)
    paths = {
        "before (dense, binary_fill_holes, PyMCubes)": dict(grid="dense", method="pymcubes", before=True),
        "dense + pymcubes": dict(grid="dense", method="pymcubes"),
        "dense + torch": dict(grid="dense", method="torch"),
        "coarse-to-fine + pymcubes": dict(grid="coarse-to-fine", method="pymcubes"),
        "coarse-to-fine + torch (default)": dict(grid="coarse-to-fine", method="torch"),
    }
    if args.only_default:
        paths = {name: options for name, options in paths.items() if name.endswith("(default)")}
    device = args.device if args.device != "cpu" else f"cpu, {torch.get_num_threads()} threads"
    print(f"{args.input.name} with {args.checkpoint} on {device}; level {threshold:g}; seconds: the best of "
          f"{args.repeats} runs taken in turns with the other paths after a warm-up (median of the total too)")
    print(f"| grid | path | {' | '.join(STEPS)} | total, best (median) | speed-up | mesh |")
    print("|---|---|" + "---:|" * (len(STEPS) + 2) + "---|")
    for resolution in args.resolutions:
        runs: dict[str, list] = {name: [] for name in paths}
        with torch.inference_mode():
            for repeat in range(1 + args.repeats):  # in turns, so that a busy moment of the machine hits every path
                for name, options in paths.items():
                    result = mesh_path(renderer, triplanes, resolution, threshold, **options)
                    if repeat > 0:
                        runs[name].append(result)
        reference, before_total = None, None
        for name in paths:
            best = {key: min(run[0][key] for run in runs[name]) for key in (*STEPS, "total")}
            median = statistics.median(run[0]["total"] for run in runs[name])
            mesh = runs[name][-1][1]
            if reference is None:
                reference, before_total = mesh, best["total"]
                check = f"{len(mesh[0]):,} vertices, {len(mesh[1]):,} faces"
            else:
                check = same_mesh(reference, mesh)
            cells = " | ".join(f"{best[step]:.3f}" for step in STEPS)
            speed_up = f"{before_total / best['total']:.1f}x" if not args.only_default else "-"
            print(f"| {resolution}^3 | {name} | {cells} | **{best['total']:.3f}** ({median:.3f}) | {speed_up} | {check} |",
                  flush=True)
        lo, hi = (torch.as_tensor(b, dtype=torch.float32, device=triplanes.device) for b in renderer_box(renderer))
        with torch.inference_mode():
            sparse = coarse_to_fine_density_grid(density_function(renderer, triplanes), resolution, lo, hi, threshold)
        print(f"|  | coarse-to-fine at {resolution}^3 evaluated {sparse.evaluated_fraction:.1%} of the grid points "
              f"({sparse.rounds} rounds) |")
        if args.profile:
            profile_default_path(renderer, triplanes, resolution, threshold)
    print(f"load average (1 min) at the end: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
