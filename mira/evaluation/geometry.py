"""Mesh-to-mesh geometry metrics: Chamfer distance and F-score@tau.

Both meshes are compared through points sampled uniformly on their surfaces (area
weighted, :func:`trimesh.sample.sample_surface`); nearest neighbours come from a
:class:`scipy.spatial.cKDTree`. With ``P`` the prediction's samples and ``G`` the
ground truth's, and ``d(x, S) = min_{s in S} ||x - s||_2`` (Euclidean, *not* squared):

* **accuracy** ``= mean_{p in P} d(p, G)`` (how far the prediction lies from the truth),
* **completeness** ``= mean_{g in G} d(g, P)`` (how much of the truth is covered),
* **Chamfer distance** ``= (accuracy + completeness) / 2``,
* **precision@tau** ``= |{p : d(p, G) < tau}| / |P|``, **recall@tau** ``= |{g : d(g, P) < tau}| / |G|``,
* **F-score@tau** ``= 2 * precision * recall / (precision + recall)`` (0 if both are 0).

This is the "L1" (unsquared, symmetric mean) Chamfer of the DTU / Tanks-and-Temples
evaluations that most GSO tables of the single-image-to-3D literature follow; distances are in world
units, with no alignment (see ``docs/EVALUATION.md``). Two concentric spheres of radii
``r1``, ``r2`` have a Chamfer distance of ``|r1 - r2|``; sampling adds a small positive
bias of the order of the sample spacing (about ``0.5 * sqrt(area / num_samples)``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import trimesh
from scipy.spatial import cKDTree

# 16,384 samples per surface (the "16K points" of GSO geometry evaluations such as InstantMesh's) and the
# F-score thresholds reported by default (world units; the first is the headline one), kept with the
# command-line options.
from mira.evaluation.options import DEFAULT_FSCORE_TAUS, DEFAULT_NUM_SAMPLES


class EmptyMeshError(ValueError):
    """A mesh has no triangles (or zero area), so no surface points can be sampled."""


@dataclass(frozen=True)
class SurfaceDistances:
    """Nearest-neighbour distances between two sampled surfaces.

    Attributes:
        prediction_to_truth: (P,) distance of each prediction sample to the truth samples.
        truth_to_prediction: (G,) distance of each truth sample to the prediction samples.
    """

    prediction_to_truth: np.ndarray
    truth_to_prediction: np.ndarray

    @property
    def accuracy(self) -> float:
        """Mean distance from the prediction to the truth (world units)."""
        return float(self.prediction_to_truth.mean())

    @property
    def completeness(self) -> float:
        """Mean distance from the truth to the prediction (world units)."""
        return float(self.truth_to_prediction.mean())

    @property
    def chamfer(self) -> float:
        """Symmetric L1 Chamfer distance: ``(accuracy + completeness) / 2``."""
        return 0.5 * (self.accuracy + self.completeness)

    def precision(self, tau: float) -> float:
        """Fraction of prediction samples closer than ``tau`` to the truth."""
        return float((self.prediction_to_truth < tau).mean())

    def recall(self, tau: float) -> float:
        """Fraction of truth samples closer than ``tau`` to the prediction."""
        return float((self.truth_to_prediction < tau).mean())

    def f_score(self, tau: float) -> float:
        """Harmonic mean of precision@tau and recall@tau (0 when both are 0)."""
        p, r = self.precision(tau), self.recall(tau)
        return 0.0 if p + r == 0 else 2.0 * p * r / (p + r)


def sample_surface_points(mesh: trimesh.Trimesh, num_samples: int = DEFAULT_NUM_SAMPLES, seed: int = 0) -> np.ndarray:
    """``num_samples`` points (num_samples, 3) drawn uniformly over the surface area of ``mesh``.

    Deterministic for a given ``seed``. Raises :class:`EmptyMeshError` for a mesh with no area.
    """
    if not isinstance(mesh, trimesh.Trimesh):
        raise TypeError(f"expected a trimesh.Trimesh, got {type(mesh).__name__} (use load_mesh for files)")
    if len(mesh.faces) == 0 or not np.isfinite(mesh.area) or mesh.area <= 0:
        raise EmptyMeshError(f"mesh has no surface to sample ({len(mesh.faces)} faces, area {mesh.area})")
    points, _ = trimesh.sample.sample_surface(mesh, int(num_samples), seed=seed)
    return np.asarray(points, dtype=np.float64)


def nearest_distances(queries: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Euclidean distance (Q,) from each query point (Q, 3) to its nearest reference point (R, 3)."""
    if len(reference) == 0 or len(queries) == 0:
        raise EmptyMeshError("cannot measure distances to or from an empty point set")
    distances, _ = cKDTree(reference).query(queries, k=1)
    return np.asarray(distances, dtype=np.float64)


def point_set_distances(prediction: np.ndarray, truth: np.ndarray) -> SurfaceDistances:
    """Both directions of nearest distances between point sets (P, 3) and (G, 3)."""
    prediction = np.asarray(prediction, dtype=np.float64).reshape(-1, 3)
    truth = np.asarray(truth, dtype=np.float64).reshape(-1, 3)
    return SurfaceDistances(nearest_distances(prediction, truth), nearest_distances(truth, prediction))


def surface_distances(
    prediction: trimesh.Trimesh | np.ndarray,
    truth: trimesh.Trimesh | np.ndarray,
    num_samples: int = DEFAULT_NUM_SAMPLES,
    seed: int = 0,
) -> SurfaceDistances:
    """Sample both surfaces (meshes) or take given point sets (N, 3) and measure both directions.

    The prediction is sampled with ``seed`` and the truth with ``seed + 1``, so results are
    reproducible and the two sample sets are independent.
    """
    prediction_points = _as_points(prediction, num_samples, seed)
    truth_points = _as_points(truth, num_samples, seed + 1)
    return point_set_distances(prediction_points, truth_points)


def chamfer_distance(
    prediction: trimesh.Trimesh | np.ndarray,
    truth: trimesh.Trimesh | np.ndarray,
    num_samples: int = DEFAULT_NUM_SAMPLES,
    seed: int = 0,
) -> float:
    """Symmetric L1 Chamfer distance ``(mean d(P, G) + mean d(G, P)) / 2`` in world units.

    ``prediction`` and ``truth`` are meshes (sampled with ``num_samples`` points each) or
    point sets (N, 3) used as they are.
    """
    return surface_distances(prediction, truth, num_samples, seed).chamfer


def f_score(
    prediction: trimesh.Trimesh | np.ndarray,
    truth: trimesh.Trimesh | np.ndarray,
    tau: float = DEFAULT_FSCORE_TAUS[0],
    num_samples: int = DEFAULT_NUM_SAMPLES,
    seed: int = 0,
) -> float:
    """F-score@tau: harmonic mean of precision (prediction within ``tau`` of the truth) and recall."""
    return surface_distances(prediction, truth, num_samples, seed).f_score(tau)


def geometry_metrics(
    prediction: trimesh.Trimesh,
    truth: trimesh.Trimesh,
    taus: Sequence[float] = DEFAULT_FSCORE_TAUS,
    num_samples: int = DEFAULT_NUM_SAMPLES,
    seed: int = 0,
) -> dict[str, float]:
    """Every geometry figure of the protocol as a flat dict.

    Keys: ``chamfer``, ``accuracy``, ``completeness`` and, per tau (formatted like
    ``0.1``), ``fscore@tau``, ``precision@tau``, ``recall@tau``.
    """
    distances = surface_distances(prediction, truth, num_samples, seed)
    metrics = {"chamfer": distances.chamfer, "accuracy": distances.accuracy, "completeness": distances.completeness}
    for tau in taus:
        metrics[f"fscore@{tau:g}"] = distances.f_score(tau)
        metrics[f"precision@{tau:g}"] = distances.precision(tau)
        metrics[f"recall@{tau:g}"] = distances.recall(tau)
    return metrics


def load_mesh(path) -> trimesh.Trimesh:
    """Load a mesh file (ply/obj/glb/...) as one :class:`trimesh.Trimesh` (scenes are concatenated
    in their world frame). Raises a clear error for a missing or empty file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"ground-truth mesh not found: {path}; render the object with "
            "`blender_scripts/dataset_rendering.py ... --save_mesh` to write it"
        )
    loaded = trimesh.load(path, force="mesh", process=False)
    if not isinstance(loaded, trimesh.Trimesh) or len(loaded.faces) == 0:
        raise EmptyMeshError(f"{path}: holds no triangles")
    return loaded


def _as_points(surface: trimesh.Trimesh | np.ndarray, num_samples: int, seed: int) -> np.ndarray:
    if isinstance(surface, trimesh.Trimesh):
        return sample_surface_points(surface, num_samples, seed)
    points = np.asarray(surface, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 3:
        raise ValueError(f"expected a mesh or an (N, 3) point array, got shape {points.shape}")
    return points
