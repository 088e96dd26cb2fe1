"""Per-view image scores (PSNR, SSIM, LPIPS, mask IoU) with the shared metric functions.

The metrics themselves live in :mod:`mira.evaluation.metrics` (torchmetrics and the
``lpips`` package); this module only applies them view by view and averages, as the
NeRF / LRM literature does (the mean of per-view PSNR, not the PSNR of the mean error).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Sequence

import torch
from torch import Tensor

from mira.evaluation.geometry import DEFAULT_FSCORE_TAUS, DEFAULT_NUM_SAMPLES
from mira.evaluation.metrics import LPIPS_MIN_SIZE, build_lpips, lpips_distance, mask_iou, psnr, ssim
from mira.evaluation.options import LPIPS_BACKBONES

if TYPE_CHECKING:
    import trimesh

logger = logging.getLogger(__name__)

IMAGE_METRICS = ("psnr", "ssim", "lpips", "mask_iou")


@dataclass
class ScoringSettings:
    """How views and meshes are scored; shared by ``mira.fit`` and ``mira.evaluate``."""

    # Side of the rendered and ground-truth images; None takes cfg.data.render_size.
    render_size: int | None = None
    lpips_backbone: str = "pretrained"
    lpips_net: str = "vgg"
    mesh_resolution: int = 256
    # Marching-cubes iso-level of the density; None uses extract_mesh's default.
    density_threshold: float | None = None
    fscore_taus: Sequence[float] = field(default_factory=lambda: list(DEFAULT_FSCORE_TAUS))
    geometry_samples: int = DEFAULT_NUM_SAMPLES


class ImageScorer:
    """Scores rendered views against targets.

    Args:
        lpips_backbone: "pretrained" (the real metric; the torchvision backbone file must be on
            disk, else :class:`mira.evaluation.metrics.MissingWeightsError` says which file and
            where), "random" (random backbone: only for smoke tests, the numbers mean little) or
            "none" (no LPIPS; reported as NaN).
        lpips_net: "vgg", "alex" or "squeeze".
        device: where LPIPS runs.
    """

    def __init__(self, lpips_backbone: str = "pretrained", lpips_net: str = "vgg", device: torch.device | str = "cpu") -> None:
        if lpips_backbone not in LPIPS_BACKBONES:
            raise ValueError(f"lpips_backbone must be one of {LPIPS_BACKBONES}, got '{lpips_backbone}'")
        self.lpips_backbone = lpips_backbone
        self.lpips_net = lpips_net
        self.lpips = None
        if lpips_backbone != "none":
            self.lpips = build_lpips(lpips_net, pretrained_backbone=lpips_backbone == "pretrained").to(device)

    def check_size(self, size: int) -> None:
        """Raise a clear ``ValueError`` if LPIPS cannot score ``size`` x ``size`` images."""
        minimum = LPIPS_MIN_SIZE.get(self.lpips_net, 0)
        if self.lpips is not None and size < minimum:
            raise ValueError(
                f"LPIPS-{self.lpips_net} needs images of at least {minimum} px, got {size}: raise --render_size, "
                "use --lpips_net vgg (16 px) or --lpips_backbone none"
            )

    @property
    def description(self) -> str:
        """How LPIPS was computed, for the JSON reports."""
        if self.lpips is None:
            return "none"
        return f"{self.lpips_net} ({self.lpips_backbone} backbone)"

    @torch.no_grad()
    def score_views(
        self, prediction: Tensor, target: Tensor, prediction_opacity: Tensor, target_mask: Tensor
    ) -> list[dict[str, float]]:
        """One score dict per view.

        Args:
            prediction, target: (V, 3, H, W) RGB in [0, 1] (both over the same background).
            prediction_opacity, target_mask: (V, 1, H, W) in [0, 1].
        Returns:
            V dicts with keys ``psnr`` (dB), ``ssim``, ``lpips`` (NaN without LPIPS) and
            ``mask_iou`` (both masks thresholded at 0.5).
        """
        if prediction.shape != target.shape or prediction.dim() != 4 or prediction.shape[1] != 3:
            raise ValueError(f"prediction {tuple(prediction.shape)} and target {tuple(target.shape)} must both be (V, 3, H, W)")
        scores = []
        for view in range(prediction.shape[0]):
            pred, tgt = prediction[view : view + 1].float(), target[view : view + 1].float()
            score = {
                "psnr": float(psnr(pred, tgt)),
                "ssim": float(ssim(pred, tgt)),
                "lpips": math.nan,
                "mask_iou": float(mask_iou(prediction_opacity[view].float(), target_mask[view].float())),
            }
            if self.lpips is not None:
                device = next(self.lpips.parameters()).device
                score["lpips"] = float(lpips_distance(self.lpips, pred.to(device), tgt.to(device)))
            scores.append(score)
        return scores


def mean_scores(scores: Sequence[dict[str, float]], keys: Sequence[str] | None = None) -> dict[str, float]:
    """Mean of each key over a list of score dicts, ignoring NaN (NaN if every value is NaN)."""
    if not scores:
        return {}
    keys = list(keys) if keys is not None else list(scores[0])
    means = {}
    for key in keys:
        values = [s[key] for s in scores if key in s and s[key] is not None and not math.isnan(s[key])]
        means[key] = float(sum(values) / len(values)) if values else math.nan
    return means


def extract_scored_mesh(
    renderer: torch.nn.Module,
    triplanes: Tensor,
    resolution: int,
    density_threshold: float | None = None,
    mesh_to_world: Tensor | None = None,
) -> "trimesh.Trimesh | None":
    """The mesh of one triplane (1, 3, C, R, R), or None if the field has no surface at the threshold.

    ``mesh_to_world`` (4, 4), a similarity, moves the mesh into the frame of the ground truth (the
    canonical source frame -> the object's world in :mod:`mira.evaluation.protocol`).
    """
    from mira.export.mesh import MeshExtractionError, extract_mesh

    kwargs = {} if density_threshold is None else {"density_threshold": density_threshold}
    try:
        mesh = extract_mesh(renderer, triplanes, resolution=resolution, **kwargs)
        if len(mesh.faces) == 0:
            raise MeshExtractionError("marching cubes returned no triangles")
    except MeshExtractionError as error:
        logger.warning("no mesh extracted (%s); geometry metrics count as failed", error)
        return None
    if mesh_to_world is not None:
        mesh.apply_transform(mesh_to_world.detach().double().cpu().numpy())
    return mesh


def score_geometry(
    mesh: "trimesh.Trimesh | None",
    truth: "trimesh.Trimesh | None",
    taus: Sequence[float] = (0.1, 0.05, 0.2),
    num_samples: int = 16384,
    seed: int = 0,
) -> dict[str, float]:
    """The figures of :func:`mira.evaluation.geometry.geometry_metrics` of ``mesh`` against ``truth``
    (empty without a ground truth). A missing surface scores Chamfer = NaN and every F-score /
    precision / recall = 0."""
    from mira.evaluation.geometry import EmptyMeshError, geometry_metrics

    if truth is None:
        return {}
    if mesh is None:
        return _failed_geometry(taus)
    try:
        return geometry_metrics(mesh, truth, taus=taus, num_samples=num_samples, seed=seed)
    except EmptyMeshError as error:
        logger.warning("mesh has no area (%s); geometry metrics count as failed", error)
        return _failed_geometry(taus)


def score_mesh(
    renderer: torch.nn.Module,
    triplanes: Tensor,
    truth: "trimesh.Trimesh | None",
    resolution: int,
    density_threshold: float | None = None,
    taus: Sequence[float] = (0.1, 0.05, 0.2),
    num_samples: int = 16384,
    seed: int = 0,
    mesh_to_world: Tensor | None = None,
) -> tuple["trimesh.Trimesh | None", dict[str, float]]:
    """:func:`extract_scored_mesh`, then :func:`score_geometry` against ``truth``."""
    mesh = extract_scored_mesh(renderer, triplanes, resolution, density_threshold, mesh_to_world)
    return mesh, score_geometry(mesh, truth, taus, num_samples, seed)


def _failed_geometry(taus: Sequence[float]) -> dict[str, float]:
    metrics = {"chamfer": math.nan, "accuracy": math.nan, "completeness": math.nan}
    for tau in taus:
        metrics.update({f"fscore@{tau:g}": 0.0, f"precision@{tau:g}": 0.0, f"recall@{tau:g}": 0.0})
    return metrics
