"""README command 1, timed: test.py's pipeline with the shipped model on the shipped example.

Loads ``mira/weights/mira-demo`` once, then reconstructs ``docs/examples/<example>.png`` to a mesh
and an orbit video ``--repeats`` times (after one warm-up) with the device's default output sizes
(on the CPU: mesh 128^3 and 60 frames of 128^2) in three video modes -- the device's default
(on the CPU: the field baked on a 96^3 grid, with empty-space skipping; on a GPU: baked on 256^3, with
skipping), the field baked on 128^3 with skipping, the exact field with skipping, and the exhaustive
exact field -- and prints the seconds per stage (medians) and each mode's video PSNR against the
exhaustive frames (issue 12 asks >= 40 dB) as a table. The target for 2 CPU cores is 30 s per image.
The 256^3 bake runs on a GPU only. ``--profile`` prints the top operators (device time) of one image in
each mode (``torch.profiler``).

    python benchmarks/bench_quickstart.py                       # CPU, the three video modes
    python benchmarks/bench_quickstart.py --device cuda --repeats 5
    python benchmarks/bench_quickstart.py --quick               # seconds: checks the script
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from mira.benchmarking import print_top_operators  # noqa: E402
from mira.inference.checkpoint import DEFAULT_CHECKPOINT  # noqa: E402
from mira.inference.pipeline import InferencePipeline, InferenceSettings, WorkItem  # noqa: E402
from mira.inference.preprocess import load_image  # noqa: E402

EXAMPLE = REPO_ROOT / "docs" / "examples" / "procedural_000000000_blender.png"
STAGES = ("preprocess", "reconstruct", "mesh", "video", "total")


VIDEO_MODES = {  # name: (skip_empty_space, video_bake_resolution; None = the device's default)
    "default (CPU: baked 96^3 + skipping; GPU: baked 256^3 + skipping)": (True, None),
    "baked 128^3 + skipping": (True, 128),
    "baked 256^3 + skipping": (True, 256),
    "exact field, skipping": (True, 0),
    "exhaustive": (False, 0),
}
REFERENCE_MODE = "exhaustive"


def video_psnr(frames: np.ndarray, reference: np.ndarray) -> float:
    """PSNR (dB) of uint8 frames (F, H, W, 3) against the reference frames, over all pixels of all frames."""
    error = np.mean((frames.astype(np.float64) - reference.astype(np.float64)) ** 2)
    return float("inf") if error == 0 else float(10.0 * np.log10(255.0**2 / error))


def time_pipeline(args: argparse.Namespace, skip_empty_space: bool, bake: int | None, output: Path) -> dict:
    """Median seconds per stage of ``--repeats`` runs (after one warm-up), the model load, and the video
    frames of this mode (``frames``, for :func:`video_psnr`)."""
    sizes = {"mesh_resolution": 32, "num_frames": 4, "render_size": 32} if args.quick else {}
    settings = InferenceSettings(
        checkpoint_path=args.checkpoint, inputs=[str(args.input)], output_path=str(output), export_mesh=True,
        export_video=True, device=args.device, progress=False, skip_empty_space=skip_empty_space,
        video_bake_resolution=bake, **sizes,
    )
    pipeline = InferencePipeline(settings)
    pipeline.load()
    item = WorkItem(str(args.input), "example")
    runs = []
    cuda = pipeline.device.type == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats(pipeline.device)
    for _ in range(1 + args.repeats):
        start = time.perf_counter()
        folder = pipeline.process(item)
        result = json.loads((folder / "result.json").read_text())
        runs.append({**result["timings_s"], "wall": time.perf_counter() - start,
                     "video render": result["video"]["render_seconds"]})
    measured = runs[1:]
    if args.profile:
        profile_process(pipeline, item, f"video bake {bake}, skipping {skip_empty_space}")
    medians = {key: statistics.median(run[key] for run in measured) for key in (*STAGES, "wall", "video render")}
    medians["load"] = pipeline.load_seconds
    medians["peak_gib"] = torch.cuda.max_memory_allocated(pipeline.device) / 2**30 if cuda else None
    settings = pipeline.settings
    medians["sizes"] = f"mesh {settings.mesh_resolution}^3, {settings.num_frames} x {settings.render_size}^2"
    prepared = pipeline.prepare_image(load_image(str(args.input)), str(args.input))
    torch.manual_seed(settings.seed)
    medians["frames"], _ = pipeline.render_video_frames(pipeline.reconstruct(prepared), prepared)
    return medians


def profile_process(pipeline: InferencePipeline, item: WorkItem, label: str, rows: int = 30) -> None:
    """Print the top operators (device time on a GPU, else CPU time) of one ``process`` call."""
    print_top_operators(lambda: pipeline.process(item), pipeline.device, rows, f"\nprofile of one image ({label}):")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default=str(DEFAULT_CHECKPOINT))
    parser.add_argument("--input", type=Path, default=EXAMPLE)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--profile", action="store_true", help="print the top operators of one image per mode")
    parser.add_argument("--quick", action="store_true", help="tiny outputs, one repeat (checks the script)")
    args = parser.parse_args(argv)
    if args.quick:
        args.repeats = 1
    threads = torch.get_num_threads()
    rows = {}
    with tempfile.TemporaryDirectory() as temp:
        for index, (name, (skip, bake)) in enumerate(VIDEO_MODES.items()):
            if bake == 256 and not args.device.startswith("cuda"):
                continue
            rows[name] = time_pipeline(args, skip, bake, Path(temp) / str(index))
    print(f"\n{args.input.name} with {args.checkpoint} on {args.device} ({threads} threads), median of {args.repeats}")
    print("| video mode | outputs | load | preprocess | reconstruct | mesh | video (render) | total per image | video PSNR dB | "
          "peak GPU GiB |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    reference = rows[REFERENCE_MODE]["frames"]
    for name, row in rows.items():
        psnr = "reference" if name == REFERENCE_MODE else f"{video_psnr(row['frames'], reference):.1f}"
        print(f"| {name} | {row['sizes']} | {row['load']:.2f} | {row['preprocess']:.2f} | {row['reconstruct']:.2f} | "
              f"{row['mesh']:.2f} | {row['video']:.2f} ({row['video render']:.2f}) | **{row['total']:.2f}** | {psnr} | "
              f"{'-' if row['peak_gib'] is None else format(row['peak_gib'], '.2f')} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
