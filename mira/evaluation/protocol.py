"""The evaluation protocol of a trained checkpoint on held-out objects (``python -m mira.evaluate``).

For each object (``docs/EVALUATION.md`` states the protocol in full):

1. load every view (:func:`mira.data.load_object_views`);
2. the *source view* is, by default, the view whose camera elevation (seen from the origin)
   is closest to ``source_elevation_deg`` = 20 degrees, the lowest index on ties: a typical
   "front, slightly above" input whatever the random cameras of the render; ``source_view``
   picks a view by position instead. It goes through the source-view contract shared with
   training and ``test.py`` (:mod:`mira.data.source_view`): framed, composited on the renderer
   background, its camera at the canonical pose; every target camera moves with it;
3. the model reconstructs triplanes and renders **every other view** at ``render_size`` with
   deterministic (eval-mode) sampling;
4. scores per view: PSNR, SSIM, LPIPS, mask IoU (:mod:`mira.evaluation.scoring`); the object's
   figure is the mean over its views;
5. the mesh (marching cubes of the density at ``mesh_resolution``), moved back from the canonical
   frame to the object's world by the inverse of the source similarity, is scored against the
   object's ``mesh.ply`` with Chamfer distance and F-score@tau (:mod:`mira.evaluation.geometry`),
   with no alignment: cameras and world frame are known.

The dataset figure is the mean over objects (each object weighs the same). An object that
cannot be read is logged, listed under ``failed`` and left out of the means.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import Tensor
from tqdm.auto import tqdm

from mira.cameras import camera_centers, cartesian_to_spherical, transform_cameras
from mira.data.source_view import SourceView, prepare_training_source_view
from mira.evaluation.geometry import load_mesh
from mira.evaluation.report import (TABLE_COLUMNS, comparison_grid, markdown_table, save_png, write_json,
                                    write_text)
from mira.evaluation.baselines import render_sphere, sphere_from_source, sphere_mesh
from mira.evaluation.scoring import (IMAGE_METRICS, ImageScorer, ScoringSettings, extract_scored_mesh, mean_scores,
                                     score_geometry)
from mira.evaluation.views import ViewSet, prepare_views
from mira.progress import bar_disabled
from mira.rendering.chunking import chunked

logger = logging.getLogger(__name__)

# Metrics averaged into the dataset means (geometry ones only where a ground-truth mesh exists).
GEOMETRY_HEADLINE = ("chamfer", "accuracy", "completeness")


@dataclass
class EvaluationSettings(ScoringSettings):
    """Protocol settings (the flags of ``python -m mira.evaluate``)."""

    split: str = "val"
    # Position of the source view in each object's view list; None: by elevation (below).
    source_view: int | None = None
    # Without source_view: the view whose camera elevation is closest to this (degrees).
    source_elevation_deg: float = 20.0
    # Views rendered per renderer call (memory bound; the renderer also chunks rays).
    views_per_batch: int = 8
    max_objects: int | None = None
    save_renders: bool = True
    save_meshes: bool = False
    seed: int = 0
    progress: bool = True


def list_objects(data_dir: str | Path, split: str) -> list[tuple[str, Path]]:
    """The objects to evaluate, as ``(object_id, folder)`` pairs.

    ``data_dir`` may be a dataset root with ``index.json`` (its ``split`` list), a folder of
    object folders (all of them, sorted by name), or a single object folder.
    """
    from mira.data import DatasetFormatError, detect_format, read_index

    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise FileNotFoundError(f"dataset directory not found: {data_dir} (pass --data)")
    if (data_dir / "index.json").is_file():
        index = read_index(data_dir)
        if split not in index:
            raise ValueError(f"{data_dir / 'index.json'} has no '{split}' split; it has {sorted(index)} (pass --split)")
        return [(object_id, data_dir / object_id) for object_id in index[split]]
    try:
        detect_format(data_dir)
        return [(data_dir.name, data_dir)]
    except DatasetFormatError:
        pass
    folders = sorted(p for p in data_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not folders:
        raise FileNotFoundError(
            f"{data_dir} holds no index.json, no views and no object folders; pass a dataset written by "
            "load_input_data.py or blender_scripts/dataset_rendering.py"
        )
    return [(p.name, p) for p in folders]


def camera_elevations_deg(c2w: Tensor) -> Tensor:
    """Elevation (degrees above the XY plane, seen from the origin) of cameras c2w (N, 4, 4) -> (N,)."""
    return cartesian_to_spherical(camera_centers(c2w).double())[1]


def choose_source_view(c2w: Tensor, source_view: int | None, elevation_deg: float = 20.0) -> int:
    """The source view index: ``source_view`` if given (negative counts from the end), else the
    camera with elevation closest to ``elevation_deg`` (the first one on ties)."""
    num_views = c2w.shape[0]
    if source_view is not None:
        if not -num_views <= source_view < num_views:
            raise ValueError(f"source_view {source_view} is out of range for {num_views} views")
        return source_view % num_views
    distance = (camera_elevations_deg(c2w) - elevation_deg).abs()
    return int(torch.nonzero(distance == distance.min())[0, 0])


# The image columns of the per-object table, for the table by angle.
ANGLE_TABLE_COLUMNS = tuple(column for column in TABLE_COLUMNS if column[0] in IMAGE_METRICS)
# Edges (degrees) of the bins in which per-view image scores are also averaged by the angle between
# the target camera's and the source camera's directions from the object centre.
ANGLE_BIN_EDGES_DEG = (0, 30, 60, 90, 120, 150, 180)


def angles_from_source_deg(c2w: Tensor, source: int, targets: Sequence[int]) -> list[float]:
    """Angle (degrees, 0..180) at the object centre (the world origin) between the source camera's
    centre and each target camera's centre: how far round the object each target view looks.

    Args:
        c2w: (N, 4, 4) cameras; source: index of the source view; targets: indices of the targets.
    """
    centres = camera_centers(c2w).double()
    directions = centres / centres.norm(dim=-1, keepdim=True)
    cosines = (directions[list(targets)] @ directions[source]).clamp(-1.0, 1.0)
    return [float(angle) for angle in torch.rad2deg(torch.acos(cosines))]


def scores_by_angle(results: dict[str, dict[str, Any]], edges: Sequence[float] = ANGLE_BIN_EDGES_DEG) -> list[dict[str, Any]]:
    """Image scores averaged over all target views (of all objects) whose ``angle_from_source_deg``
    falls in each bin ``[edges[i], edges[i+1])`` (the last bin includes 180): a view-weighted mean, unlike
    the per-object mean of the headline figures. Bins without views are left out."""
    views = [view for metrics in results.values() for view in metrics["per_view"] if "angle_from_source_deg" in view]
    rows = []
    for low, high in zip(edges[:-1], edges[1:]):
        last = high == edges[-1]
        members = [v for v in views if low <= v["angle_from_source_deg"] < high or (last and v["angle_from_source_deg"] == high)]
        if members:
            rows.append({"angle_deg": [low, high], "num_views": len(members), **mean_scores(members, IMAGE_METRICS)})
    return rows


def source_and_targets(c2w: Tensor, source_view: int | None, elevation_deg: float = 20.0) -> tuple[int, list[int]]:
    """The source view index and the target indices (every other view, in order) of cameras (N, 4, 4)."""
    num_views = c2w.shape[0]
    if num_views < 2:
        raise ValueError(f"an object needs at least 2 views (1 source + 1 target), got {num_views}")
    source = choose_source_view(c2w, source_view, elevation_deg)
    return source, [i for i in range(num_views) if i != source]


def prepare_source(views: Any, index: int, config: Any) -> SourceView:
    """The model input of view ``index`` through the source-view contract shared with training and
    ``test.py`` (:func:`mira.data.source_view.prepare_training_source_view`), over the source background
    (``config.source_background()``: ``background_color`` unless the checkpoint's contract names one, TripoSR's grey)."""
    return prepare_training_source_view(views.images[index][None].float(), views.c2w[index][None].float(),
                                        views.intrinsics[index][None].float(), config, config.source_background())


@torch.no_grad()
def reconstruct_and_render(
    model: torch.nn.Module, image: Tensor, source_c2w: Tensor, source_intrinsics: Tensor, targets: ViewSet, views_per_batch: int
) -> tuple[Tensor, dict[str, Tensor]]:
    """Triplanes (1, 3, C, R, R) from one source image (3, S, S) and renders (V, C, H, W) of ``targets``."""
    device = next(model.parameters()).device
    triplanes = model.forward_triplanes(image[None].to(device), source_c2w[None].to(device), source_intrinsics[None].to(device))
    height, width = targets.size
    rendered = chunked(
        lambda c2w, intrinsics: model.renderer.render_images(triplanes, c2w.to(device), intrinsics.to(device), height, width),
        targets.c2w[None], targets.intrinsics[None], chunk_size=views_per_batch, dim=1,
    )
    return triplanes, {key: value[0].float() for key, value in rendered.items()}


class ModelPredictor:
    """A MIRA model under the protocol: triplanes from the source view, renders and a mesh from them."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.model = model.eval()
        self.config = model.config
        self.device = next(model.parameters()).device

    def predict(self, prepared: SourceView, targets: ViewSet, settings: EvaluationSettings) -> tuple[dict[str, Tensor], Any]:
        """Renders (V, C, H, W) of ``targets`` (canonical cameras) and the mesh in the canonical frame."""
        triplanes, rendered = reconstruct_and_render(
            self.model, prepared.image[0], prepared.c2w[0], prepared.intrinsics[0], targets, settings.views_per_batch)
        mesh = extract_scored_mesh(self.model.renderer, triplanes, settings.mesh_resolution, settings.density_threshold)
        return rendered, mesh


class SpherePredictor:
    """The trivial baseline (:mod:`mira.evaluation.baselines`) under the same protocol."""

    def __init__(self, config: Any, device: torch.device | str = "cpu") -> None:
        self.config = config
        self.device = torch.device(device)

    def predict(self, prepared: SourceView, targets: ViewSet, settings: EvaluationSettings) -> tuple[dict[str, Tensor], Any]:
        radius, colour = sphere_from_source(prepared)
        background = torch.tensor(self.config.renderer.background_color, dtype=torch.float32)
        rendered = render_sphere(radius, colour, targets.c2w, targets.intrinsics, targets.size[0], background)
        return {key: value.to(self.device) for key, value in rendered.items()}, sphere_mesh(radius)


def evaluate_object(
    predictor: ModelPredictor | SpherePredictor, views: Any, settings: EvaluationSettings, scorer: ImageScorer,
    truth_mesh: Any | None
) -> tuple[dict[str, Any], dict[str, Tensor], ViewSet, Any | None]:
    """Run the protocol on one object's views.

    Returns:
        (metrics, renders (V, C, H, W), the target views, the predicted mesh in the object's world or None).
    """
    config = predictor.config
    size = settings.render_size or config.data.render_size
    background = config.renderer.background_color
    source, target_index = source_and_targets(views.c2w, settings.source_view, settings.source_elevation_deg)
    prepared = prepare_source(views, source, config)
    to_canonical = prepared.world_to_canonical
    targets = prepare_views(views, size, background).subset(target_index)
    targets = dataclasses.replace(targets, c2w=transform_cameras(to_canonical, targets.c2w[None].float())[0])
    rendered, mesh = predictor.predict(prepared, targets, settings)
    device = predictor.device
    per_view = scorer.score_views(rendered["rgb"], targets.rgb.to(device), rendered["opacity"], targets.mask.to(device))
    if mesh is not None:  # back from the canonical frame to the object's world, where its mesh.ply lies
        mesh.apply_transform(torch.linalg.inv(to_canonical[0].double()).numpy())
    geometry = score_geometry(mesh, truth_mesh, settings.fscore_taus, settings.geometry_samples, seed=settings.seed)
    metrics = {
        **mean_scores(per_view, IMAGE_METRICS),
        **geometry,
        "source_view": views.names[source],
        "source_elevation_deg": float(camera_elevations_deg(views.c2w[source : source + 1])[0]),
        "num_target_views": len(targets),
        "has_ground_truth_mesh": truth_mesh is not None,
        "mesh_faces": 0 if mesh is None else int(len(mesh.faces)),
        "per_view": [{"view": name, "angle_from_source_deg": angle, **score}
                     for name, angle, score in zip(targets.names, angles_from_source_deg(views.c2w, source, target_index),
                                                   per_view)],
    }
    return metrics, rendered, targets, mesh


def evaluate_dataset(
    model: torch.nn.Module | ModelPredictor | SpherePredictor, data_dir: str | Path, out_dir: str | Path,
    settings: EvaluationSettings
) -> dict[str, Any]:
    """Evaluate a model (or a :class:`SpherePredictor` baseline) on every object of ``settings.split``;
    write ``metrics.json`` and ``metrics.md``.

    Returns the summary written to metrics.json: ``{"mean": {...}, "objects": {id: {...}},
    "failed": [...], "protocol": {...}}``.
    """
    from mira.evaluation.fit_object import load_views

    out_dir = Path(out_dir)
    predictor = model if isinstance(model, (ModelPredictor, SpherePredictor)) else ModelPredictor(model)
    config, device = predictor.config, predictor.device
    scorer = ImageScorer(settings.lpips_backbone, settings.lpips_net, device)
    scorer.check_size(settings.render_size or config.data.render_size)
    objects = list_objects(data_dir, settings.split)
    if settings.max_objects is not None:
        objects = objects[: settings.max_objects]
    results: dict[str, dict[str, Any]] = {}
    failed: list[dict[str, str]] = []
    start = time.perf_counter()
    for object_id, folder in tqdm(objects, desc="evaluate", disable=bar_disabled(settings.progress), dynamic_ncols=True):
        try:
            views = load_views(folder, config)
            truth = load_mesh(views.mesh_path) if views.mesh_path is not None else None
            metrics, rendered, targets, mesh = evaluate_object(predictor, views, settings, scorer, truth)
        except (OSError, ValueError) as error:  # unreadable folder / images / mesh: skip, log, go on
            logger.warning("skipping object %s: %s", object_id, error)
            failed.append({"object": object_id, "error": f"{type(error).__name__}: {error}"})
            continue
        results[object_id] = metrics
        write_object_outputs(out_dir, object_id, rendered, targets, mesh, settings)
        logger.info("%s: PSNR %.2f, Chamfer %s", object_id, metrics["psnr"], metrics.get("chamfer", "n/a"))
    summary = summarise(results, failed, settings, scorer, predictor, time.perf_counter() - start, data_dir)
    write_json(summary, out_dir / "metrics.json")
    write_text(markdown_report(summary), out_dir / "metrics.md")
    return summary


def summarise(
    results: dict[str, dict[str, Any]],
    failed: list[dict[str, str]],
    settings: EvaluationSettings,
    scorer: ImageScorer,
    predictor: ModelPredictor | SpherePredictor,
    seconds: float,
    data_dir: str | Path,
) -> dict[str, Any]:
    """Per-object figures, their means (objects weigh equally) and the protocol settings."""
    geometry_keys = list(GEOMETRY_HEADLINE)
    geometry_keys += [f"{name}@{tau:g}" for tau in settings.fscore_taus for name in ("fscore", "precision", "recall")]
    with_mesh = [m for m in results.values() if m["has_ground_truth_mesh"]]
    mean = mean_scores(list(results.values()), IMAGE_METRICS)
    if with_mesh:  # a failed mesh counts F-score 0 and is left out of the Chamfer mean (NaN)
        mean.update(mean_scores(with_mesh, geometry_keys))
    config = predictor.config
    return {
        "predictor": "sphere baseline" if isinstance(predictor, SpherePredictor) else "model",
        "mean": mean,
        "num_objects": len(results),
        "num_objects_with_mesh": len(with_mesh),
        "num_failed_meshes": sum(1 for m in with_mesh if m["mesh_faces"] == 0),
        "by_angle_from_source": scores_by_angle(results),
        "objects": results,
        "failed": failed,
        "protocol": {
            **{k: (list(v) if isinstance(v, (tuple, list)) else v) for k, v in asdict(settings).items()},
            "render_size": settings.render_size or config.data.render_size,
            "source_size": config.model.source_size,
            "background_color": list(config.renderer.background_color),
            "rendering_samples_per_ray": config.renderer.rendering_samples_per_ray,
            "importance_samples_per_ray": config.renderer.importance_samples_per_ray,
            "lpips_model": scorer.description,
            "chamfer": "(mean_p min_g |p-g| + mean_g min_p |g-p|) / 2, Euclidean, world units, no alignment",
            "data": str(data_dir),
        },
        "seconds": seconds,
        "device": str(predictor.device),
    }


def markdown_report(summary: dict[str, Any]) -> str:
    """The Markdown table of per-object figures with the mean as the last row."""
    rows = [(object_id, metrics) for object_id, metrics in summary["objects"].items()]
    rows.append(("**mean**", summary["mean"]))
    protocol = summary["protocol"]
    source = (f"view {protocol['source_view']}" if protocol["source_view"] is not None
              else f"the view nearest {protocol['source_elevation_deg']:g} deg elevation")
    lines = [
        f"# MIRA evaluation: {summary['num_objects']} objects ({protocol['split']} split of {protocol['data']})",
        "",
        f"Source: {source}; every other view rendered at {protocol['render_size']} px over "
        f"background {protocol['background_color']}; LPIPS: {protocol['lpips_model']}; mesh "
        f"{protocol['mesh_resolution']}^3, Chamfer / F-score from {protocol['geometry_samples']} surface samples "
        "(world units; see docs/EVALUATION.md).",
        "",
        markdown_table(rows),
    ]
    if summary.get("by_angle_from_source"):
        lines += ["", "Image scores by the target view's angle from the source view (around the object centre; "
                  "means over views):", "",
                  markdown_table([(f"{row['angle_deg'][0]:g}-{row['angle_deg'][1]:g}°", row)
                                  for row in summary["by_angle_from_source"]],
                                 (*ANGLE_TABLE_COLUMNS, ("num_views", "views", "{:d}")), name_header="Angle")]
    if summary["failed"]:
        lines += ["", "Skipped objects:", ""] + [f"- {item['object']}: {item['error']}" for item in summary["failed"]]
    return "\n".join(lines) + "\n"


def write_object_outputs(
    out_dir: Path, object_id: str, rendered: dict[str, Tensor], targets: ViewSet, mesh: Any | None, settings: EvaluationSettings
) -> None:
    """Per-object comparison image (targets over renders) and, if asked, the mesh."""
    if settings.save_renders:
        save_png(comparison_grid(rendered["rgb"], targets.rgb), out_dir / "renders" / f"{object_id}.png")
    if settings.save_meshes and mesh is not None:
        from mira.export.mesh import save_mesh

        save_mesh(mesh, out_dir / "meshes" / f"{object_id}.ply")
