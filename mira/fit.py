"""Fit a triplane directly to one rendered object: a check of the data and cameras.

    python -m mira.fit --data data/renders/<object_id> --out outputs/fit/<object_id> \\
        --steps 3000 [--config configs/config.json] [--triplane_res 64 --triplane_dim 40] \\
        [--render_size 128] [--holdout_every 4] [--lpips_backbone pretrained|random|none]

Optimises a free triplane (1, 3, C, R, R) and the renderer MLP on the training views (all but
every ``holdout_every``-th view), then writes held-out PSNR / SSIM / LPIPS / mask IoU and the
Chamfer distance / F-score against the object's ``mesh.ply`` to ``OUT/metrics.json``, with the
mesh, a turntable video and a held-out comparison image. See ``docs/EVALUATION.md``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from mira.config import ConfigError, MiraConfig, load_config
from mira.evaluation.fitting import FitOptions
from mira.evaluation.scoring import add_scoring_arguments

if TYPE_CHECKING:
    from mira.evaluation.fit_object import FitEvaluationSettings


def parse_overrides(pairs: Sequence[str]) -> dict[str, Any]:
    """``["key=value", ...]`` -> dict; values are parsed as JSON when they can be (numbers, lists)."""
    overrides: dict[str, Any] = {}
    for pair in pairs:
        if "=" not in pair:
            raise ConfigError(f"--set expects KEY=VALUE, got '{pair}'")
        key, text = pair.split("=", 1)
        try:
            overrides[key.strip()] = json.loads(text)
        except json.JSONDecodeError:
            overrides[key.strip()] = text
    return overrides


def load_cli_config(path: str | None, overrides: Sequence[str]) -> MiraConfig:
    """The config file (or the defaults) with ``--set KEY=VALUE`` overrides applied."""
    config = load_config(path) if path else MiraConfig()
    if overrides:
        config.override(source="--set", **parse_overrides(overrides))
    return config


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m mira.fit", description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="one object's render directory (DIR/<object_id>)")
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--config", default=None, help="config JSON (renderer settings, default triplane size)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config key, e.g. --set rendering_samples_per_ray=64 (repeatable)")
    fit = parser.add_argument_group("optimisation")
    defaults = FitOptions()
    fit.add_argument("--steps", type=int, default=defaults.steps)
    fit.add_argument("--batch_rays", type=int, default=defaults.batch_rays, help="rays per step")
    fit.add_argument("--lr", type=float, default=defaults.lr, help="Adam learning rate of the triplane")
    fit.add_argument("--mlp_lr", type=float, default=defaults.mlp_lr, help="Adam learning rate of the renderer MLP")
    fit.add_argument("--final_lr_ratio", type=float, default=defaults.final_lr_ratio)
    fit.add_argument("--mask_loss_weight", type=float, default=defaults.mask_loss_weight,
                     help="weight of MSE(opacity, alpha); 0 fits colour only")
    fit.add_argument("--tv_weight", type=float, default=defaults.tv_weight, help="triplane total-variation weight")
    fit.add_argument("--triplane_res", type=int, default=None, help="triplane side R (default: the config's triplane_res)")
    fit.add_argument("--triplane_dim", type=int, default=None, help="channels C (default: the config's triplane_dim)")
    fit.add_argument("--init_std", type=float, default=defaults.init_std)
    fit.add_argument("--seed", type=int, default=defaults.seed)
    ev = parser.add_argument_group("evaluation and outputs")
    ev.add_argument("--render_size", type=int, default=None, help="image side fitted and scored (default: the config's render_size)")
    ev.add_argument("--holdout_every", type=int, default=4, help="hold out views 0, k, 2k, ...")
    add_scoring_arguments(ev)
    ev.add_argument("--video_frames", type=int, default=60, help="turntable frames (0: no video)")
    ev.add_argument("--video_elevation", type=float, default=20.0, help="turntable elevation (degrees)")
    ev.add_argument("--no_mesh", action="store_true", help="score the mesh but do not write it")
    ev.add_argument("--no_tensorboard", action="store_true")
    ev.add_argument("--quiet", action="store_true", help="no progress bar")
    ev.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    return parser


def options_from_args(args: argparse.Namespace) -> FitOptions:
    """The optimisation settings of parsed CLI arguments."""
    return FitOptions(
        steps=args.steps, batch_rays=args.batch_rays, lr=args.lr, mlp_lr=args.mlp_lr,
        final_lr_ratio=args.final_lr_ratio, mask_loss_weight=args.mask_loss_weight, tv_weight=args.tv_weight,
        triplane_res=args.triplane_res, triplane_dim=args.triplane_dim, init_std=args.init_std, seed=args.seed,
    )


def settings_from_args(args: argparse.Namespace) -> "FitEvaluationSettings":
    """The scoring / output settings of parsed CLI arguments."""
    from mira.evaluation.fit_object import FitEvaluationSettings

    return FitEvaluationSettings(
        render_size=args.render_size, holdout_every=args.holdout_every, lpips_backbone=args.lpips_backbone,
        lpips_net=args.lpips_net, mesh_resolution=args.mesh_resolution, density_threshold=args.density_threshold,
        fscore_taus=args.fscore_tau, geometry_samples=args.geometry_samples, video_frames=args.video_frames,
        video_elevation_deg=args.video_elevation, save_mesh=not args.no_mesh,
        tensorboard=not args.no_tensorboard, progress=not args.quiet,
    )


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the fit; returns the metrics written to ``OUT/metrics.json``. Errors exit with a message."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from mira.data import DatasetFormatError, ImageLoadError
    from mira.evaluation.fit_object import fit_object, load_views
    from mira.evaluation.metrics import MissingWeightsError

    try:
        options, settings = options_from_args(args), settings_from_args(args)
        options.validate()
        config = load_cli_config(args.config, args.set)
        views = load_views(args.data, config)
        metrics = fit_object(views, args.out, config, options, settings, device=args.device, object_name=Path(args.data).name)
    except (ConfigError, DatasetFormatError, ImageLoadError, FileNotFoundError, MissingWeightsError, ValueError) as error:
        raise SystemExit(f"mira.fit: error: {error}") from error
    print(summary_line(metrics))
    return metrics


def summary_line(metrics: dict[str, Any]) -> str:
    """One human-readable line of the headline figures."""
    parts = []
    for key, fmt in (("psnr", "PSNR {:.2f} dB"), ("ssim", "SSIM {:.4f}"), ("lpips", "LPIPS {:.4f}"),
                     ("mask_iou", "mask IoU {:.4f}"), ("chamfer", "Chamfer {:.4f}"), ("fscore@0.1", "F@0.1 {:.4f}")):
        value = metrics.get(key)
        if isinstance(value, float) and value == value:
            parts.append(fmt.format(value))
    return f"held-out ({metrics.get('num_heldout_views')} views): " + ", ".join(parts) + f"  [fit {metrics.get('fit_seconds', 0):.1f} s]"


if __name__ == "__main__":
    main(sys.argv[1:])
