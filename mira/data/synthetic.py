"""Procedural objects for an offline dataset: compositions of primitives with random colours
and textures, made with trimesh and written as .glb (``load_input_data.py --synthetic N``).

Each object is 2-5 primitives (box, sphere, cylinder, cone, capsule, torus), randomly sized,
rotated and attached to each other; each part has either a plain PBR colour or a procedural
texture (checker, stripes, dots or blotches in two random colours) mapped by box projection.
Object ``i`` of seed ``s`` is always the same.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import trimesh
from PIL import Image

from mira.atomic import write_bytes_atomic

PRIMITIVES = ("box", "sphere", "cylinder", "cone", "capsule", "torus")
PATTERNS = ("checker", "stripes", "dots", "blotches")
TEXTURE_SIZE = 128
MIN_PARTS, MAX_PARTS = 2, 5
TEXTURED_PROBABILITY = 0.5


def make_primitive(kind: str, rng: np.random.Generator) -> trimesh.Trimesh:
    """One primitive of about unit size (0.3 ... 1.0 across), centred at its origin."""
    size = rng.uniform(0.3, 1.0, size=3)
    if kind == "box":
        return trimesh.creation.box(extents=size)
    if kind == "sphere":
        return trimesh.creation.icosphere(subdivisions=3, radius=size[0] / 2)
    if kind == "cylinder":
        return trimesh.creation.cylinder(radius=size[0] / 2, height=size[1], sections=32)
    if kind == "cone":
        return trimesh.creation.cone(radius=size[0] / 2, height=size[1], sections=32)
    if kind == "capsule":
        return trimesh.creation.capsule(height=size[1], radius=size[0] / 3, count=[16, 16])
    if kind == "torus":
        major = size[0] / 2
        return trimesh.creation.torus(major_radius=major, minor_radius=major * rng.uniform(0.2, 0.45),
                                      major_sections=32, minor_sections=16)
    raise ValueError(f"unknown primitive '{kind}'; choose from {PRIMITIVES}")


def random_colour(rng: np.random.Generator) -> np.ndarray:
    """An RGB colour (3,) uint8, saturated enough to tell parts apart."""
    hue = rng.uniform(0.0, 1.0)
    saturation, value = rng.uniform(0.35, 0.95), rng.uniform(0.45, 1.0)
    rgb = np.array(_hsv_to_rgb(hue, saturation, value))
    return np.round(rgb * 255).astype(np.uint8)


def _hsv_to_rgb(h: float, s: float, v: float) -> tuple[float, float, float]:
    i = int(h * 6) % 6
    f = h * 6 - int(h * 6)
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    return [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i]


def pattern_texture(pattern: str, rng: np.random.Generator, size: int = TEXTURE_SIZE) -> Image.Image:
    """A (size, size) RGB texture of two random colours."""
    a, b = random_colour(rng), random_colour(rng)
    y, x = np.mgrid[0:size, 0:size]
    period = int(rng.integers(8, 33))
    if pattern == "checker":
        mask = ((x // period) + (y // period)) % 2 == 0
    elif pattern == "stripes":
        mask = ((x + y * rng.integers(0, 2)) // period) % 2 == 0
    elif pattern == "dots":
        cx, cy = (x % period) - period / 2, (y % period) - period / 2
        mask = cx**2 + cy**2 < (period * rng.uniform(0.2, 0.45)) ** 2
    elif pattern == "blotches":
        coarse = rng.uniform(0.0, 1.0, size=(8, 8))
        smooth = np.asarray(Image.fromarray((coarse * 255).astype(np.uint8)).resize((size, size), Image.BICUBIC))
        mask = smooth > 127
    else:
        raise ValueError(f"unknown pattern '{pattern}'; choose from {PATTERNS}")
    return Image.fromarray(np.where(mask[..., None], a, b).astype(np.uint8), mode="RGB")


def box_projection_uv(mesh: trimesh.Trimesh, scale: float) -> trimesh.Trimesh:
    """Per-face planar UVs along each face's dominant normal axis (no seams inside a face)."""
    mesh = mesh.copy()
    mesh.unmerge_vertices()  # every face gets its own 3 vertices
    axis = np.abs(mesh.face_normals).argmax(axis=1)  # (F,)
    planes = np.array([[1, 2], [0, 2], [0, 1]])[np.repeat(axis, 3)]  # (3F, 2) coordinates kept
    vertices = mesh.vertices[mesh.faces.reshape(-1)]
    uv = np.take_along_axis(vertices, planes, axis=1) * scale + 0.5
    order = mesh.faces.reshape(-1)
    uv_per_vertex = np.zeros((len(mesh.vertices), 2))
    uv_per_vertex[order] = uv
    mesh.visual = trimesh.visual.TextureVisuals(uv=uv_per_vertex)
    return mesh


def paint_part(mesh: trimesh.Trimesh, rng: np.random.Generator) -> trimesh.Trimesh:
    """A random plain colour or procedural texture as a glTF PBR material."""
    roughness = float(rng.uniform(0.4, 0.9))
    if rng.uniform() < TEXTURED_PROBABILITY:
        mesh = box_projection_uv(mesh, scale=float(rng.uniform(0.8, 2.0)))
        texture = pattern_texture(PATTERNS[int(rng.integers(len(PATTERNS)))], rng)
        material = trimesh.visual.material.PBRMaterial(
            baseColorTexture=texture, metallicFactor=0.0, roughnessFactor=roughness)
        mesh.visual = trimesh.visual.TextureVisuals(uv=mesh.visual.uv, material=material)
        return mesh
    colour = np.append(random_colour(rng) / 255.0, 1.0)
    material = trimesh.visual.material.PBRMaterial(
        baseColorFactor=colour, metallicFactor=0.0, roughnessFactor=roughness)
    mesh.visual = trimesh.visual.TextureVisuals(material=material)
    return mesh


def make_synthetic_object(seed: int | tuple[int, ...]) -> trimesh.Scene:
    """A composition of 2-5 coloured/textured primitives that touch or overlap."""
    rng = np.random.default_rng(seed)
    scene = trimesh.Scene()
    placed: list[trimesh.Trimesh] = []
    for part in range(int(rng.integers(MIN_PARTS, MAX_PARTS + 1))):
        kind = PRIMITIVES[int(rng.integers(len(PRIMITIVES)))]
        mesh = make_primitive(kind, rng)
        mesh.apply_transform(trimesh.transformations.random_rotation_matrix(rng.uniform(size=3)))
        if placed:  # centre the new part on a surface point of an earlier one
            anchor = placed[int(rng.integers(len(placed)))]
            mesh.apply_translation(anchor.vertices[int(rng.integers(len(anchor.vertices)))])
        placed.append(mesh)
        scene.add_geometry(paint_part(mesh, rng), geom_name=f"part_{part}_{kind}")
    return scene


def write_synthetic_objects(count: int, output_dir: str | Path, seed: int = 0) -> list[Path]:
    """Write ``synthetic_00000.glb ...`` into ``output_dir`` (atomically); returns the paths."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(count):
        path = output_dir / f"synthetic_{index:05d}.glb"
        data = make_synthetic_object((seed, index)).export(file_type="glb")
        write_bytes_atomic(data, path)
        paths.append(path)
    return paths
