"""Inference speed and memory of MIRA: image -> triplane, mesh, video, end to end.

Random weights (timing does not depend on them): the DINOv2 encoder is built from a
``Dinov2Config`` of the ``facebook/dinov2-base`` architecture, so nothing is downloaded.

    python benchmarks/bench_inference.py --device cuda                 # configs/mira-base.json
    python benchmarks/bench_inference.py --device cuda --precision bf16
    python benchmarks/bench_inference.py --quick                       # tiny config on the CPU (smoke test)
    python benchmarks/bench_inference.py --device cuda --openlrm base  # OpenLRM v1.1 base as converted (docs/PRETRAINED.md)
    python benchmarks/bench_inference.py --device cuda --triposr       # stabilityai/TripoSR as converted (docs/PRETRAINED.md)

Stages (each after warm-up, CUDA-synchronised; peak GPU memory per stage):

* ``image -> triplane``: one ``forward_triplanes`` of a batch of one (encoder + decoder).
* ``mesh N^3``: density grid through ``renderer.query`` (every point, and coarse-to-fine:
  :mod:`mira.rendering.density_grid`), marching cubes (PyMCubes on the CPU, and MIRA's PyTorch
  implementation on the CPU and on the device: :mod:`mira.rendering.marching_cubes`, checked to give
  PyMCubes' triangles), vertex colours; the totals of the old path (every point, PyMCubes) and of
  ``extract_mesh``'s default (coarse-to-fine, torch on the device). A random model has no object, so
  the iso-level is the 95th percentile of its density grid and the surface fills the box (the face
  count is printed: it sets the marching-cubes and colour cost). Coarse-to-fine gains little on such a
  field and can miss speckles smaller than its coarse spacing (its row says whether it gave the dense
  grid's triangles); ``benchmarks/bench_mesh.py`` times a real object.
* ``video``: ``render_orbit_frames`` (120 frames at 256^2 by default) and the mp4 write.
* ``end to end``: ``test.py``'s per-input work (preprocess, reconstruct, mesh at 256^3, video,
  files), with model loading timed separately.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import tempfile
import time
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from mira.benchmarking import benchmark_config  # noqa: E402
from mira.config import MiraConfig  # noqa: E402
from mira.export.mesh import (  # noqa: E402
    COARSE_TO_FINE_MIN_RESOLUTION,
    density_grid,
    marching_cubes_world,
    query_density_grid,
    query_vertex_colors,
    renderer_box,
)
from mira.export.video import render_orbit_frames, write_video  # noqa: E402
from mira.rendering.marching_cubes import triangle_set_difference  # noqa: E402
from mira.inference.pipeline import InferencePipeline, InferenceSettings, WorkItem  # noqa: E402
from mira.cameras import canonical_source_c2w  # noqa: E402

MESH_LEVEL_QUANTILE = 0.95


class Recorder:
    """Seconds and peak GPU memory per stage; prints a markdown table."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.rows: list[dict] = []

    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    @contextmanager
    def peak_memory(self) -> Iterator[dict]:
        info: dict = {}
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        yield info
        if self.device.type == "cuda":
            info["peak_gib"] = torch.cuda.max_memory_allocated(self.device) / 2**30

    def time(self, name: str, function: Callable[[], object], repeats: int, warmup: int, note: str = "") -> object:
        """Run ``function`` ``warmup`` times untimed, then ``repeats`` times; record the median."""
        for _ in range(warmup):
            function()
        seconds = []
        with self.peak_memory() as memory:
            for _ in range(repeats):
                self.sync()
                start = time.perf_counter()
                result = function()
                self.sync()
                seconds.append(time.perf_counter() - start)
        self.add(name, statistics.median(seconds), memory.get("peak_gib"), note, repeats)
        return result

    def add(self, name: str, seconds: float, peak_gib: float | None, note: str = "", repeats: int = 1) -> None:
        self.rows.append({"stage": name, "seconds": seconds, "peak_gpu_gib": peak_gib, "repeats": repeats, "note": note})
        memory = "-" if peak_gib is None else f"{peak_gib:.2f} GiB"
        print(f"  {name}: {seconds:.4f} s, peak {memory} {note}", flush=True)  # kept if a later stage fails

    def table(self) -> str:
        lines = ["| stage | seconds (median) | peak GPU memory (GiB) | notes |", "|---|---:|---:|---|"]
        for row in self.rows:
            memory = "-" if row["peak_gpu_gib"] is None else f"{row['peak_gpu_gib']:.2f}"
            lines.append(f"| {row['stage']} | {row['seconds']:.3f} | {memory} | {row['note']} |")
        return "\n".join(lines)


def model_config(args: argparse.Namespace) -> MiraConfig:
    """The config to time (:func:`mira.benchmarking.benchmark_config` of the command line)."""
    if args.openlrm:
        return benchmark_config(args.config, f"openlrm-{args.openlrm}")
    return benchmark_config(args.config, "triposr" if args.triposr else None)


def config_label(args: argparse.Namespace) -> str:
    """The name of the timed configuration: openlrm-<size>, triposr or the --config path."""
    if args.openlrm:
        return f"openlrm-{args.openlrm}"
    return "triposr" if args.triposr else args.config


def object_image(size: int = 512) -> "Image.Image":  # noqa: F821
    """An RGBA test input: a shaded disc on transparency (no rembg needed)."""
    from PIL import Image

    yy, xx = np.mgrid[0:size, 0:size] / size - 0.5
    inside = (xx**2 + yy**2) < 0.35**2
    rgba = np.zeros((size, size, 4), dtype=np.uint8)
    rgba[..., 0] = (200 * (0.5 + xx)).clip(0, 255)
    rgba[..., 1] = (200 * (0.5 + yy)).clip(0, 255)
    rgba[..., 2] = 90
    rgba[..., 3] = inside * 255
    return Image.fromarray(rgba, mode="RGBA")


def run(args: argparse.Namespace) -> dict:
    device = torch.device(args.device)
    torch.manual_seed(0)
    cfg = model_config(args)
    recorder = Recorder(device)
    autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if args.precision == "bf16" and device.type == "cuda"
                else nullcontext())
    from mira.models import MIRA

    with torch.device(device):
        model = MIRA(cfg).eval()
    parameters = sum(p.numel() for p in model.parameters()) / 1e6
    print(f"device {device} ({torch.cuda.get_device_name(device) if device.type == 'cuda' else 'CPU'}), "
          f"config {config_label(args)}, {parameters:.1f} M parameters, precision {args.precision}", flush=True)

    size = cfg.model.source_size
    images = torch.rand(1, 3, size, size, device=device)
    # a photo framed like our renders: the canonical camera of that focal (a fixed-focal contract: its focal)
    focal = cfg.data.source_model_focal or cfg.data.focal_length
    distance = cfg.data.source_distance_per_focal * focal
    c2w = canonical_source_c2w(torch.tensor([distance], device=device), cfg.data.source_camera_azimuth_deg)
    intrinsics = torch.tensor([[focal, focal, 0.5, 0.5]], device=device)

    def reconstruct():
        with torch.inference_mode(), autocast:
            return model.forward_triplanes(images, c2w, intrinsics)

    triplanes = recorder.time("image -> triplane", reconstruct, args.repeats, args.warmup,
                              f"batch 1, {size}^2 input, triplane {tuple(reconstruct().shape[1:])}")
    triplanes = triplanes.float()
    box = renderer_box(model.renderer)
    level = None
    for resolution in args.mesh_resolutions:
        level = time_mesh(args, model, triplanes, box, resolution, level, autocast, recorder)

    frame_intrinsics = intrinsics[0]
    with torch.inference_mode(), autocast:
        frames = recorder.time(
            f"video: render {args.num_frames} x {args.render_size}^2",
            lambda: render_orbit_frames(model.renderer, triplanes, args.num_frames, args.render_size, 20.0,
                                        distance, frame_intrinsics, cfg.data.source_camera_azimuth_deg),
            1, 1 if args.warmup else 0,
            f"{cfg.renderer.rendering_samples_per_ray}+{cfg.renderer.importance_samples_per_ray} samples/ray, "
            f"ray chunk {cfg.renderer.ray_chunk_size}")
    recorder.add("video: frames/s", args.num_frames / recorder.rows[-1]["seconds"], None, "rendering only")
    with tempfile.TemporaryDirectory() as temp:
        recorder.time("video: mp4 write", lambda: write_video(frames, Path(temp) / "video.mp4", 30), 1, 0, "libx264")
        end_to_end(args, model, cfg, recorder, level, Path(temp))
    if device.type == "cpu":
        recorder.add("process peak RSS (GiB)", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, None,
                     "whole run, CPU memory")
    print(recorder.table())
    return {"device": str(device), "config": config_label(args),
            "precision": args.precision,
            "parameters_m": parameters, "rows": recorder.rows}


def time_mesh(args: argparse.Namespace, model, triplanes: torch.Tensor, box, resolution: int, level: float | None,
              autocast, recorder: Recorder) -> float:
    """The mesh rows at one resolution (see the module docstring); the iso-level (chosen at the first)."""
    device = triplanes.device
    first = len(recorder.rows)
    with torch.inference_mode(), autocast:
        grid = recorder.time(f"mesh {resolution}^3: density grid", lambda: query_density_grid(
            model.renderer, triplanes, resolution, *box, chunk_size=args.mesh_chunk_size), 1, 1,
            f"{resolution**3 / 1e6:.1f} M points, chunks of {args.mesh_chunk_size}")
        level = float(np.quantile(grid, MESH_LEVEL_QUANTILE)) if level is None else level
        coarse_row = len(recorder.rows)
        coarse = recorder.time(f"mesh {resolution}^3: density grid, coarse-to-fine", lambda: density_grid(
            model.renderer, triplanes, resolution, *box, level, coarse_to_fine=True, chunk_size=args.mesh_chunk_size),
            1, 1)
        reference = recorder.time(f"mesh {resolution}^3: marching cubes, PyMCubes", lambda: marching_cubes_world(
            grid, level, *box, method="pymcubes"), 1, 0, "CPU")
        recorder.rows[coarse_row]["note"] = ("full resolution only near the surface; the dense grid's triangles: "
                                             + same_triangles(reference, marching_cubes_world(coarse, level, *box)))
        meshes = {}
        for mc_device in dict.fromkeys(["cpu", device.type]):
            on_device = torch.from_numpy(grid).to(mc_device)
            meshes[mc_device] = recorder.time(
                f"mesh {resolution}^3: marching cubes, torch ({mc_device})",
                lambda: marching_cubes_world(on_device, level, *box, method="torch"), args.repeats, 1,
                f"same triangles as PyMCubes: {same_triangles(reference, marching_cubes_world(on_device, level, *box))}")
        vertices, faces = reference
        recorder.time(f"mesh {resolution}^3: vertex colours", lambda: query_vertex_colors(
            model.renderer, triplanes, vertices, args.mesh_chunk_size), 1, 0,
            f"{len(vertices):,} vertices, {len(faces):,} faces")
        del coarse, meshes
    seconds = {row["stage"].split(": ", 1)[1]: row["seconds"] for row in recorder.rows[first:]}
    peak = max((r["peak_gpu_gib"] or 0) for r in recorder.rows[first:]) if device.type == "cuda" else None
    recorder.add(f"**mesh {resolution}^3 total, before**", seconds["density grid"] + seconds["marching cubes, PyMCubes"]
                 + seconds["vertex colours"], peak, "every grid point, PyMCubes")
    coarse_to_fine = resolution >= COARSE_TO_FINE_MIN_RESOLUTION  # extract_mesh's choice
    recorder.add(f"**mesh {resolution}^3 total, extract_mesh default**",
                 seconds["density grid, coarse-to-fine" if coarse_to_fine else "density grid"]
                 + seconds[f"marching cubes, torch ({device.type})"] + seconds["vertex colours"], peak,
                 f"{'coarse-to-fine' if coarse_to_fine else 'every grid point'}, torch on {device.type}")
    return level


def same_triangles(reference: tuple[np.ndarray, np.ndarray], mesh: tuple[np.ndarray, np.ndarray]) -> str:
    """``yes`` when two meshes have the same triangles (vertices within 1e-5), else how they differ."""
    difference = triangle_set_difference(reference, mesh)
    return "yes" if difference is None else f"no ({difference})"


def end_to_end(args, model, cfg: MiraConfig, recorder: Recorder, level: float, temp: Path) -> None:
    """test.py's path: save_pretrained, load, then one input with mesh + video."""
    checkpoint = model.save_pretrained(temp / "checkpoint")
    object_image().save(temp / "object.png")
    settings = InferenceSettings(
        checkpoint_path=str(checkpoint), inputs=[str(temp / "object.png")], output_path=str(temp / "out"),
        export_mesh=True, export_video=True, mesh_resolution=args.mesh_resolutions[0], density_threshold=level,
        num_frames=args.num_frames, render_size=args.render_size, device=args.device, precision=args.precision,
        progress=False,
    )
    pipeline = InferencePipeline(settings)
    with recorder.peak_memory() as memory:
        pipeline.load()
    recorder.add("load checkpoint (save_pretrained dir)", pipeline.load_seconds, memory.get("peak_gib"),
                 "MIRA init on the device + safetensors")
    item = WorkItem(str(temp / "object.png"), "object")
    recorder.time(
        f"**end to end** (mesh {args.mesh_resolutions[0]}^3 + {args.num_frames}-frame video)",
        lambda: pipeline.process(item), 1, 1 if args.warmup else 0, "preprocess, reconstruct, mesh, video, files")
    stages = json.loads((temp / "out" / "object" / "result.json").read_text())["timings_s"]
    print("end-to-end stages (s):", {k: v for k, v in stages.items()}, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--config", default=str(REPO_ROOT / "configs" / "mira-base.json"))
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32", help="autocast on CUDA")
    parser.add_argument("--mesh_resolutions", "--mesh_resolution", type=int, nargs="+", default=[256, 512],
                        help="mesh grids to time, e.g. --mesh_resolution 512 (the first is also end to end's)")
    parser.add_argument("--mesh_chunk_size", type=int, default=262_144)
    parser.add_argument("--num_frames", type=int, default=120)
    parser.add_argument("--render_size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--openlrm", choices=("small", "base", "large"), default=None,
                        help="time the converted OpenLRM v1.1 model of this size instead of --config")
    parser.add_argument("--triposr", action="store_true",
                        help="time the converted stabilityai/TripoSR model (512 px, 128 samples/ray) instead of --config")
    parser.add_argument("--quick", action="store_true", help="tiny config on the CPU, small sizes (smoke test)")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args(argv)
    if args.openlrm and args.triposr:
        parser.error("--openlrm and --triposr: choose one model")
    if args.quick:
        args.device, args.config = "cpu", str(REPO_ROOT / "configs" / "tiny.json")
        args.mesh_resolutions, args.num_frames, args.render_size = [32, 48], 12, 32
        args.repeats, args.warmup = 3, 2
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error("--device cuda: CUDA is not available here (use --device cpu or --quick)")
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    results = run(args)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
