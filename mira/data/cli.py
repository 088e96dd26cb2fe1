"""Command line of ``load_input_data.py``: gather objects, render them, write the dataset index.

Examples::

    python load_input_data.py --synthetic 100 --output_path data/renders --num_renders 32 \\
        --resolution 256 --engine CYCLES --workers 2 --update_config configs/config.json
    python load_input_data.py --objects "meshes/**/*.glb" --output_path data/renders
    python load_input_data.py --objaverse 1000 --output_path data/renders --device GPU --gpus 0,1,2,3 --workers 8
    python load_input_data.py --index_only --output_path /data/views_release   # index existing folders

``--output_dir`` (the old spelling of ``--output_path``) still works. Blender, PyTorch and the dataset
readers are imported only when needed, so ``--help`` answers at once.
"""

from __future__ import annotations

import argparse
import glob
import json
import logging
import os
import sys
from pathlib import Path

from mira.atomic import write_json_atomic
from mira.cli_options import add_hidden_alias, new_parser, require
from mira.config import ConfigError, MiraConfig
from mira.data.blender import RENDER_SCRIPT, BlenderNotFoundError, find_blender
from mira.data.index import INDEX_FILE, assign_splits, read_done_marker
from mira.data.render_jobs import (FAILURES_FILE, RenderJob, RenderSettings, make_object_ids, render_all,
                                   settings_from_namespace, write_dataset_index)

LOGGER = logging.getLogger("load_input_data")
MESH_SUFFIXES = (".glb", ".gltf", ".obj", ".fbx", ".ply", ".stl", ".usd", ".usda", ".usdc", ".usdz", ".abc",
                 ".blend", ".dae")
SOURCES_DIR = "_sources"

EPILOG = """examples:
  python load_input_data.py --synthetic 8 --output_path data/tiny --num_renders 8 --resolution 64 --samples 16 --workers 2  # README smoke data, about 20 s
  python load_input_data.py --synthetic 100 --output_path data/renders --num_renders 32 --resolution 256 --workers 2 --update_config configs/config.json
  python -m mira.data.procedural meshes --output_dir meshes/procedural --count 4  # some meshes to render
  python load_input_data.py --objects "meshes/procedural/*.ply" --output_path data/procedural-renders --num_renders 8 --resolution 128
  python load_input_data.py --objaverse 1000 --output_path data/objaverse --device GPU --gpus 0,1,2,3 --workers 8  # downloads
  python load_input_data.py --index_only --output_path data/tiny  # (re)index existing object folders
Blender: a `blender` on PATH, MIRA_BLENDER=/path/to/blender, or the bpy wheel in .venv-blender (README).
"""


def build_parser() -> argparse.ArgumentParser:
    """Flags of ``load_input_data.py`` (``--output_dir`` stays as a hidden alias of ``--output_path``)."""
    defaults = RenderSettings()
    parser = new_parser("load_input_data.py", "Make a MIRA multi-view dataset: gather objects, render them with "
                        "Blender, write index.json.", EPILOG)
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--synthetic", type=int, metavar="N", help="N procedurally generated objects (offline)")
    source.add_argument("--objects", nargs="+", metavar="GLOB", help="mesh files, folders or glob patterns")
    source.add_argument("--objaverse", type=int, metavar="N", help="N random Objaverse 1.0 objects (download)")
    source.add_argument("--objaverse_uids", metavar="UIDS", help="Objaverse 1.0 uids: comma list or a file, one per line")
    source.add_argument("--objaverse_xl", type=int, metavar="N", help="N random Objaverse-XL objects (download)")
    source.add_argument("--index_only", action="store_true", help="only (re)write index.json of existing folders")
    parser.add_argument("--output_path", default=None,
                        help="dataset folder: OUTPUT_PATH/<object id>/, index.json (required)")
    add_hidden_alias(parser, "--output_dir", dest="output_path")
    render = parser.add_argument_group("rendering (see blender_scripts/dataset_rendering.py)")
    render.add_argument("--num_renders", type=int, default=defaults.num_renders, help="views rendered per object")
    render.add_argument("--resolution", type=int, default=defaults.resolution, help="image side, pixels")
    render.add_argument("--engine", default=defaults.engine, help="CYCLES, BLENDER_EEVEE or BLENDER_WORKBENCH")
    render.add_argument("--samples", type=int, default=defaults.samples, help="Cycles samples per pixel")
    render.add_argument("--device", default=None, choices=["CPU", "GPU"],
                        help="Blender Cycles device (default: GPU with --gpus, else CPU)")
    render.add_argument("--camera_dist_min", type=float, default=defaults.camera_dist_min,
                        help="nearest camera distance from the object centre, world units")
    render.add_argument("--camera_dist_max", type=float, default=defaults.camera_dist_max,
                        help="farthest camera distance, world units")
    render.add_argument("--elevation_min", type=float, default=defaults.elevation_min,
                        help="lowest camera elevation, degrees")
    render.add_argument("--elevation_max", type=float, default=defaults.elevation_max,
                        help="highest camera elevation, degrees")
    render.add_argument("--only_northern_hemisphere", action="store_true", help="cameras above the horizon only")
    render.add_argument("--random_lighting", action="store_true", help="random lights per object (else a fixed rig)")
    render.add_argument("--normalisation", default=defaults.normalisation, choices=["sphere", "box"],
                        help="sphere: bounding sphere of radius 0.9; box: largest side 1.6 (older datasets)")
    render.add_argument("--denoise", action="store_true", help="Cycles denoiser on")
    render.add_argument("--save_depth", action="store_true", help="also write depth maps")
    render.add_argument("--save_normal", action="store_true", help="also write normal maps")
    render.add_argument("--save_mesh", default=defaults.save_mesh, choices=["val", "all", "none"],
                        help="write mesh.ply (ground truth) for validation objects, all objects or none")
    render.add_argument("--seed", type=int, default=defaults.seed, help="cameras, synthetic objects, splits")
    jobs = parser.add_argument_group("jobs")
    jobs.add_argument("--workers", type=int, default=1, help="Blender processes at once")
    jobs.add_argument("--gpus", default=None, help="comma list of GPU ids, e.g. 0,1,2,3 (implies --device GPU; default: none)")
    jobs.add_argument("--threads", type=int, default=None, help="render threads per process (default: cores / workers)")
    jobs.add_argument("--timeout", type=float, default=defaults.timeout, help="seconds per object")
    jobs.add_argument("--val_fraction", type=float, default=0.05, help="share of objects in the validation split")
    jobs.add_argument("--blender", default=None,
                      help="blender executable or python with bpy (default: $MIRA_BLENDER, blender on PATH, "
                           ".venv-blender/bin/python)")
    jobs.add_argument("--blender_script", default=str(RENDER_SCRIPT), help="the per-object render script")
    jobs.add_argument("--download_dir", default="~/.objaverse", help="Objaverse download cache")
    jobs.add_argument("--download_processes", type=int, default=4, help="parallel Objaverse downloads")
    jobs.add_argument("--update_config", metavar="CONFIG",
                      help="set data_dir in this config JSON to --output_path (default: no config is changed)")
    jobs.add_argument("--no_progress", action="store_true", help="no progress bar")
    return parser


# ----------------------------------------------------------------------------- sources
def collect_local_objects(patterns: list[str]) -> list[Path]:
    """Mesh files from files, folders (searched recursively) and glob patterns, sorted, unique."""
    found: set[Path] = set()
    for pattern in patterns:
        path = Path(pattern).expanduser()
        if path.is_dir():
            found.update(p for p in path.rglob("*") if p.suffix.lower() in MESH_SUFFIXES and p.is_file())
        elif path.is_file():
            found.add(path)
        else:
            found.update(Path(p) for p in glob.glob(str(path), recursive=True)
                         if Path(p).is_file() and Path(p).suffix.lower() in MESH_SUFFIXES)
    if not found:
        raise FileNotFoundError(f"no mesh files ({', '.join(MESH_SUFFIXES)}) match {patterns}")
    return sorted(p.resolve() for p in found)


def parse_uids(value: str) -> list[str]:
    path = Path(value).expanduser()
    text = path.read_text() if path.is_file() else value.replace(",", "\n")
    uids = [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]
    if not uids:
        raise ValueError(f"no Objaverse uids in '{value}'")
    return uids


def gather_sources(args: argparse.Namespace, output_dir: Path) -> dict[str, Path]:
    """``{object id: file}`` from the chosen source."""
    if args.synthetic is not None:
        from mira.data.synthetic import write_synthetic_objects

        paths = write_synthetic_objects(args.synthetic, output_dir / SOURCES_DIR / "synthetic", seed=args.seed)
        return {p.stem: p for p in paths}
    if args.objects:
        return make_object_ids(collect_local_objects(args.objects))
    from mira.data import objaverse_source

    if args.objaverse is not None or args.objaverse_uids:
        uids = parse_uids(args.objaverse_uids) if args.objaverse_uids else None
        return objaverse_source.download_objaverse(uids, args.objaverse, args.download_dir,
                                                   args.download_processes, args.seed)
    return objaverse_source.download_objaverse_xl(args.objaverse_xl, args.download_dir,
                                                  args.download_processes, args.seed)


# ----------------------------------------------------------------------------- index & config
def index_existing_folders(output_dir: Path, val_fraction: float, seed: int) -> dict:
    """index.json over every readable object folder (done marker split if any, else hashed)."""
    from mira.data.formats import DatasetFormatError, detect_format

    folders = [c for c in sorted(output_dir.iterdir()) if c.is_dir() and not c.name.startswith((".", "_"))]
    readable = []
    for folder in folders:
        try:
            detect_format(folder)
        except DatasetFormatError:
            continue
        readable.append(folder.name)
    hashed = assign_splits(readable, val_fraction, seed)
    splits = {}
    for object_id in readable:
        marker = read_done_marker(output_dir / object_id)
        splits[object_id] = marker.get("split", "train") if marker else hashed[object_id]
    index = {"train": sorted(i for i, s in splits.items() if s == "train"),
             "val": sorted(i for i, s in splits.items() if s == "val")}
    write_json_atomic(index, output_dir / INDEX_FILE, indent=1)
    return index


def update_config_data_dir(config_path: str | Path, data_dir: str) -> None:
    """Set ``data_dir`` (flat or nested under ``data``) in a config JSON, keeping everything else."""
    config_path = Path(config_path)
    if not config_path.is_file():
        raise FileNotFoundError(f"--update_config: config file not found: {config_path}")
    try:
        values = json.loads(config_path.read_text())
    except json.JSONDecodeError as error:
        raise ConfigError(f"{config_path}: not valid JSON ({error})") from error
    nested = values.get("data")
    if isinstance(nested, dict) and ("data_dir" in nested or "data_dir" not in values):
        nested["data_dir"] = data_dir
    else:
        values["data_dir"] = data_dir
    MiraConfig.from_dict(values, source=str(config_path))  # still a valid config
    write_json_atomic(values, config_path, indent=2)


# ----------------------------------------------------------------------------- main
def make_settings(args: argparse.Namespace) -> tuple[RenderSettings, list[str] | None]:
    gpus = [g.strip() for g in args.gpus.split(",") if g.strip()] if args.gpus else None
    values = dict(vars(args))
    values["device"] = args.device or ("GPU" if gpus else "CPU")
    if args.threads is None:
        values["threads"] = 0 if values["device"] == "GPU" else max(1, (os.cpu_count() or 1) // max(1, args.workers))
    return settings_from_namespace(values), gpus


def run(args: argparse.Namespace) -> int:
    output_dir = Path(args.output_path).expanduser()
    if args.index_only:
        if not output_dir.is_dir():
            raise FileNotFoundError(f"--index_only: folder not found: {output_dir}")
        index = index_existing_folders(output_dir, args.val_fraction, args.seed)
        print(f"indexed {len(index['train'])} train / {len(index['val'])} val objects -> {output_dir / INDEX_FILE}")
    else:
        settings, gpus = make_settings(args)
        blender = find_blender(args.blender)
        output_dir.mkdir(parents=True, exist_ok=True)
        sources = gather_sources(args, output_dir)
        splits = assign_splits(sources, args.val_fraction, args.seed)
        jobs = [RenderJob(object_id, path, splits[object_id]) for object_id, path in sorted(sources.items())]
        summary = render_all(jobs, settings, output_dir, blender, args.workers, gpus, Path(args.blender_script),
                             progress=not args.no_progress)
        index = write_dataset_index(output_dir, summary)
        print(f"rendered {summary.count('done')}, already complete {summary.count('skipped')}, "
              f"failed {summary.count('failed')}; index: {len(index['train'])} train / {len(index['val'])} val "
              f"-> {output_dir / INDEX_FILE}")
        for result in summary.failed:
            print(f"  failed {result.object_id}: {result.reason}")
        if summary.failed:
            print(f"  (details: {output_dir / FAILURES_FILE} and {output_dir / '_logs'})")
        if jobs and len(summary.failed) == len(jobs):
            return 1
    if args.update_config:
        update_config_data_dir(args.update_config, args.output_path)
        print(f"set data_dir = {args.output_path} in {args.update_config}")
    return 0


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    parser = build_parser()
    args = parser.parse_args(argv)
    require(parser, args, "--output_path")
    if not args.index_only and args.synthetic is None and not args.objects and args.objaverse is None \
            and not args.objaverse_uids and args.objaverse_xl is None:
        parser.error("choose a source: --synthetic N, --objects GLOB, --objaverse N, --objaverse_uids, "
                     "--objaverse_xl N or --index_only")
    try:
        return run(args)
    except (FileNotFoundError, BlenderNotFoundError, ConfigError, ValueError, ImportError) as error:
        print(f"load_input_data.py: error: {error}", file=sys.stderr)
        return 2
