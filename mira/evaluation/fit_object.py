"""``mira.fit`` end to end: load an object's views, fit a triplane, score it, write the outputs.

Outputs in ``out_dir`` (all written atomically):

* ``metrics.json``: held-out PSNR / SSIM / LPIPS / mask IoU (mean and per view), Chamfer
  distance and F-scores against the object's ``mesh.ply``, the settings and the runtime;
* ``mesh.ply``: the fitted mesh (marching cubes of the density field, vertex colours);
* ``orbit.mp4``: a turntable video; ``heldout.png``: ground truth (top) over renders (bottom);
* ``fit.safetensors``: the fitted triplane and renderer MLP; ``logs/``: TensorBoard scalars.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from mira.cameras import camera_centers, cartesian_to_spherical
from mira.config import MiraConfig
from mira.devices import resolve_device
from mira.evaluation.fitting import FitOptions, TriplaneFit, fit_triplane
from mira.evaluation.geometry import load_mesh
from mira.evaluation.report import comparison_grid, save_png, write_json
from mira.evaluation.scoring import IMAGE_METRICS, ImageScorer, ScoringSettings, mean_scores, score_mesh
from mira.evaluation.views import ViewSet, holdout_split, prepare_views

if TYPE_CHECKING:
    from mira.data import ObjectViews

logger = logging.getLogger(__name__)


@dataclass
class FitEvaluationSettings(ScoringSettings):
    """How a fit is scored and what it writes (the non-optimisation flags of ``mira.fit``);
    ``render_size`` is also the side of the images fitted."""

    holdout_every: int = 4
    # Turntable video: frames (0 disables), elevation (degrees), suffix .mp4 or .gif.
    video_frames: int = 60
    video_elevation_deg: float = 20.0
    video_name: str = "orbit.mp4"
    save_mesh: bool = True
    tensorboard: bool = True
    progress: bool = True



def load_views(object_dir: str | Path, config: MiraConfig | None = None) -> "ObjectViews":
    """Every view of one object folder (``mira.data.load_object_views``), any supported layout.

    zero123 ``views_release`` folders are scaled into our world by ``data.zero123_world_scale``
    as in training. A missing folder is a clear error.
    """
    from mira.data import detect_format, load_object_views

    object_dir = Path(object_dir)
    if not object_dir.is_dir():
        raise FileNotFoundError(
            f"object directory not found: {object_dir}; pass --data DIR/<object_id> (a folder with the renders "
            "and transforms.json written by blender_scripts/dataset_rendering.py)"
        )
    scale = None
    if config is not None and detect_format(object_dir) == "zero123":
        scale = config.data.zero123_world_scale
    return load_object_views(object_dir, world_scale=scale)


def fit_object(
    views: "ObjectViews",
    out_dir: str | Path,
    config: MiraConfig,
    options: FitOptions,
    settings: FitEvaluationSettings,
    device: str | torch.device = "auto",
    truth_mesh: Any | None = None,
    object_name: str | None = None,
) -> dict[str, Any]:
    """Fit one object's views and write every output; returns the metrics dict written to metrics.json.

    Args:
        views: ``ObjectViews`` (``mira.data.load_object_views``): images (N, 4, H, W) RGBA,
            c2w (N, 4, 4) OpenCV, intrinsics (N, 4) normalised, names, mesh_path.
        truth_mesh: the ground-truth ``trimesh.Trimesh``; default ``views.mesh_path`` if set.
            Without one, the geometry metrics are left out.
        object_name: recorded in metrics.json.
    """
    out_dir = Path(out_dir)
    device = resolve_device(str(device))
    size = settings.render_size or config.data.render_size
    # Build LPIPS first: a missing backbone file should fail before a long fit, not after.
    scorer = ImageScorer(settings.lpips_backbone, settings.lpips_net, device)
    scorer.check_size(size)
    if truth_mesh is None and getattr(views, "mesh_path", None) is not None:
        truth_mesh = load_mesh(views.mesh_path)
    all_views = prepare_views(views, size, config.renderer.background_color)
    train_index, heldout_index = holdout_split(len(all_views), settings.holdout_every)
    train_views, heldout_views = all_views.subset(train_index), all_views.subset(heldout_index)
    logger.info("fitting %d views, holding out %d, at %d px on %s", len(train_views), len(heldout_views), size, device)

    writer = _tensorboard_writer(out_dir / "logs") if settings.tensorboard else None

    def log(step: int, values: dict[str, float]) -> None:
        for key, value in values.items():
            writer.add_scalar(f"fit/{key}", value, step)

    start = time.perf_counter()
    model = fit_triplane(train_views, config, options, device=device, progress=settings.progress,
                         log_scalars=log if writer is not None else None)
    fit_seconds = time.perf_counter() - start

    per_view, rendered = score_heldout(model, heldout_views.to(device), scorer)
    image_means = mean_scores(per_view, IMAGE_METRICS)
    triplanes = model.triplanes.detach()
    with torch.no_grad():
        mesh, geometry = score_mesh(
            model.renderer, triplanes, truth_mesh, settings.mesh_resolution, settings.density_threshold,
            settings.fscore_taus, settings.geometry_samples, seed=options.seed,
        )
    outputs = write_fit_outputs(out_dir, model, mesh, rendered, heldout_views, all_views, settings, size)
    metrics = {
        **image_means,
        **geometry,
        "object": object_name,
        "num_train_views": len(train_views),
        "num_heldout_views": len(heldout_views),
        "heldout_views": heldout_views.names,
        "per_view": [{"view": name, **score} for name, score in zip(heldout_views.names, per_view)],
        "mesh_faces": 0 if mesh is None else int(len(mesh.faces)),
        "has_ground_truth_mesh": truth_mesh is not None,
        "lpips_model": scorer.description,
        "fit_seconds": fit_seconds,
        "device": str(device),
        "render_size": size,
        "options": asdict(options),
        "settings": {k: (list(v) if isinstance(v, (tuple, list)) else v) for k, v in asdict(settings).items()},
        "renderer": asdict(config.renderer),
        "outputs": {k: str(v) for k, v in outputs.items()},
    }
    if writer is not None:
        for key in ("psnr", "ssim", "mask_iou", "chamfer"):
            if key in metrics and metrics[key] is not None and not math.isnan(metrics[key]):
                writer.add_scalar(f"heldout/{key}", metrics[key], options.steps)
        writer.close()
    write_json(metrics, out_dir / "metrics.json")
    if settings.video_frames > 0:  # last: a video that cannot be written loses none of the above
        metrics["outputs"]["video"] = str(write_orbit_video(model, all_views, settings, size,
                                                            out_dir / settings.video_name))
        write_json(metrics, out_dir / "metrics.json")
    return metrics


def score_heldout(model: TriplaneFit, views: ViewSet, scorer: ImageScorer) -> tuple[list[dict[str, float]], dict[str, torch.Tensor]]:
    """Render ``views`` (eval mode) and score them: per-view score dicts and the renders (V, C, H, W)."""
    height, width = views.size
    if height != width:
        raise ValueError(f"evaluation views must be square, got {height}x{width}")
    rendered = model.render_views(views.c2w, views.intrinsics, height)
    scores = scorer.score_views(rendered["rgb"], views.rgb, rendered["opacity"], views.mask)
    return scores, rendered


def write_fit_outputs(
    out_dir: Path,
    model: TriplaneFit,
    mesh: Any | None,
    rendered: dict[str, torch.Tensor],
    heldout_views: ViewSet,
    all_views: ViewSet,
    settings: FitEvaluationSettings,
    size: int,
) -> dict[str, Path]:
    """Write the mesh, the held-out comparison and the weights (the video comes after metrics.json); return their paths."""
    from safetensors.torch import save_file

    from mira.atomic import atomic_output

    out_dir.mkdir(parents=True, exist_ok=True)
    outputs: dict[str, Path] = {}
    grid = comparison_grid(rendered["rgb"], heldout_views.rgb)
    outputs["heldout"] = save_png(grid, out_dir / "heldout.png")
    weights = {"triplanes": model.triplanes.detach().cpu().contiguous()}
    weights.update({f"renderer.{k}": v.detach().cpu().contiguous() for k, v in model.renderer.state_dict().items()})
    with atomic_output(out_dir / "fit.safetensors") as temp_path:
        save_file(weights, str(temp_path), metadata={"format": "pt", "library": "mira", "kind": "triplane_fit"})
    outputs["weights"] = out_dir / "fit.safetensors"
    if settings.save_mesh and mesh is not None:
        from mira.export.mesh import save_mesh

        outputs["mesh"] = save_mesh(mesh, out_dir / "mesh.ply")
    return outputs


def write_orbit_video(model: TriplaneFit, views: ViewSet, settings: FitEvaluationSettings, size: int, path: Path) -> Path:
    """Turntable of the fit at the views' mean camera distance, with the first view's intrinsics."""
    from mira.export.video import render_orbit_frames, write_video

    distance = float(cartesian_to_spherical(camera_centers(views.c2w))[2].mean())
    frames = render_orbit_frames(
        model.renderer, model.triplanes.detach(), settings.video_frames, size + size % 2,
        settings.video_elevation_deg, distance, views.intrinsics[0],
    )
    return write_video(frames, path, fps=min(30.0, max(1.0, settings.video_frames / 4.0)))


def _tensorboard_writer(log_dir: Path) -> Any | None:
    """A TensorBoard SummaryWriter, or None (with a warning) if tensorboard is not installed."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as error:  # pragma: no cover - tensorboard is in requirements.txt
        logger.warning("TensorBoard logging disabled (%s)", error)
        return None
    return SummaryWriter(log_dir=str(log_dir))
