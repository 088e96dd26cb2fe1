"""Exports of a reconstructed triplane, written atomically (:mod:`mira.atomic`): a coloured mesh
(:mod:`~mira.export.mesh`: marching cubes, clean-up, remeshing, PLY / OBJ / GLB in each format's frame),
a baked UV texture (:mod:`~mira.export.texture`), the GLB writer with glTF's colour spaces
(:mod:`~mira.export.gltf`) and a turntable video (:mod:`~mira.export.video`). See docs/EXPORT.md."""

from mira.export.mesh import extract_mesh, save_mesh
from mira.export.texture import texture_mesh
from mira.export.video import render_orbit_frames, write_video

__all__ = ["extract_mesh", "render_orbit_frames", "save_mesh", "texture_mesh", "write_video"]
