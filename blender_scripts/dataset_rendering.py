"""Render one 3D object into a MIRA multi-view dataset folder with Blender.

Run it with a real Blender (>= 4.2) or with the ``bpy`` wheel; arguments follow ``--``::

    blender --background --python blender_scripts/dataset_rendering.py -- \\
        --object_path model.glb --output_dir renders --num_renders 32 --engine CYCLES
    .venv-blender/bin/python blender_scripts/dataset_rendering.py -- --object_path model.glb ...

The script is self-contained (Blender's Python + numpy; it imports neither ``mira`` nor torch).

What it does:

1. Imports the object (glb/gltf, obj(+mtl), fbx, ply, stl, usd/usda/usdc/usdz, abc, dae, blend;
   a format the running Blender lacks is a clear error) into an empty scene.
2. Normalises the scene (``--normalisation``): by default (``sphere``) the bounding-box centre
   goes to the origin and the bounding sphere about it (radius = the largest distance of a
   vertex from that centre) is scaled to radius ``SPHERE_RADIUS`` = 0.9 (so the object is
   inside [-0.9, 0.9]^3, whatever its orientation); ``box`` keeps the older convention: centred,
   largest bounding-box side ``BOX_SIZE`` = 1.6 (inside [-0.8, 0.8]^3).
   ``x_rendered = scale * x_imported + offset`` is recorded in ``metadata.json`` with the mode
   (``x_imported`` = Blender world coordinates after the importer's axis conversion, given as
   ``import_axes`` where it is fixed by the format).
3. Renders ``--num_renders`` views from random cameras looking at the origin (35 mm lens on a
   32 mm sensor: 49.13 deg horizontal field of view, like the zero123 / Objaverse renders).

Output in ``<output_dir>/<object_id>/``:

* ``000.png ...``: RGBA (8 bit, straight alpha, transparent background), sRGB "Standard" view.
* ``transforms.json``: nerfstudio / NeRF-synthetic convention: ``fl_x, fl_y, cx, cy, w, h``
  (pixels), ``camera_angle_x`` (radians), frames with ``file_path`` and ``transform_matrix``
  = camera-to-world 4x4 with OpenGL/Blender camera axes (+X right, +Y up, +Z backwards).
* ``000.npy ...``: 3x4 world-to-camera ``[R | t]`` in Blender camera axes, exactly as zero123's
  ``get_3x4_RT_matrix_from_blender``.
* ``metadata.json`` (written last): source path and sha256, normalisation, engine, resolution,
  Blender version, timings, camera and lighting settings.
* ``mesh.ply`` with ``--save_mesh``: the normalised scene as one triangle mesh, same world frame.
* ``000_depth.npy`` with ``--save_depth``: float32 (H, W) depth along the camera's viewing axis
  (OpenCV +Z) in world units, 0 on the background.
* ``000_normal.npy`` with ``--save_normal``: float16 (H, W, 3) world-space unit normals, 0 on
  the background.

A failure exits with status 1; the last line on stderr is ``MIRA_RENDER_ERROR: <reason>``.
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import json
import math
import os
import re
import shutil
import sys
import tempfile
import time
import traceback

import numpy as np

try:
    import bpy
    from mathutils import Matrix
except ImportError:  # pragma: no cover - only outside Blender
    sys.stderr.write(
        "MIRA_RENDER_ERROR: this script needs Blender's Python: run it with "
        "'blender --background --python dataset_rendering.py -- ARGS' or with a Python that has "
        "the bpy wheel (pip install bpy==5.0.1)\n"
    )
    sys.exit(2)

SCRIPT_VERSION = 1
ERROR_PREFIX = "MIRA_RENDER_ERROR: "
# Normalisation (world units; the renderer's box is [-1, 1]^3). "sphere" (default): radius of the
# bounding sphere about the bounding-box centre, as mira.data.procedural.PROCEDURAL_RADIUS.
# "box": largest side of the bounding box (the convention before sphere normalisation).
SPHERE_RADIUS = 0.9
BOX_SIZE = 1.6
NORMALISATION_MODES = ("sphere", "box")
# The zero123 / Objaverse camera: a 35 mm lens on a 32 mm wide sensor.
LENS_MM = 35.0
SENSOR_WIDTH_MM = 32.0
CLIP_START = 0.01
CLIP_END = 100.0
# Neutral grey (linear RGB) for objects without materials.
DEFAULT_GREY = (0.5, 0.5, 0.5, 1.0)
GEOMETRY_TYPES = {"MESH", "CURVE", "SURFACE", "META", "FONT", "CURVES", "POINTCLOUD"}
EEVEE_NAMES = ("BLENDER_EEVEE", "BLENDER_EEVEE_NEXT", "EEVEE")
ENGINE_ALIASES = {"WORKBENCH": "BLENDER_WORKBENCH", "CYCLES": "CYCLES", "BLENDER_WORKBENCH": "BLENDER_WORKBENCH"}

# Importer axis conversion (file coordinates -> Blender world) where the format fixes it:
# glTF and (by Blender's default options) OBJ are +Y up; Blender is +Z up.
Y_UP_TO_Z_UP = [[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]]
IDENTITY_3 = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]

# suffix -> (bpy.ops module, operator, extra keyword arguments (dropped if the operator lacks them),
#            importer axis conversion or None if it depends on the file)
IMPORTERS = {
    ".glb": ("import_scene", "gltf", {}, Y_UP_TO_Z_UP),
    ".gltf": ("import_scene", "gltf", {}, Y_UP_TO_Z_UP),
    ".obj": ("wm", "obj_import", {"forward_axis": "NEGATIVE_Z", "up_axis": "Y"}, Y_UP_TO_Z_UP),
    ".fbx": ("import_scene", "fbx", {}, None),
    ".ply": ("wm", "ply_import", {"forward_axis": "Y", "up_axis": "Z"}, IDENTITY_3),
    ".stl": ("wm", "stl_import", {"forward_axis": "Y", "up_axis": "Z"}, IDENTITY_3),
    ".usd": ("wm", "usd_import", {}, None),
    ".usda": ("wm", "usd_import", {}, None),
    ".usdc": ("wm", "usd_import", {}, None),
    ".usdz": ("wm", "usd_import", {}, None),
    ".abc": ("wm", "alembic_import", {"as_background_job": False}, None),
    ".dae": ("wm", "collada_import", {}, None),
}
SUPPORTED_SUFFIXES = sorted(list(IMPORTERS) + [".blend"])


class RenderError(Exception):
    """A reason to stop rendering this object; reported as one line."""


# ----------------------------------------------------------------------------- arguments
def script_argv(argv: list[str]) -> list[str]:
    """The script's own arguments: those after ``--`` (Blender style), else all after argv[0]."""
    if "--" in argv:
        return argv[argv.index("--") + 1:]
    return argv[1:] if bpy.app.binary_path == "" else []  # bpy wheel: all; Blender: its own args


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Parse the command line (the part after ``--``)."""
    parser = argparse.ArgumentParser(
        prog="dataset_rendering.py",
        description="Render an object into a MIRA multi-view dataset folder (run through Blender; args after --).",
    )
    parser.add_argument("--object_path", required=True, help="mesh/scene file: " + ", ".join(SUPPORTED_SUFFIXES))
    parser.add_argument("--output_dir", required=True, help="views go to <output_dir>/<object_id>/")
    parser.add_argument("--object_id", default=None, help="folder name; default: the file name without suffix")
    parser.add_argument("--num_renders", type=int, default=32)
    parser.add_argument("--engine", default="CYCLES",
                        help="CYCLES, BLENDER_EEVEE (or BLENDER_EEVEE_NEXT, Blender 4.2-4.x) or BLENDER_WORKBENCH")
    parser.add_argument("--device", default="CPU", choices=["CPU", "GPU"], help="Cycles device")
    parser.add_argument("--resolution", type=int, default=512, help="square image side in pixels")
    parser.add_argument("--samples", type=int, default=128,
                        help="Cycles/EEVEE samples per pixel; Workbench anti-aliasing samples")
    parser.add_argument("--denoise", action="store_true", help="Cycles: denoise (OpenImageDenoise)")
    parser.add_argument("--camera_dist_min", type=float, default=2.2)
    parser.add_argument("--camera_dist_max", type=float, default=2.8)
    parser.add_argument("--elevation_min", type=float, default=-90.0, help="degrees; cameras uniform on the sphere band")
    parser.add_argument("--elevation_max", type=float, default=90.0)
    parser.add_argument("--only_northern_hemisphere", action="store_true", help="elevations >= 0 only")
    parser.add_argument("--seed", type=int, default=0, help="cameras (and random lighting)")
    parser.add_argument("--normalisation", default="sphere", choices=NORMALISATION_MODES,
                        help=f"sphere: bounding sphere (about the bounding-box centre) of radius {SPHERE_RADIUS}; "
                             f"box: largest bounding-box side {BOX_SIZE}")
    parser.add_argument("--random_lighting", action="store_true", help="randomise environment and sun lights")
    parser.add_argument("--save_depth", action="store_true")
    parser.add_argument("--save_normal", action="store_true")
    parser.add_argument("--save_mesh", action="store_true", help="write mesh.ply (normalised scene mesh)")
    parser.add_argument("--threads", type=int, default=0, help="render threads; 0 = all cores")
    args = parser.parse_args(argv)
    check_args(args)
    return args


def check_args(args: argparse.Namespace) -> None:
    """Reject inconsistent arguments with a one-line reason."""
    if args.num_renders < 1:
        raise RenderError(f"--num_renders must be >= 1, got {args.num_renders}")
    if args.resolution < 8:
        raise RenderError(f"--resolution must be >= 8 pixels, got {args.resolution}")
    if args.samples < 1:
        raise RenderError(f"--samples must be >= 1, got {args.samples}")
    if not 0.0 < args.camera_dist_min <= args.camera_dist_max:
        raise RenderError("camera distances need 0 < --camera_dist_min <= --camera_dist_max")
    if args.only_northern_hemisphere:
        args.elevation_min = max(args.elevation_min, 0.0)
    if not -90.0 <= args.elevation_min <= args.elevation_max <= 90.0:
        raise RenderError("elevations need -90 <= --elevation_min <= --elevation_max <= 90 (degrees)")


# ----------------------------------------------------------------------------- scene setup
def reset_scene() -> bpy.types.Scene:
    """An empty scene with factory settings (no startup cube, light or camera)."""
    bpy.ops.wm.read_factory_settings(use_empty=True)
    return bpy.context.scene


def operator_or_none(module: str, name: str):
    """``bpy.ops.<module>.<name>`` if this Blender has it, else None."""
    op = getattr(getattr(bpy.ops, module), name)
    try:
        op.get_rna_type()
    except (KeyError, AttributeError, RuntimeError):
        return None
    return op


def call_operator(op, **kwargs) -> set:
    """Call an operator with the keyword arguments it knows (they differ between versions)."""
    known = set(op.get_rna_type().properties.keys())
    return op(**{k: v for k, v in kwargs.items() if k in known})


def import_object(path: str) -> list | None:
    """Import ``path`` into the current scene; return the importer's axis conversion (3x3) or None."""
    suffix = os.path.splitext(path)[1].lower()
    if suffix == ".blend":
        append_blend_scene(path)
        return IDENTITY_3
    if suffix not in IMPORTERS:
        raise RenderError(f"unsupported file type '{suffix}' for {path}; supported: {', '.join(SUPPORTED_SUFFIXES)}")
    module, name, kwargs, axes = IMPORTERS[suffix]
    op = operator_or_none(module, name)
    if op is None:
        raise RenderError(
            f"this Blender {bpy.app.version_string} has no importer for '{suffix}' (bpy.ops.{module}.{name}); "
            "convert the file (e.g. to .glb) or use a Blender build that has it"
        )
    try:
        result = call_operator(op, filepath=path, **kwargs)
    except Exception as error:  # importers raise RuntimeError with their report
        raise RenderError(f"could not import {path}: {first_line(error)}") from error
    if "FINISHED" not in result:
        raise RenderError(f"could not import {path}: the {suffix} importer returned {sorted(result)}")
    return axes


def append_blend_scene(path: str) -> None:
    """Link the objects and collections of the first scene of a .blend file into the current scene."""
    try:
        with bpy.data.libraries.load(path, link=False) as (data_from, data_to):
            if not data_from.scenes:
                raise RenderError(f"{path} holds no scene")
            data_to.scenes = [data_from.scenes[0]]
    except OSError as error:
        raise RenderError(f"could not read {path}: {first_line(error)}") from error
    source = data_to.scenes[0]
    target = bpy.context.scene
    for child in source.collection.children:
        target.collection.children.link(child)
    for obj in source.collection.objects:
        target.collection.objects.link(obj)
    bpy.data.scenes.remove(source)


def remove_cameras_and_lights(scene: bpy.types.Scene) -> None:
    """Drop imported cameras and lights: the dataset's own cameras and lights are used."""
    for obj in list(scene.objects):
        if obj.type in {"CAMERA", "LIGHT", "LIGHT_PROBE", "LIGHTPROBE"}:
            bpy.data.objects.remove(obj, do_unlink=True)
        elif obj.hide_viewport and not obj.hide_render:  # rendered, so it must count for the box and mesh
            obj.hide_viewport = False


def first_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return " ".join(text.splitlines()[:2])[:300]


# ----------------------------------------------------------------------------- geometry
def world_triangles(scene: bpy.types.Scene) -> tuple[np.ndarray, np.ndarray]:
    """Every rendered triangle of the evaluated scene in world coordinates.

    Instances (collection instances, particles, geometry nodes) are included.
    Returns vertices (V, 3) float64 and faces (F, 3) int64.
    """
    bpy.context.view_layer.update()
    depsgraph = bpy.context.evaluated_depsgraph_get()
    vertices, faces, count = [], [], 0
    for instance in depsgraph.object_instances:
        obj = instance.object
        if obj.type not in GEOMETRY_TYPES or obj.original.hide_render:
            continue
        try:
            mesh = obj.to_mesh()
        except RuntimeError:
            continue
        if mesh is None:
            continue
        try:
            v, f = mesh_arrays(mesh)
        finally:
            obj.to_mesh_clear()
        if len(f) == 0:
            continue
        matrix = np.array(instance.matrix_world, dtype=np.float64)
        vertices.append(v @ matrix[:3, :3].T + matrix[:3, 3])
        faces.append(f + count)
        count += len(v)
    if not faces:
        return np.zeros((0, 3)), np.zeros((0, 3), dtype=np.int64)
    return np.concatenate(vertices), np.concatenate(faces)


def mesh_arrays(mesh) -> tuple[np.ndarray, np.ndarray]:
    """Local vertices (V, 3) and triangulated faces (F, 3) of a Blender mesh."""
    mesh.calc_loop_triangles()
    co = np.empty(len(mesh.vertices) * 3, dtype=np.float32)
    mesh.vertices.foreach_get("co", co)
    tris = np.empty(len(mesh.loop_triangles) * 3, dtype=np.int32)
    mesh.loop_triangles.foreach_get("vertices", tris)
    return co.reshape(-1, 3).astype(np.float64), tris.reshape(-1, 3).astype(np.int64)


def bounding_box(vertices: np.ndarray, path: str) -> tuple[np.ndarray, np.ndarray]:
    """(min (3,), max (3,)) of the used vertices; an empty or zero-size scene is an error."""
    if len(vertices) == 0:
        raise RenderError(f"empty scene: {path} has no renderable triangles (point cloud, empty file or only helpers)")
    if not np.all(np.isfinite(vertices)):
        raise RenderError(f"{path} has non-finite vertex coordinates")
    low, high = vertices.min(axis=0), vertices.max(axis=0)
    if float((high - low).max()) < 1e-8:
        raise RenderError(f"zero-size object: the bounding box of {path} is a point")
    return low, high


def normalisation_transform(vertices: np.ndarray, low: np.ndarray, high: np.ndarray,
                            mode: str) -> tuple[float, np.ndarray]:
    """``(scale, offset (3,))`` moving the bounding-box centre to the origin and scaling the bounding
    sphere about it to radius SPHERE_RADIUS (``sphere``) or the largest box side to BOX_SIZE (``box``)."""
    centre = (low + high) / 2.0
    if mode == "sphere":
        radius = float(np.sqrt(((vertices - centre) ** 2).sum(axis=1)).max())
        scale = SPHERE_RADIUS / radius
    elif mode == "box":
        scale = BOX_SIZE / float((high - low).max())
    else:
        raise RenderError(f"unknown normalisation '{mode}'; choose from {', '.join(NORMALISATION_MODES)}")
    return scale, -scale * centre


def normalise_scene(scene: bpy.types.Scene, scale: float, offset: np.ndarray) -> tuple[float, np.ndarray]:
    """Apply ``x -> scale * x + offset`` to the whole scene.

    All root objects are parented (keeping their world transforms) to one empty with that
    transform; animated roots keep their animation. Returns (scale, offset (3,)).
    """
    pivot = bpy.data.objects.new("mira_normalisation", None)
    scene.collection.objects.link(pivot)
    for obj in scene.objects:
        if obj.parent is None and obj is not pivot:
            world = obj.matrix_world.copy()
            obj.parent = pivot
            obj.matrix_parent_inverse = Matrix.Identity(4)
            obj.matrix_world = world
    pivot.scale = (scale, scale, scale)
    pivot.location = tuple(offset)
    bpy.context.view_layer.update()
    return scale, offset


def write_ply(path: str, vertices: np.ndarray, faces: np.ndarray) -> None:
    """Binary little-endian PLY triangle mesh, written atomically."""
    header = (
        "ply\nformat binary_little_endian 1.0\ncomment MIRA normalised scene mesh\n"
        f"element vertex {len(vertices)}\nproperty float x\nproperty float y\nproperty float z\n"
        f"element face {len(faces)}\nproperty list uchar int vertex_indices\nend_header\n"
    ).encode("ascii")
    face_records = np.empty(len(faces), dtype=[("n", "u1"), ("v", "<i4", (3,))])
    face_records["n"] = 3
    face_records["v"] = faces
    with atomic_file(path) as handle:
        handle.write(header)
        handle.write(vertices.astype("<f4").tobytes())
        handle.write(face_records.tobytes())


# ----------------------------------------------------------------------------- materials & lights
def new_material(name: str):
    """A node material with a Principled BSDF (works on Blender 4.2 ... 5.x)."""
    material = bpy.data.materials.new(name)
    if getattr(material, "node_tree", None) is None:
        material.use_nodes = True
    return material, principled_node(material)


def principled_node(material):
    if material.node_tree is None:
        return None
    return next((n for n in material.node_tree.nodes if n.type == "BSDF_PRINCIPLED"), None)


def assign_default_materials(scene: bpy.types.Scene) -> int:
    """Give material-less geometry a neutral grey (or its vertex colours). Returns how many got one."""
    grey = None
    changed = 0
    for obj in scene.objects:
        if obj.type not in GEOMETRY_TYPES or not hasattr(obj.data, "materials"):
            continue
        slots = obj.material_slots
        if slots and all(slot.material is not None for slot in slots):
            continue
        colour_attribute = vertex_colour_name(obj)
        if colour_attribute and not slots:
            material = vertex_colour_material(colour_attribute)
        else:
            if grey is None:
                grey, bsdf = new_material("mira_default_grey")
                grey.diffuse_color = DEFAULT_GREY
                if bsdf is not None:
                    bsdf.inputs["Base Color"].default_value = DEFAULT_GREY
                    bsdf.inputs["Roughness"].default_value = 0.8
            material = grey
        if not slots:
            obj.data.materials.append(material)
        for slot in obj.material_slots:
            if slot.material is None:
                slot.material = material
        changed += 1
    return changed


def vertex_colour_name(obj) -> str | None:
    attributes = getattr(obj.data, "color_attributes", None)
    if not attributes:
        return None
    return attributes[0].name


def vertex_colour_material(attribute: str):
    material, bsdf = new_material(f"mira_vertex_colour_{attribute}")
    if bsdf is not None:
        node = material.node_tree.nodes.new("ShaderNodeVertexColor")
        node.layer_name = attribute
        material.node_tree.links.new(node.outputs["Color"], bsdf.inputs["Base Color"])
        bsdf.inputs["Roughness"].default_value = 0.8
    return material


def sync_viewport_colours(scene: bpy.types.Scene) -> None:
    """Workbench draws ``material.diffuse_color``: copy each unlinked Principled base colour into it."""
    for material in bpy.data.materials:
        bsdf = principled_node(material) if getattr(material, "node_tree", None) else None
        if bsdf is not None and not bsdf.inputs["Base Color"].is_linked:
            material.diffuse_color = tuple(bsdf.inputs["Base Color"].default_value)


def workbench_colour_type(scene: bpy.types.Scene) -> str:
    """Workbench shows one colour source: image textures, else vertex colours, else material colours."""
    if any(n.type == "TEX_IMAGE" and n.image is not None for m in bpy.data.materials
           if getattr(m, "node_tree", None) for n in m.node_tree.nodes):
        return "TEXTURE"
    if any(vertex_colour_name(obj) for obj in scene.objects if obj.type == "MESH"):
        return "VERTEX"
    return "MATERIAL"


def set_world(scene: bpy.types.Scene, colour: tuple, strength: float) -> None:
    """A uniform environment light (transparent in the images: film_transparent)."""
    world = bpy.data.worlds.new("mira_world")
    if getattr(world, "node_tree", None) is None:
        world.use_nodes = True
    background = next(n for n in world.node_tree.nodes if n.type == "BACKGROUND")
    background.inputs["Color"].default_value = (*colour, 1.0)
    background.inputs["Strength"].default_value = strength
    world.color = colour
    scene.world = world


def add_sun(scene: bpy.types.Scene, azimuth_deg: float, elevation_deg: float, strength: float,
            colour: tuple = (1.0, 1.0, 1.0), angle_deg: float = 10.0) -> dict:
    """A sun shining from direction (azimuth, elevation) towards the origin."""
    light = bpy.data.lights.new(f"mira_sun_{len(scene.objects)}", type="SUN")
    light.energy = strength
    light.color = colour
    light.angle = math.radians(angle_deg)
    obj = bpy.data.objects.new(light.name, light)
    scene.collection.objects.link(obj)
    direction = spherical_to_cartesian(azimuth_deg, elevation_deg, 1.0)
    obj.matrix_world = Matrix(look_at_opengl(direction * 5.0).tolist())  # a light shines along its -Z
    return {"type": "SUN", "azimuth_deg": azimuth_deg, "elevation_deg": elevation_deg,
            "strength": strength, "colour": list(colour)}


def setup_lighting(scene: bpy.types.Scene, random_lighting: bool, rng: np.random.Generator) -> dict:
    """Even default lighting (environment + one soft sun), or a randomised set. Returns a description."""
    if not random_lighting:
        # Environment 0.7 + sun 0.9 W/m^2 keeps a white diffuse surface just below 1.0.
        set_world(scene, (1.0, 1.0, 1.0), 0.7)
        sun = add_sun(scene, 45.0, 60.0, 0.9)
        return {"mode": "default", "environment_strength": 0.7, "lights": [sun]}
    strength = float(rng.uniform(0.3, 0.9))
    tint = tuple(float(c) for c in 1.0 - rng.uniform(0.0, 0.15, size=3))
    set_world(scene, tint, strength)
    lights = []
    for _ in range(int(rng.integers(1, 4))):
        colour = tuple(float(c) for c in 1.0 - rng.uniform(0.0, 0.2, size=3))
        lights.append(add_sun(scene, float(rng.uniform(0.0, 360.0)), float(rng.uniform(10.0, 85.0)),
                              float(rng.uniform(0.5, 2.5)), colour, float(rng.uniform(2.0, 30.0))))
    return {"mode": "random", "environment_strength": strength, "environment_colour": list(tint), "lights": lights}


# ----------------------------------------------------------------------------- render settings
def set_render_engine(scene: bpy.types.Scene, requested: str) -> str:
    """Set the engine; EEVEE's identifier differs between Blender versions. Returns the one set."""
    name = requested.upper()
    if name in EEVEE_NAMES:  # EEVEE Next is BLENDER_EEVEE_NEXT in 4.2-4.x, BLENDER_EEVEE again from 5.0
        candidates = ["BLENDER_EEVEE", "BLENDER_EEVEE_NEXT"][::1 if bpy.app.version >= (5, 0, 0) else -1]
    else:
        candidates = [ENGINE_ALIASES.get(name, name)]
    for candidate in candidates:
        try:
            scene.render.engine = candidate
            return candidate
        except TypeError:
            continue
    raise RenderError(
        f"this Blender {bpy.app.version_string} has no render engine '{requested}'; "
        "use CYCLES, BLENDER_EEVEE or BLENDER_WORKBENCH"
    )


def configure_render(scene: bpy.types.Scene, args: argparse.Namespace, engine: str) -> str:
    """Resolution, transparent film, PNG RGBA output, colour management, engine settings.
    Returns the device actually used."""
    render = scene.render
    render.resolution_x = render.resolution_y = args.resolution
    render.resolution_percentage = 100
    render.pixel_aspect_x = render.pixel_aspect_y = 1.0
    render.film_transparent = True
    render.use_file_extension = True
    settings = render.image_settings
    settings.file_format = "PNG"
    settings.color_mode = "RGBA"
    settings.color_depth = "8"
    settings.compression = 15
    scene.view_settings.view_transform = "Standard"
    scene.view_settings.look = "None"
    scene.view_settings.exposure = 0.0
    scene.view_settings.gamma = 1.0
    scene.display_settings.display_device = "sRGB"
    if args.threads > 0:
        render.threads_mode = "FIXED"
        render.threads = args.threads
    device = "CPU"
    if engine == "CYCLES":
        cycles = scene.cycles
        cycles.samples = args.samples
        cycles.seed = args.seed % 2**31  # Cycles takes a signed 32-bit seed
        cycles.use_denoising = bool(args.denoise)
        cycles.device = "CPU"
        if args.device == "GPU":
            device = enable_cycles_gpu(scene)
    elif engine in EEVEE_NAMES:
        scene.eevee.taa_render_samples = args.samples
    elif engine == "BLENDER_WORKBENCH":
        shading = scene.display.shading
        shading.light = "STUDIO"
        shading.color_type = workbench_colour_type(scene)
        choices = [int(i.identifier) for i in scene.display.bl_rna.properties["render_aa"].enum_items
                   if i.identifier.isdigit()]
        scene.display.render_aa = str(min(choices, key=lambda c: abs(c - args.samples))) if choices else "8"
        sync_viewport_colours(scene)
    return device


def enable_cycles_gpu(scene: bpy.types.Scene) -> str:
    """Use every GPU of the first available backend (CUDA_VISIBLE_DEVICES picks cards). Returns e.g. 'GPU:OPTIX'."""
    preferences = bpy.context.preferences.addons["cycles"].preferences
    for backend in ("OPTIX", "CUDA", "HIP", "ONEAPI", "METAL"):
        try:
            preferences.compute_device_type = backend
        except TypeError:
            continue
        if hasattr(preferences, "refresh_devices"):
            preferences.refresh_devices()
        else:
            preferences.get_devices()
        gpus = [d for d in preferences.devices if d.type == backend]
        if gpus:
            for d in preferences.devices:
                d.use = d.type == backend
            scene.cycles.device = "GPU"
            return f"GPU:{backend}"
    raise RenderError("--device GPU: Cycles found no GPU (OPTIX/CUDA/HIP/ONEAPI/METAL); use --device CPU")


# ----------------------------------------------------------------------------- passes (depth, normal)
class PassWriter:
    """Depth / normal passes through a compositor File Output node (OpenEXR), converted to .npy."""

    def __init__(self, scene: bpy.types.Scene, depth: bool, normal: bool, work_dir: str):
        self.depth, self.normal, self.work_dir = depth, normal, work_dir
        if not (depth or normal):
            return
        layer = scene.view_layers[0]
        layer.use_pass_z = depth
        layer.use_pass_normal = normal
        tree = compositor_tree(scene)
        render_layers = tree.nodes.new("CompositorNodeRLayers")
        output = tree.nodes.new("CompositorNodeOutputFile")
        names = [("Depth", "depth")] * depth + [("Normal", "normal")] * normal
        for socket_name, item in names:
            if socket_name not in render_layers.outputs or not render_layers.outputs[socket_name].enabled:
                raise RenderError(f"the {scene.render.engine} engine has no {item} pass; drop --save_{item}")
        connect_file_output(tree, render_layers, output, names, work_dir)

    def save(self, view_dir: str, stem: str) -> dict:
        """Move the passes of the last render to ``<stem>_depth.npy`` / ``<stem>_normal.npy``."""
        files = {}
        if self.depth:
            depth = read_exr(newest(self.work_dir, "depth"))[..., 0]
            depth = np.where((depth > 0) & (depth < 0.5 * CLIP_END) & np.isfinite(depth), depth, 0.0)
            files["depth_file_path"] = save_npy(view_dir, f"{stem}_depth.npy", depth.astype(np.float32))
        if self.normal:
            normal = read_exr(newest(self.work_dir, "normal"))[..., :3]
            length = np.linalg.norm(normal, axis=-1, keepdims=True)
            normal = np.where(length > 1e-3, normal / np.maximum(length, 1e-6), 0.0)
            files["normal_file_path"] = save_npy(view_dir, f"{stem}_normal.npy", normal.astype(np.float16))
        for path in glob.glob(os.path.join(self.work_dir, "*")):
            os.remove(path)
        return files


def compositor_tree(scene: bpy.types.Scene):
    """The scene's compositor node tree (Blender 5: a node group; Blender 4: scene.node_tree)."""
    if hasattr(scene, "compositing_node_group"):
        tree = bpy.data.node_groups.new("mira_passes", "CompositorNodeTree")
        scene.compositing_node_group = tree
        return tree
    scene.use_nodes = True
    tree = scene.node_tree
    tree.nodes.clear()
    return tree


def connect_file_output(tree, render_layers, output, names: list, work_dir: str) -> None:
    """Single-layer float EXR per pass into ``work_dir`` (both the 4.x and 5.x node APIs)."""
    output.format.file_format = "OPEN_EXR_MULTILAYER"  # always valid; switched to single-layer below
    if hasattr(output.format, "media_type"):
        output.format.media_type = "IMAGE"
    output.format.file_format = "OPEN_EXR"
    output.format.color_depth = "32"
    if hasattr(output, "file_output_items"):  # Blender 5
        output.directory = work_dir
        output.file_name = "pass_"
        output.file_output_items.clear()
        for socket_name, item in names:
            output.file_output_items.new("FLOAT" if item == "depth" else "VECTOR", item)
            tree.links.new(render_layers.outputs[socket_name], output.inputs[item])
    else:  # Blender 4.x
        output.base_path = work_dir
        output.file_slots.clear()
        for socket_name, item in names:
            output.file_slots.new(f"{item}_")
            tree.links.new(render_layers.outputs[socket_name], output.inputs[f"{item}_"])


def newest(directory: str, item: str) -> str:
    matches = [p for p in glob.glob(os.path.join(directory, "*.exr")) if item in os.path.basename(p)]
    if not matches:
        raise RenderError(f"the compositor wrote no {item} pass into {directory}")
    return max(matches, key=os.path.getmtime)


def read_exr(path: str) -> np.ndarray:
    """Float pixels (H, W, C) of an EXR, top row first."""
    image = bpy.data.images.load(path, check_existing=False)
    try:
        width, height = image.size
        pixels = np.empty(width * height * image.channels, dtype=np.float32)
        image.pixels.foreach_get(pixels)
        return pixels.reshape(height, width, image.channels)[::-1].copy()
    finally:
        bpy.data.images.remove(image)


def save_npy(directory: str, name: str, array: np.ndarray) -> str:
    with atomic_file(os.path.join(directory, name)) as handle:
        np.save(handle, array)
    return name


# ----------------------------------------------------------------------------- cameras
def spherical_to_cartesian(azimuth_deg: float, elevation_deg: float, distance: float) -> np.ndarray:
    """Point (3,) at azimuth (from +X towards +Y) and elevation (towards +Z), Z up."""
    az, el = math.radians(azimuth_deg), math.radians(elevation_deg)
    return np.array([distance * math.cos(el) * math.cos(az), distance * math.cos(el) * math.sin(az),
                     distance * math.sin(el)])


def look_at_opengl(eye: np.ndarray) -> np.ndarray:
    """4x4 camera-to-world with Blender/OpenGL camera axes (looks along -Z, +Y up) looking at the origin."""
    forward = -eye / np.linalg.norm(eye)
    right = np.cross(forward, [0.0, 0.0, 1.0])
    if np.linalg.norm(right) < 1e-6:  # straight above/below: any right vector will do
        right = np.cross(forward, [0.0, 1.0, 0.0])
    right /= np.linalg.norm(right)
    up = np.cross(right, forward)
    c2w = np.eye(4)
    c2w[:3, 0], c2w[:3, 1], c2w[:3, 2], c2w[:3, 3] = right, up, -forward, eye
    return c2w


def sample_cameras(args: argparse.Namespace, rng: np.random.Generator) -> list[dict]:
    """Random viewpoints: azimuth uniform, directions uniform on the sphere band of elevations."""
    sin_low, sin_high = math.sin(math.radians(args.elevation_min)), math.sin(math.radians(args.elevation_max))
    views = []
    for _ in range(args.num_renders):
        azimuth = float(rng.uniform(0.0, 360.0))
        elevation = math.degrees(math.asin(float(rng.uniform(sin_low, sin_high))))
        distance = float(rng.uniform(args.camera_dist_min, args.camera_dist_max))
        views.append({"azimuth_deg": azimuth, "elevation_deg": elevation, "distance": distance})
    return views


def add_camera(scene: bpy.types.Scene):
    data = bpy.data.cameras.new("mira_camera")
    data.lens = LENS_MM
    data.sensor_width = SENSOR_WIDTH_MM
    data.sensor_fit = "HORIZONTAL"
    data.clip_start, data.clip_end = CLIP_START, CLIP_END
    data.shift_x = data.shift_y = 0.0
    camera = bpy.data.objects.new("mira_camera", data)
    scene.collection.objects.link(camera)
    scene.camera = camera
    return camera


def place_camera(camera, view: dict) -> np.ndarray:
    """Move the camera; returns the c2w (4, 4) Blender actually uses (OpenGL axes)."""
    eye = spherical_to_cartesian(view["azimuth_deg"], view["elevation_deg"], view["distance"])
    camera.matrix_world = Matrix(look_at_opengl(eye).tolist())
    bpy.context.view_layer.update()
    return np.array(camera.matrix_world, dtype=np.float64)


def zero123_w2c(c2w_gl: np.ndarray) -> np.ndarray:
    """3x4 world-to-camera in Blender camera axes, as zero123's get_3x4_RT_matrix_from_blender."""
    rotation = c2w_gl[:3, :3] / np.linalg.norm(c2w_gl[:3, :3], axis=0)  # decompose() drops scale
    r_w2c = rotation.T
    return np.concatenate([r_w2c, (-r_w2c @ c2w_gl[:3, 3])[:, None]], axis=1)


def focal_pixels(resolution: int) -> float:
    """Focal length in pixels of the 35 mm / 32 mm camera for a square image."""
    return LENS_MM / SENSOR_WIDTH_MM * resolution


# ----------------------------------------------------------------------------- files
class atomic_file:
    """``with atomic_file(path) as f`` writes a temporary file and renames it into place.

    Blender's Python cannot import ``mira`` (no torch), so this mirrors ``mira.atomic``: the finished
    file gets ``0o666`` minus the umask, not mkstemp's private 0o600.
    """

    def __init__(self, path: str, mode: str = "wb"):
        self.path, self.mode = path, mode

    def __enter__(self):
        handle, self.tmp = tempfile.mkstemp(dir=os.path.dirname(self.path) or ".", prefix=".tmp_")
        self.handle = os.fdopen(handle, self.mode)
        return self.handle

    def __exit__(self, exc_type, exc, tb):
        self.handle.close()
        if exc_type is None:
            umask = os.umask(0o077)
            os.umask(umask)
            os.chmod(self.tmp, 0o666 & ~umask)
            os.replace(self.tmp, self.path)
        else:
            os.remove(self.tmp)
        return False


OUTPUT_PATTERN = re.compile(r"^(\d{3,}(_depth|_normal)?\.(png|npy)|transforms\.json|metadata\.json|mesh\.ply)$")


def remove_previous_outputs(out_dir: str) -> None:
    """Delete files an earlier render of this object left (e.g. more views); other files stay."""
    for name in os.listdir(out_dir):
        if OUTPUT_PATTERN.match(name):
            os.remove(os.path.join(out_dir, name))


def write_json(path: str, value) -> None:
    with atomic_file(path, "w") as handle:
        json.dump(value, handle, indent=1)
        handle.write("\n")


def sha256_of(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def transforms_json(resolution: int, frames: list[dict]) -> dict:
    """nerfstudio / NeRF-synthetic camera file for square images of side ``resolution``."""
    focal = focal_pixels(resolution)
    return {
        "camera_model": "OPENCV",
        "camera_angle_x": 2.0 * math.atan(SENSOR_WIDTH_MM / (2.0 * LENS_MM)),
        "fl_x": focal, "fl_y": focal,
        "cx": resolution / 2.0, "cy": resolution / 2.0,
        "w": resolution, "h": resolution,
        "frames": frames,
    }


# ----------------------------------------------------------------------------- main
def render_object(args: argparse.Namespace) -> str:
    """Import, normalise and render one object; returns the object folder."""
    path = os.path.abspath(args.object_path)
    if not os.path.isfile(path):
        raise RenderError(f"object file not found: {path}")
    object_id = args.object_id or os.path.splitext(os.path.basename(path))[0]
    out_dir = os.path.join(os.path.abspath(args.output_dir), object_id)
    os.makedirs(out_dir, exist_ok=True)
    remove_previous_outputs(out_dir)
    rng = np.random.default_rng(args.seed)

    scene = reset_scene()
    engine = set_render_engine(scene, args.engine)
    started = time.perf_counter()
    axes = import_object(path)
    remove_cameras_and_lights(scene)
    vertices, _ = world_triangles(scene)
    low, high = bounding_box(vertices, path)
    scale, offset = normalise_scene(scene, *normalisation_transform(vertices, low, high, args.normalisation))
    vertices, faces = world_triangles(scene)
    norm_low, norm_high = bounding_box(vertices, path)
    defaulted = assign_default_materials(scene)
    import_seconds = time.perf_counter() - started

    lighting = setup_lighting(scene, args.random_lighting, rng)
    device = configure_render(scene, args, engine)
    camera = add_camera(scene)
    views = sample_cameras(args, rng)
    work_dir = tempfile.mkdtemp(prefix=".passes_", dir=out_dir)
    passes = PassWriter(scene, args.save_depth, args.save_normal, work_dir)

    frames, seconds = [], []
    for index, view in enumerate(views):
        stem = f"{index:03d}"
        c2w = place_camera(camera, view)
        scene.render.filepath = os.path.join(out_dir, f"{stem}.png")
        tick = time.perf_counter()
        bpy.ops.render.render(write_still=True)
        seconds.append(time.perf_counter() - tick)
        if not os.path.isfile(scene.render.filepath):
            raise RenderError(f"Blender wrote no image for view {stem} ({scene.render.filepath})")
        save_npy(out_dir, f"{stem}.npy", zero123_w2c(c2w))
        frame = {"file_path": f"{stem}.png", "transform_matrix": c2w.tolist(), **view}
        frame.update(passes.save(out_dir, stem))
        frames.append(frame)
    shutil.rmtree(work_dir, ignore_errors=True)

    write_json(os.path.join(out_dir, "transforms.json"), transforms_json(args.resolution, frames))
    if args.save_mesh:
        write_ply(os.path.join(out_dir, "mesh.ply"), vertices, faces)
    metadata = {
        "object_id": object_id,
        "source_path": path,
        "source_sha256": sha256_of(path),
        "source_format": os.path.splitext(path)[1].lower().lstrip("."),
        "normalization": {
            "convention": "x_rendered = scale * x_imported + offset; x_imported = import_axes @ x_file "
                          "when import_axes is known",
            "scale": scale,
            "offset": offset.tolist(),
            "import_axes": axes,
            "mode": args.normalisation,
            **({"radius": SPHERE_RADIUS} if args.normalisation == "sphere" else {"box_size": BOX_SIZE}),
            "imported_bbox_min": low.tolist(), "imported_bbox_max": high.tolist(),
            "bbox_min": norm_low.tolist(), "bbox_max": norm_high.tolist(),
        },
        "engine": engine,
        "engine_requested": args.engine,
        "device": device,
        "resolution": args.resolution,
        "samples": args.samples,
        "num_renders": args.num_renders,
        "camera": {
            "lens_mm": LENS_MM, "sensor_width_mm": SENSOR_WIDTH_MM,
            "fov_x_deg": math.degrees(2.0 * math.atan(SENSOR_WIDTH_MM / (2.0 * LENS_MM))),
            "distance_range": [args.camera_dist_min, args.camera_dist_max],
            "elevation_range": [args.elevation_min, args.elevation_max],
            "only_northern_hemisphere": bool(args.only_northern_hemisphere),
            "transforms_json": "c2w, OpenGL/Blender camera axes", "npy": "3x4 w2c, Blender camera axes (zero123)",
        },
        "lighting": lighting,
        "materials_defaulted": defaulted,
        "passes": {"depth": bool(args.save_depth), "normal": bool(args.save_normal),
                   "mesh": "mesh.ply" if args.save_mesh else None},
        "mesh_triangles": int(len(faces)),
        "seed": args.seed,
        "blender_version": bpy.app.version_string,
        "script_version": SCRIPT_VERSION,
        "import_seconds": import_seconds,
        "render_seconds": float(sum(seconds)),
        "seconds_per_view": seconds,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    write_json(os.path.join(out_dir, "metadata.json"), metadata)  # last: marks a complete render
    return out_dir


def main(argv: list[str] | None = None) -> int:
    try:
        args = parse_args(script_argv(sys.argv if argv is None else argv))
        out_dir = render_object(args)
    except RenderError as error:
        sys.stderr.write(f"{ERROR_PREFIX}{error}\n")
        return 1
    except SystemExit as error:  # argparse: usage already printed
        if error.code not in (0, None):
            sys.stderr.write(f"{ERROR_PREFIX}bad command line (see usage above)\n")
        return int(error.code or 0)
    except Exception as error:  # an unexpected Blender/Python error: keep the traceback, end with one line
        traceback.print_exc()
        sys.stderr.write(f"{ERROR_PREFIX}{type(error).__name__}: {first_line(error)}\n")
        return 1
    print(f"dataset_rendering.py: rendered {args.num_renders} views into {out_dir}")
    return 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    if code:
        sys.exit(code)
