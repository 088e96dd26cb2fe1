"""Seconds per view of each Blender engine for dataset rendering.

    python -m mira.data.bench_render --resolution 128 --samples 8 32 --views 8
    python -m mira.data.bench_render --engines CYCLES --device GPU --resolution 512 --samples 128

Renders one procedural object (``mira.data.synthetic``) with every engine and sample count,
through ``blender_scripts/dataset_rendering.py``, and reports the render seconds per view that
the script records in ``metadata.json`` (Blender start-up and import excluded; the first view,
which includes shader compilation, is reported separately).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from mira.data.blender import RENDER_SCRIPT, blender_command, find_blender
from mira.data.synthetic import make_synthetic_object

ENGINES = ("CYCLES", "BLENDER_EEVEE", "BLENDER_WORKBENCH")


def bench_one(blender: Path, object_path: Path, out: Path, engine: str, samples: int, args: argparse.Namespace) -> dict:
    """Render once; returns timings from metadata.json plus the wall time of the whole process."""
    script_args = ["--object_path", str(object_path), "--output_dir", str(out), "--object_id", f"{engine}_{samples}",
                   "--num_renders", str(args.views), "--resolution", str(args.resolution), "--samples", str(samples),
                   "--engine", engine, "--device", args.device, "--seed", "0", "--elevation_min", "-20",
                   "--elevation_max", "50", "--threads", str(args.threads)]
    started = time.perf_counter()
    result = subprocess.run(blender_command(blender, RENDER_SCRIPT, script_args), capture_output=True, text=True)
    wall = time.perf_counter() - started
    if result.returncode != 0:
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        return {"engine": engine, "samples": samples, "error": lines[-1] if lines else "failed"}
    metadata = json.loads((out / f"{engine}_{samples}" / "metadata.json").read_text())
    per_view = metadata["seconds_per_view"]
    steady = per_view[1:] or per_view
    return {"engine": metadata["engine"], "samples": samples, "first_view_s": per_view[0],
            "seconds_per_view": statistics.median(steady), "process_wall_s": wall}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engines", nargs="+", default=list(ENGINES))
    parser.add_argument("--samples", nargs="+", type=int, default=[8, 32])
    parser.add_argument("--resolution", type=int, default=128)
    parser.add_argument("--views", type=int, default=8)
    parser.add_argument("--device", default="CPU", choices=["CPU", "GPU"])
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--blender", default=None)
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args(argv)
    blender = find_blender(args.blender)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        object_path = Path(tmp) / "object.glb"
        make_synthetic_object((0, 0)).export(object_path)
        for engine in args.engines:
            for samples in args.samples:
                row = bench_one(blender, object_path, Path(tmp) / "out", engine, samples, args)
                rows.append(row)
                if "error" in row:
                    print(f"{engine:18s} samples {samples:4d}: FAILED {row['error']}")
                else:
                    print(f"{row['engine']:18s} samples {samples:4d}: {row['seconds_per_view']:.3f} s/view "
                          f"(first view {row['first_view_s']:.2f} s, process {row['process_wall_s']:.1f} s for "
                          f"{args.views} views at {args.resolution} px, {args.device})", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": platform.processor() or platform.machine(),
                                               "resolution": args.resolution, "views": args.views,
                                               "device": args.device, "results": rows}, indent=1))
    return 0 if all("error" not in r for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
