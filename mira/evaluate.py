"""Evaluate a checkpoint on held-out objects: image and geometry metrics per object and on average.

    python -m mira.evaluate --checkpoint checkpoints/mira-base/final --data data/renders \\
        --split val --out outputs/eval [--render_size 128] [--lpips_backbone pretrained]

Each object's source view (default: the view nearest 20 degrees elevation) is reconstructed and
every other view is rendered and scored (PSNR, SSIM, LPIPS, mask IoU); the mesh is scored against the
object's ``mesh.ply`` (Chamfer distance, F-score@tau). Writes ``OUT/metrics.json`` (per-object
and mean figures, the protocol settings), ``OUT/metrics.md`` (a Markdown table) and
``OUT/renders/<object>.png``. The protocol is in ``docs/EVALUATION.md``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any, Sequence

from mira.evaluation.scoring import add_scoring_arguments


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m mira.evaluate", description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", default=None,
                        help="save_pretrained directory, training checkpoint (.pt or its directory), .safetensors or hub id")
    parser.add_argument("--baseline", choices=("sphere",), default=None,
                        help="evaluate the trivial baseline instead of a checkpoint (needs --config_path for the "
                             "source-view contract): the sphere of the source view's size and mean colour")
    parser.add_argument("--config_path", default=None, help="config JSON for checkpoints without one (sampling keys override)")
    parser.add_argument("--data", required=True, help="dataset root with index.json, a folder of object folders, or one object")
    parser.add_argument("--split", default="val", help="split of index.json to evaluate")
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--render_size", type=int, default=None, help="image side rendered and scored (default: the config's render_size)")
    parser.add_argument("--source_view", type=int, default=None,
                        help="position of the source view in each object's views (default: chosen by elevation)")
    parser.add_argument("--source_elevation", type=float, default=20.0,
                        help="without --source_view: use the view whose camera elevation is closest to this (degrees)")
    add_scoring_arguments(parser)
    parser.add_argument("--views_per_batch", type=int, default=8, help="views per renderer call")
    parser.add_argument("--max_objects", type=int, default=None, help="evaluate only the first N objects")
    parser.add_argument("--save_meshes", action="store_true", help="also write OUT/meshes/<object>.ply")
    parser.add_argument("--no_renders", action="store_true", help="do not write OUT/renders/<object>.png")
    parser.add_argument("--seed", type=int, default=0, help="surface sampling seed")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from mira.config import ConfigError, load_config
    from mira.data import DatasetFormatError
    from mira.devices import resolve_device
    from mira.evaluation.metrics import MissingWeightsError
    from mira.evaluation.protocol import EvaluationSettings, SpherePredictor, evaluate_dataset
    from mira.inference.checkpoint import load_model
    from mira.inference.errors import InferenceError

    settings = EvaluationSettings(
        split=args.split, render_size=args.render_size, source_view=args.source_view, source_elevation_deg=args.source_elevation,
        lpips_backbone=args.lpips_backbone, lpips_net=args.lpips_net, mesh_resolution=args.mesh_resolution,
        density_threshold=args.density_threshold, fscore_taus=args.fscore_tau, geometry_samples=args.geometry_samples,
        views_per_batch=args.views_per_batch, max_objects=args.max_objects, save_renders=not args.no_renders,
        save_meshes=args.save_meshes, seed=args.seed, progress=not args.quiet,
    )
    try:
        device = resolve_device(args.device)
        if args.baseline == "sphere":
            if args.config_path is None:
                raise ConfigError("--baseline sphere needs --config_path (the model config whose source-view contract it uses)")
            predictor = SpherePredictor(load_config(args.config_path), device)
        elif args.checkpoint is None:
            raise ConfigError("pass --checkpoint (or --baseline sphere)")
        else:
            predictor = load_model(args.checkpoint, args.config_path, device=device)
        summary = evaluate_dataset(predictor, args.data, args.out, settings)
    except (ConfigError, DatasetFormatError, InferenceError, MissingWeightsError, FileNotFoundError, ValueError) as error:
        raise SystemExit(f"mira.evaluate: error: {error}") from error
    print(summary_line(summary, settings))
    return summary


def summary_line(summary: dict[str, Any], settings: Any) -> str:
    """One line of the mean headline figures."""
    keys = ["psnr", "ssim", "lpips", "mask_iou", "chamfer", f"fscore@{settings.fscore_taus[0]:g}"]
    mean = summary["mean"]
    figures = [f"{key} {mean[key]:.4f}" for key in keys if isinstance(mean.get(key), float) and mean[key] == mean[key]]
    return f"{summary['num_objects']} objects ({len(summary['failed'])} skipped): " + ", ".join(figures)


if __name__ == "__main__":
    main(sys.argv[1:])
