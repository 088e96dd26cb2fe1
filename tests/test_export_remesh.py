"""Instant Meshes remeshing (``extract_mesh(remesh_mode=...)``, ``test.py --remesh``) on an analytic ball."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mira.export.mesh import extract_mesh
from helpers_inference import AnalyticField, position_color

pytest.importorskip("pynanoinstantmeshes", reason="remeshing needs pynanoinstantmeshes (requirements.txt)")

DUMMY_TRIPLANE = torch.zeros(1, 3, 1, 2, 2)
CENTER = np.array([0.1, -0.2, 0.15])
RADIUS = 0.45


def ball_field() -> AnalyticField:
    center = torch.tensor(CENTER)
    return AnalyticField(lambda p: (100 * (RADIUS + 0.05 - (p - center.to(p)).norm(dim=-1))).clamp_min(0),
                         position_color)


def min_angles_deg(mesh) -> np.ndarray:
    """Smallest interior angle of each face, degrees."""
    return np.degrees(mesh.face_angles.min(axis=1))


@pytest.mark.parametrize("mode", ["triangle", "quad"])
def test_remeshed_ball_stays_on_the_surface_with_better_faces(mode):
    field = ball_field()
    marching = extract_mesh(field, DUMMY_TRIPLANE, resolution=32, density_threshold=5.0)
    remeshed = extract_mesh(field, DUMMY_TRIPLANE, resolution=32, density_threshold=5.0, remesh_mode=mode,
                            target_faces=1200)
    distances = np.linalg.norm(remeshed.vertices - CENTER, axis=1)
    assert np.abs(distances - RADIUS).max() < 0.02
    outward = np.einsum("ij,ij->i", remeshed.face_normals, remeshed.triangles_center - CENTER)
    assert (outward > 0).mean() > 0.99
    # Marching cubes' slivers are gone: the worst 5% of faces are far better shaped.
    assert np.percentile(min_angles_deg(remeshed), 5) > np.percentile(min_angles_deg(marching), 5) + 10
    # Colours are read at the new vertices.
    expected = np.round(np.clip((remeshed.vertices + 1) / 2, 0, 1) * 255)
    np.testing.assert_allclose(remeshed.visual.vertex_colors[:, :3], expected, atol=1)
    if mode == "triangle":  # about target_faces / 2 vertices
        assert 400 <= len(remeshed.vertices) <= 800, len(remeshed.vertices)
    else:  # quads written as triangle pairs: face i and face i + F/2 share a diagonal
        half = len(remeshed.faces) // 2
        first, second = remeshed.faces[:half], remeshed.faces[half:]
        assert len(remeshed.faces) % 2 == 0
        assert (first[:, 0] == second[:, 0]).all() and (first[:, 2] == second[:, 1]).all()
