"""Evaluate a checkpoint on held-out objects: image and geometry metrics per object and on average.

    python -m mira.evaluate --checkpoint_path C --data_dir data/renders --split val --output_path outputs/eval \\
        [--render_size 128] [--lpips_backbone pretrained|random|none]

Each object's source view (default: the view nearest 20 degrees elevation) is reconstructed and
every other view is rendered and scored (PSNR, SSIM, LPIPS, mask IoU); the mesh is scored against the
object's ``mesh.ply`` (Chamfer distance, F-score@tau). Writes ``OUTPUT_PATH/metrics.json`` (per-object
and mean figures, the protocol settings), ``OUTPUT_PATH/metrics.md`` (a Markdown table) and
``OUTPUT_PATH/renders/<object>.png``. The protocol is in ``docs/EVALUATION.md``. Older spellings
(``--checkpoint``, ``--data``, ``--out``, ``--save_meshes``, ``--quiet``) still work.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any, Sequence

from mira.cli_options import add_hidden_alias, new_parser, require
from mira.evaluation.options import add_scoring_arguments


EPILOG = """examples:
  python -m mira.evaluate --checkpoint_path mira/weights/mira-demo --data_dir data/tiny --split val --output_path outputs/eval-tiny --lpips_backbone none --mesh_resolution 64
  python -m mira.evaluate --baseline sphere --config_path configs/mira-demo.json --data_dir data/tiny --output_path outputs/eval-sphere --lpips_backbone none
  python -m mira.evaluate --checkpoint_path zxhezexin/openlrm-mix-base-1.1 --data_dir data/renders --output_path outputs/eval-openlrm
(data/tiny: python load_input_data.py --synthetic 8 --output_path data/tiny ...; --lpips_backbone none when
torchvision's VGG file is not on this machine, e.g. offline)
"""


def build_parser() -> argparse.ArgumentParser:
    """Flags of ``python -m mira.evaluate`` (old spellings as hidden aliases)."""
    parser = new_parser("python -m mira.evaluate", __doc__.split("\n\n")[0], EPILOG)
    parser.add_argument("--checkpoint_path", default=None,
                        help="save_pretrained directory, training checkpoint (.pt or its directory), .safetensors or "
                             "hub id (default: none; give it or --baseline)")
    add_hidden_alias(parser, "--checkpoint", dest="checkpoint_path")
    parser.add_argument("--baseline", choices=("sphere",), default=None,
                        help="evaluate the trivial baseline instead of a checkpoint (needs --config_path for the "
                             "source-view contract): the sphere of the source view's size and mean colour (default: none)")
    parser.add_argument("--config_path", default=None,
                        help="config JSON for checkpoints without one (sampling keys override; default: the checkpoint's)")
    parser.add_argument("--data_dir", default=None,
                        help="dataset root with index.json, a folder of object folders, or one object (required)")
    add_hidden_alias(parser, "--data", dest="data_dir")
    parser.add_argument("--split", default="val", help="split of index.json to evaluate")
    parser.add_argument("--output_path", default=None, help="folder for metrics.json, metrics.md, renders/ (required)")
    add_hidden_alias(parser, "--out", dest="output_path")
    parser.add_argument("--render_size", type=int, default=None, help="image side rendered and scored (default: the config's render_size)")
    parser.add_argument("--source_view", type=int, default=None,
                        help="position of the source view in each object's views (default: chosen by elevation)")
    parser.add_argument("--source_elevation", type=float, default=20.0,
                        help="without --source_view: use the view whose camera elevation is closest to this (degrees)")
    add_scoring_arguments(parser)
    parser.add_argument("--views_per_batch", type=int, default=8, help="views per renderer call")
    parser.add_argument("--max_objects", type=int, default=None, help="evaluate only the first N objects (default: all)")
    parser.add_argument("--export_mesh", action="store_true", help="also write OUTPUT_PATH/meshes/<object>.ply")
    add_hidden_alias(parser, "--save_meshes", dest="export_mesh", action="store_true")
    parser.add_argument("--no_renders", action="store_true", help="do not write OUTPUT_PATH/renders/<object>.png")
    parser.add_argument("--seed", type=int, default=0, help="surface sampling seed")
    parser.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda or cuda:N")
    parser.add_argument("--no_progress", dest="progress", action="store_false", help="no progress bar")
    add_hidden_alias(parser, "--quiet", dest="progress", action="store_false")
    return parser


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse and check ``argv`` (``--data_dir`` and ``--output_path`` are required under any spelling)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    require(parser, args, "--data_dir", "--output_path")
    return args


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
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
        save_meshes=args.export_mesh, seed=args.seed, progress=args.progress,
    )
    try:
        device = resolve_device(args.device)
        if args.baseline == "sphere":
            if args.config_path is None:
                raise ConfigError("--baseline sphere needs --config_path (the model config whose source-view contract it uses)")
            predictor = SpherePredictor(load_config(args.config_path), device)
        elif args.checkpoint_path is None:
            raise ConfigError("pass --checkpoint_path (or --baseline sphere)")
        else:
            predictor = load_model(args.checkpoint_path, args.config_path, device=device)
        summary = evaluate_dataset(predictor, args.data_dir, args.output_path, settings)
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
