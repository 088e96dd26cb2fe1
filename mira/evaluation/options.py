"""Options of ``python -m mira.evaluate`` and ``python -m mira.fit``: the scoring flags they share, their
defaults, and the fit's settings (:class:`FitOptions`).

Only the standard library here: the tools' ``--help`` must not wait for PyTorch or trimesh.
:mod:`mira.evaluation.geometry`, :mod:`~mira.evaluation.scoring` and :mod:`~mira.evaluation.fitting`
take these from this module.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

# Surface samples per mesh for Chamfer distance / F-score.
DEFAULT_NUM_SAMPLES = 16384
# F-score distance thresholds in world units (objects of radius 0.9); the first is the headline one.
DEFAULT_FSCORE_TAUS = (0.1, 0.05, 0.2)
# pretrained: the real LPIPS; random: a random-weight backbone (smoke tests: the figure means nothing); none.
LPIPS_BACKBONES = ("pretrained", "random", "none")
# The LPIPS networks (mira.evaluation.metrics.LPIPS_MIN_SIZE has their smallest image sides).
LPIPS_NETS = ("vgg", "alex", "squeeze")


@dataclass
class FitOptions:
    """Settings of one fit (the CLI flags of ``python -m mira.fit``)."""

    steps: int = 3000
    batch_rays: int = 4096
    # Adam learning rates of the triplane features and of the renderer MLP.
    lr: float = 0.02
    mlp_lr: float = 0.002
    # Learning rates decay exponentially to this fraction of their start by the last step.
    final_lr_ratio: float = 0.1
    mask_loss_weight: float = 0.1
    # Total variation of the triplane features (smoothness prior; 0 disables).
    tv_weight: float = 0.0
    # Triplane side R and channels C; None takes cfg.model.triplane_res / triplane_dim.
    triplane_res: int | None = None
    triplane_dim: int | None = None
    # Standard deviation of the random initial triplane features.
    init_std: float = 0.1
    seed: int = 0

    def validate(self) -> None:
        """Raise ``ValueError`` naming the bad option."""
        for name in ("steps", "batch_rays"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name} must be positive, got {getattr(self, name)}")
        for name in ("lr", "mlp_lr", "final_lr_ratio"):
            if not getattr(self, name) > 0:
                raise ValueError(f"--{name} must be positive, got {getattr(self, name)}")
        for name in ("mask_loss_weight", "tv_weight", "init_std"):
            if getattr(self, name) < 0:
                raise ValueError(f"--{name} must be >= 0, got {getattr(self, name)}")
        for name in ("triplane_res", "triplane_dim"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"--{name} must be positive, got {value}")


def add_scoring_arguments(parser: argparse._ActionsContainer) -> None:
    """The scoring flags of ``python -m mira.evaluate`` and ``python -m mira.fit``: LPIPS, mesh extraction and
    Chamfer / F-score (``parser`` may be an argument group)."""
    parser.add_argument("--lpips_backbone", choices=LPIPS_BACKBONES, default="pretrained",
                        help="pretrained: the real LPIPS (needs torchvision's weights file, so offline use none); "
                             "random: smoke tests only, the figure means nothing; none: no LPIPS")
    parser.add_argument("--lpips_net", choices=LPIPS_NETS, default="vgg", help="LPIPS network")
    parser.add_argument("--mesh_resolution", type=int, default=256, help="marching-cubes grid points per axis")
    parser.add_argument("--density_threshold", type=float, default=None,
                        help="marching-cubes density level (default: the checkpoint's mesh_density_threshold)")
    parser.add_argument("--fscore_tau", type=float, nargs="+", default=list(DEFAULT_FSCORE_TAUS),
                        help="F-score thresholds, world units")
    parser.add_argument("--geometry_samples", type=int, default=DEFAULT_NUM_SAMPLES,
                        help="surface samples per mesh for Chamfer / F-score")
