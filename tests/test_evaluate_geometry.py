"""Chamfer distance and F-score against analytic cases (mira.evaluation.geometry)."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh

from mira.evaluation.geometry import (
    EmptyMeshError,
    chamfer_distance,
    f_score,
    geometry_metrics,
    load_mesh,
    point_set_distances,
    sample_surface_points,
    surface_distances,
)


def test_point_sets_by_hand():
    prediction = np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    truth = np.array([[0.0, 0.0, 0.0], [0.0, 3.0, 0.0], [0.0, 0.0, 0.5]])
    distances = point_set_distances(prediction, truth)
    # prediction -> truth: 0 and 1 (L2, not squared); truth -> prediction: 0, 3, 0.5.
    np.testing.assert_allclose(distances.prediction_to_truth, [0.0, 1.0])
    np.testing.assert_allclose(distances.truth_to_prediction, [0.0, 3.0, 0.5])
    assert distances.chamfer == pytest.approx(0.5 * (0.5 + 3.5 / 3))
    assert distances.precision(0.75) == pytest.approx(0.5)
    assert distances.recall(0.75) == pytest.approx(2 / 3)
    assert distances.f_score(0.75) == pytest.approx(2 * 0.5 * (2 / 3) / (0.5 + 2 / 3))
    assert distances.f_score(1e-9) == pytest.approx(2 * 0.5 * (1 / 3) / (0.5 + 1 / 3))
    assert point_set_distances(truth, truth).chamfer == 0.0


def test_concentric_spheres_chamfer_is_radius_gap():
    inner = trimesh.creation.icosphere(subdivisions=5, radius=0.5)
    outer = trimesh.creation.icosphere(subdivisions=5, radius=0.6)
    distances = surface_distances(inner, outer, num_samples=20000, seed=3)
    # Every point of one sphere is 0.1 from the other; sampling adds << 1e-3.
    assert distances.chamfer == pytest.approx(0.1, abs=1e-3)
    assert distances.accuracy == pytest.approx(0.1, abs=1e-3)
    assert distances.completeness == pytest.approx(0.1, abs=1e-3)
    assert distances.f_score(0.09) == 0.0
    assert distances.f_score(0.11) == 1.0
    # Symmetric in its arguments (same sample seeds swapped give the same statistic).
    assert chamfer_distance(outer, inner, 20000, seed=3) == pytest.approx(distances.chamfer, abs=1e-3)


def _shifted_cube_chamfer(d: float) -> float:
    """Exact symmetric L1 Chamfer between the unit cube and itself shifted by d < 0.5 along x.

    Per unit face area of cube A: the back face (x=0) is d from B; the front face (x=1)
    lies inside B, at min(d, distance to its own edges), whose mean is (1 - (1 - 2d)^3) / 6;
    each of the 4 side faces is d - x from B for x < d and on B otherwise: mean d^2 / 2.
    The other direction is the same by symmetry.
    """
    return (d + (1 - (1 - 2 * d) ** 3) / 6 + 4 * d * d / 2) / 6


def _shifted_cube_fscore(d: float, tau: float) -> float:
    """Exact F-score@tau (tau < d) of the same pair: precision = recall = this fraction of area."""
    return (0.0 + (1 - (1 - 2 * tau) ** 2) + 4 * (1 - d + tau)) / 6


def test_shifted_cube_matches_analytic_values():
    d = 0.1
    cube = trimesh.creation.box(extents=(1.0, 1.0, 1.0))
    shifted = cube.copy()
    shifted.apply_translation((d, 0.0, 0.0))
    distances = surface_distances(cube, shifted, num_samples=100_000, seed=0)
    exact = _shifted_cube_chamfer(d)
    # Point sampling only adds distance (~0.7 / sqrt(num_samples) here), never removes it.
    assert exact <= distances.chamfer <= exact + 0.004
    assert distances.f_score(0.05) == pytest.approx(_shifted_cube_fscore(d, 0.05), abs=0.01)
    assert distances.f_score(d + 0.02) == pytest.approx(1.0)
    # The metric sees the shift: an unshifted copy is ~the sampling bias alone, far below.
    assert chamfer_distance(cube, cube.copy(), 100_000, seed=0) < 0.004


def test_more_samples_reduce_the_sampling_bias():
    d = 0.1
    cube = trimesh.creation.box(extents=(1.0, 1.0, 1.0))
    shifted = cube.copy()
    shifted.apply_translation((d, 0.0, 0.0))
    exact = _shifted_cube_chamfer(d)
    coarse = chamfer_distance(cube, shifted, 4000, seed=1) - exact
    fine = chamfer_distance(cube, shifted, 64000, seed=1) - exact
    assert 0 < fine < coarse / 2


def test_geometry_metrics_keys_and_determinism():
    sphere = trimesh.creation.icosphere(subdivisions=3, radius=0.5)
    box = trimesh.creation.box(extents=(1.0, 1.0, 1.0))
    first = geometry_metrics(sphere, box, taus=(0.1, 0.05), num_samples=2000, seed=7)
    second = geometry_metrics(sphere, box, taus=(0.1, 0.05), num_samples=2000, seed=7)
    assert first == second
    assert set(first) == {
        "chamfer", "accuracy", "completeness",
        "fscore@0.1", "precision@0.1", "recall@0.1", "fscore@0.05", "precision@0.05", "recall@0.05",
    }
    assert f_score(sphere, box, 0.1, 2000, seed=7) == pytest.approx(first["fscore@0.1"])


def test_sampling_is_area_weighted():
    # A 1 x 1 x 0.01 slab: almost all area is on the two big faces (|z| = 0.005).
    slab = trimesh.creation.box(extents=(1.0, 1.0, 0.01))
    points = sample_surface_points(slab, 20000, seed=0)
    on_big_faces = np.isclose(np.abs(points[:, 2]), 0.005).mean()
    assert on_big_faces == pytest.approx(2.0 / (2.0 + 4 * 0.01), abs=0.01)


def test_empty_and_missing_meshes_give_clear_errors(tmp_path):
    empty = trimesh.Trimesh(vertices=np.zeros((0, 3)), faces=np.zeros((0, 3), dtype=np.int64))
    with pytest.raises(EmptyMeshError):
        chamfer_distance(empty, trimesh.creation.box())
    with pytest.raises(FileNotFoundError, match="save_mesh"):
        load_mesh(tmp_path / "mesh.ply")
    path = tmp_path / "box.ply"
    trimesh.creation.box(extents=(1.0, 2.0, 3.0)).export(path)
    assert load_mesh(path).extents == pytest.approx([1.0, 2.0, 3.0])
