"""Fit a triplane directly to one rendered object: a check of the data and cameras.

    python -m mira.fit --data_dir data/renders/<object_id> --output_path outputs/fit/<object_id> \\
        --steps 3000 [--config_path configs/config.json] [--triplane_res 64 --triplane_dim 40] \\
        [--render_size 128] [--holdout_every 4] [--lpips_backbone pretrained|random|none]

Optimises a free triplane (1, 3, C, R, R) and the renderer MLP on the training views (all but
every ``holdout_every``-th view), then writes held-out PSNR / SSIM / LPIPS / mask IoU and the
Chamfer distance / F-score against the object's ``mesh.ply`` to ``OUTPUT_PATH/metrics.json``, with
the mesh, a turntable video and a held-out comparison image. See ``docs/EVALUATION.md``. Older
spellings (``--data``, ``--out``, ``--config``, ``--video_frames``, ``--video_elevation``, ``--quiet``)
still work.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from mira.cli_options import add_hidden_alias, add_set_option, new_parser, parse_set_pairs, require
from mira.config import ConfigError, MiraConfig, load_config
from mira.evaluation.options import FitOptions, add_scoring_arguments

if TYPE_CHECKING:
    from mira.evaluation.fit_object import FitEvaluationSettings

EPILOG = """examples:
  python -m mira.fit --data_dir data/tiny/synthetic_00007 --output_path outputs/fit-tiny --config_path configs/tiny.json --steps 300 --lpips_backbone none --mesh_resolution 64
  python -m mira.fit --data_dir data/renders/<object_id> --output_path outputs/fit --steps 3000 --set rendering_samples_per_ray=64
(data/tiny: python load_input_data.py --synthetic 8 --output_path data/tiny ...; --lpips_backbone none when
torchvision's VGG file is not on this machine, e.g. offline)
"""


def load_cli_config(path: str | None, overrides: Sequence[str]) -> MiraConfig:
    """The config file (or the defaults) with ``--set KEY=VALUE`` overrides applied (each parsed with its key's type)."""
    config = load_config(path) if path else MiraConfig()
    if overrides:
        config.override(source="--set", **parse_set_pairs(overrides))
    return config


def build_parser() -> argparse.ArgumentParser:
    """Flags of ``python -m mira.fit`` (old spellings as hidden aliases)."""
    parser = new_parser("python -m mira.fit", __doc__.split("\n\n")[0], EPILOG)
    parser.add_argument("--data_dir", default=None, help="one object's render folder, DATASET/<object_id> (required)")
    add_hidden_alias(parser, "--data", dest="data_dir")
    parser.add_argument("--output_path", default=None, help="folder for metrics.json, mesh, video, logs (required)")
    add_hidden_alias(parser, "--out", dest="output_path")
    parser.add_argument("--config_path", default=None,
                        help="config JSON: renderer settings, default triplane size (default: MiraConfig's defaults)")
    add_hidden_alias(parser, "--config", dest="config_path")
    add_set_option(parser)
    fit = parser.add_argument_group("optimisation")
    defaults = FitOptions()
    fit.add_argument("--steps", type=int, default=defaults.steps, help="optimisation steps")
    fit.add_argument("--batch_rays", type=int, default=defaults.batch_rays, help="rays per step")
    fit.add_argument("--lr", type=float, default=defaults.lr, help="Adam learning rate of the triplane")
    fit.add_argument("--mlp_lr", type=float, default=defaults.mlp_lr, help="Adam learning rate of the renderer MLP")
    fit.add_argument("--final_lr_ratio", type=float, default=defaults.final_lr_ratio,
                     help="learning rates decay exponentially to this fraction by the last step")
    fit.add_argument("--mask_loss_weight", type=float, default=defaults.mask_loss_weight,
                     help="weight of MSE(opacity, alpha); 0 fits colour only")
    fit.add_argument("--tv_weight", type=float, default=defaults.tv_weight, help="triplane total-variation weight")
    fit.add_argument("--triplane_res", type=int, default=None, help="triplane side R (default: the config's triplane_res)")
    fit.add_argument("--triplane_dim", type=int, default=None, help="channels C (default: the config's triplane_dim)")
    fit.add_argument("--init_std", type=float, default=defaults.init_std,
                     help="standard deviation of the random initial triplane features")
    fit.add_argument("--seed", type=int, default=defaults.seed, help="random seed (initial triplane, rays)")
    ev = parser.add_argument_group("evaluation and outputs")
    ev.add_argument("--render_size", type=int, default=None, help="image side fitted and scored (default: the config's render_size)")
    ev.add_argument("--holdout_every", type=int, default=4, help="hold out views 0, k, 2k, ...")
    add_scoring_arguments(ev)
    ev.add_argument("--num_frames", type=int, default=60, help="turntable video frames (0: no video)")
    add_hidden_alias(ev, "--video_frames", dest="num_frames", type=int)
    ev.add_argument("--elevation", type=float, default=20.0, help="turntable elevation, degrees")
    add_hidden_alias(ev, "--video_elevation", dest="elevation", type=float)
    ev.add_argument("--no_mesh", action="store_true", help="score the mesh but do not write it")
    ev.add_argument("--no_tensorboard", action="store_true", help="no TensorBoard logs in OUTPUT_PATH/logs")
    ev.add_argument("--no_progress", dest="progress", action="store_false", help="no progress bar")
    add_hidden_alias(ev, "--quiet", dest="progress", action="store_false")
    ev.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda or cuda:N")
    return parser


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse and check ``argv`` (``--data_dir`` and ``--output_path`` are required under any spelling)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    require(parser, args, "--data_dir", "--output_path")
    return args


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
        fscore_taus=args.fscore_tau, geometry_samples=args.geometry_samples, video_frames=args.num_frames,
        video_elevation_deg=args.elevation, save_mesh=not args.no_mesh,
        tensorboard=not args.no_tensorboard, progress=args.progress,
    )


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the fit; returns the metrics written to ``OUTPUT_PATH/metrics.json``. Errors exit with a message."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from mira.data import DatasetFormatError, ImageLoadError
    from mira.evaluation.fit_object import fit_object, load_views
    from mira.evaluation.metrics import MissingWeightsError

    try:
        options, settings = options_from_args(args), settings_from_args(args)
        options.validate()
        config = load_cli_config(args.config_path, args.set)
        views = load_views(args.data_dir, config)
        metrics = fit_object(views, args.output_path, config, options, settings, device=args.device,
                             object_name=Path(args.data_dir).name)
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
