"""Command line: ``python -m mira.data.procedural {write,meshes,benchmark}``.

Examples::

    python -m mira.data.procedural write --output_dir data/procedural --num_train 1000 --num_val 50
    python -m mira.data.procedural meshes --output_dir meshes/procedural --count 20 --seed 0
    python load_input_data.py --objects "meshes/procedural/*.ply" --output_dir data/renders   # render them in Blender
    python -m mira.data.procedural benchmark --device cuda      # ms per training step (B=32, 5 x 64^2 + 224^2)

Bad arguments print one line ``python -m mira.data.procedural: error: ...`` and exit with status 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mira.data.procedural.benchmark import CPU_STEP, TRAINING_STEP, benchmark, format_table
from mira.data.procedural.export import (MIN_IMAGE_SIZE, check_dataset_arguments, check_writable_directory,
                                         export_meshes, write_procedural_dataset)

PROG = "python -m mira.data.procedural"
USAGE_ERROR = 2


class OneLineParser(argparse.ArgumentParser):
    """An argparse parser whose errors are one line (and exit status 2)."""

    def error(self, message: str):  # noqa: D102 - argparse API
        self.exit(USAGE_ERROR, f"{PROG}: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    formatter = argparse.ArgumentDefaultsHelpFormatter
    parser = OneLineParser(prog=PROG, formatter_class=formatter,
                           description="Procedural training objects (SDF composites) rendered like the Blender "
                                       "script: a dataset, meshes for Blender, or a speed benchmark.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)

    write = commands.add_parser("write", formatter_class=formatter,
                                help="render a dataset in MIRA's render layout (+ mesh.ply, index.json)")
    write.add_argument("--output_dir", required=True, help="dataset folder")
    write.add_argument("--num_train", type=int, required=True, help="training objects (indices 0..N-1)")
    write.add_argument("--num_val", type=int, required=True, help="validation objects (indices VAL_OFFSET + i)")
    write.add_argument("--num_views", type=int, default=16, help="views per object")
    write.add_argument("--size", type=int, default=128, help=f"image side in pixels (>= {MIN_IMAGE_SIZE})")
    write.add_argument("--seed", type=int, default=0, help="dataset seed")
    write.add_argument("--mesh_resolution", type=int, default=128, help="marching-cubes grid of mesh.ply")
    write.add_argument("--supersample", type=int, default=2, help="rays per pixel along each axis")
    write.add_argument("--device", default="auto", help="auto, cpu or cuda")

    meshes = commands.add_parser("meshes", formatter_class=formatter,
                                 help="write meshes of procedural objects (for Blender: load_input_data.py --objects)")
    meshes.add_argument("--output_dir", required=True, help="folder for procedural_<index>.<suffix>")
    meshes.add_argument("--count", type=int, required=True, help="number of objects")
    meshes.add_argument("--seed", type=int, default=0, help="dataset seed")
    meshes.add_argument("--start", type=int, default=0, help="first object index")
    meshes.add_argument("--resolution", type=int, default=192, help="marching-cubes grid")
    meshes.add_argument("--suffix", default=".ply", choices=[".ply", ".obj", ".glb"], help="mesh format")
    meshes.add_argument("--device", default="auto", help="auto, cpu or cuda")

    bench = commands.add_parser("benchmark", formatter_class=formatter,
                                help="milliseconds per training step's worth of objects and renders")
    bench.add_argument("--device", default="auto", help="auto, cpu or cuda")
    bench.add_argument("--batch", type=int, default=None,
                       help=f"objects per step (default {TRAINING_STEP['batch']} on CUDA, {CPU_STEP['batch']} on CPU)")
    bench.add_argument("--views", type=int, default=None, help="target views per object")
    bench.add_argument("--size", type=int, default=None, help="target view side")
    bench.add_argument("--source_size", type=int, default=None, help="source view side")
    bench.add_argument("--repeats", type=int, default=3, help="timed repetitions (median)")
    bench.add_argument("--max_steps", type=int, default=64, help="sphere-tracing steps")
    return parser


def _device(name: str):
    from mira.devices import DeviceUnavailableError, resolve_device

    try:
        return resolve_device(name)
    except DeviceUnavailableError as error:
        raise ValueError(str(error)) from error


def run(args: argparse.Namespace) -> str:
    """Carry out a parsed command; returns the line to print. ValueError / OSError = bad input."""
    if args.command == "write":
        check_dataset_arguments(args.num_train, args.num_val, args.num_views, args.size, args.seed,
                                args.mesh_resolution)
        if args.supersample < 1:
            raise ValueError(f"--supersample must be >= 1, got {args.supersample}")
        check_writable_directory(args.output_dir)
        out = write_procedural_dataset(args.output_dir, args.num_train, args.num_val, args.num_views, args.size,
                                       args.seed, args.mesh_resolution, _device(args.device), args.supersample)
        return f"wrote {args.num_train} train + {args.num_val} val objects to {out} (index.json)"
    if args.command == "meshes":
        if args.count < 0 or args.start < 0 or args.seed < 0:
            raise ValueError(f"--count, --start and --seed must be >= 0, got {args.count}, {args.start}, {args.seed}")
        if args.resolution < 8:
            raise ValueError(f"--resolution must be >= 8, got {args.resolution}")
        check_writable_directory(args.output_dir)
        paths = export_meshes(args.output_dir, range(args.start, args.start + args.count), args.seed, args.resolution,
                              args.suffix, _device(args.device))
        return f"wrote {len(paths)} meshes to {Path(args.output_dir)}"
    device = _device(args.device)
    step = TRAINING_STEP if device.type == "cuda" else CPU_STEP
    sizes = {key: getattr(args, key) if getattr(args, key) is not None else step[key] for key in step}
    if min(sizes.values()) < 1 or args.repeats < 1 or args.max_steps < 1:
        raise ValueError(f"benchmark sizes, --repeats and --max_steps must be >= 1, got {sizes}")
    rows = benchmark(device, sizes["batch"], sizes["views"], sizes["size"], sizes["source_size"],
                     repeats=args.repeats, max_steps=args.max_steps)
    return format_table(rows, device, sizes["batch"])


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "--benchmark":  # the documented shorthand
        argv[0] = "benchmark"
    args = build_parser().parse_args(argv)
    try:
        print(run(args))
    except (ValueError, OSError) as error:
        sys.stderr.write(f"{PROG}: error: {error}\n")
        return USAGE_ERROR
    return 0
