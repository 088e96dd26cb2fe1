"""Procedural training objects rendered on the fly: random composites of SDF primitives, sphere traced
in batched PyTorch (GPU or CPU) so that they look like ``blender_scripts/dataset_rendering.py``'s
Cycles renders of the same objects.

Modules: :mod:`~mira.data.procedural.sdf` (primitives, union / smooth union / subtraction),
:mod:`~mira.data.procedural.objects` (:class:`ProceduralObjects`, :func:`signed_distance`,
:func:`albedo`), :mod:`~mira.data.procedural.sampling` (:func:`sample_objects`, normalisation),
:mod:`~mira.data.procedural.texture`, :mod:`~mira.data.procedural.colour` (textures, colours, sRGB),
:mod:`~mira.data.procedural.lighting` (:class:`Lighting`: the script's lights),
:mod:`~mira.data.procedural.shading` (Cycles' Principled BSDF under those lights),
:mod:`~mira.data.procedural.render` (:func:`render_views`: sphere tracing, anti-aliasing, sRGB),
:mod:`~mira.data.procedural.export` (meshes for Blender, a dataset in our render layout),
:mod:`~mira.data.procedural.benchmark`, :mod:`~mira.data.procedural.cli`
(``python -m mira.data.procedural {write,meshes,benchmark}``) and
:mod:`~mira.data.procedural.acceleration` (``torch.compile`` on CUDA).

Conventions: MIRA's (``docs/CAMERAS.md``): world +Z up, OpenCV c2w, normalised intrinsics; every
object is normalised like the Blender script's default ``--normalisation sphere``: bounding-box
centre at the origin, bounding sphere about it of radius :data:`PROCEDURAL_RADIUS` = 0.9.

Agreement with Blender (bpy 5.0.1, Cycles CPU, the script's default lighting; procedural objects
exported by :func:`~mira.data.procedural.export.object_mesh` at 192^3 (160^3 in the test), rendered
by the script and by :func:`render_views` (supersample 2) at the cameras the script saved):

* alpha IoU (threshold 0.5): 0.97-0.99 per view at 64 px (``tests/test_procedural.py -m blender``,
  objects 0 and 1 of seed 0, 16 samples), 0.99-0.995 at 96 px (8 objects, 64 samples); silhouette
  area within 0.5 % of Blender's (Blender's own equals the analytic area of a sphere to 0.002 %).
* colour PSNR over the pixels both call object (alpha > 0.5), sRGB in [0, 1]: 40.2 and 31.6 dB for
  those two objects at 64 px / 16 samples; 37.3 dB over 8 objects at 96 px / 64 samples (33.5-47.5
  per object); a grey / black / white sphere 44 / 49.5 / 48 dB. Mean colour bias < 0.003.
  Cycles' own noise at these settings caps the figure: two Cycles renders of one object with
  different seeds agree to 43.8 dB. What remains is concentrated on edges inside the object
  (occlusion, texture and shadow edges: sub-pixel sampling and vertex-colour interpolation in
  Blender; inter-reflections in creases, which ambient occlusion only approximates).

Speed (``python -m mira.data.procedural benchmark``; one training step = 32 objects x (5 views of
64^2 + one source view of 224^2), random lighting): on an H100, 64 ms (supersample 1) and 104 ms
(supersample 2: 38 ms for the targets, 65 ms for the adaptively supersampled source), plus 145 ms to
draw and normalise the 32 objects; torch.compile adds ~2 minutes once per process. On the CPU
(2 cores) a 64^2 view of 4 objects takes ~0.8 s. GPU and CPU renders agree to 1.5e-3.
"""

from mira.data.procedural.export import export_meshes, object_mesh, write_procedural_dataset
from mira.data.procedural.lighting import Lighting, default_lighting, random_lighting
from mira.data.procedural.objects import PROCEDURAL_RADIUS, ProceduralObjects, albedo, signed_distance
from mira.data.procedural.render import render_views
from mira.data.procedural.sampling import sample_objects

__all__ = [
    "PROCEDURAL_RADIUS",
    "Lighting",
    "ProceduralObjects",
    "albedo",
    "default_lighting",
    "export_meshes",
    "object_mesh",
    "random_lighting",
    "render_views",
    "sample_objects",
    "signed_distance",
    "write_procedural_dataset",
]
