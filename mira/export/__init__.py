"""Exports of a reconstructed triplane: a coloured mesh (:mod:`~mira.export.mesh`) and a turntable
video (:mod:`~mira.export.video`), written atomically (:mod:`mira.atomic`)."""

from mira.export.mesh import extract_mesh, save_mesh
from mira.export.video import render_orbit_frames, write_video

__all__ = ["extract_mesh", "render_orbit_frames", "save_mesh", "write_video"]
