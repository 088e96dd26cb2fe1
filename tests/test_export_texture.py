"""UV texture export: rasterisation, baking a known colour field, GLB / OBJ round trips, colour spaces, axes.

The colour field is analytic (colour = (p + 1) / 2, a different ramp per world axis), so every texel
has a known right answer, and any flip of u / v, any axis mix-up or a linear / sRGB confusion moves
colours by tens of levels.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import trimesh
from PIL import Image

from mira.export.gltf import UNSIGNED_SHORT, linear_to_srgb, read_glb, srgb_to_linear
from mira.export.mesh import MIRA_TO_Y_UP, extract_mesh, save_mesh
from mira.export.texture import (
    TextureBakeError,
    dilate_texture,
    rasterize_uv,
    texel_centers_uv,
    texture_mesh,
)
from helpers_inference import AnalyticField, position_color

DUMMY_TRIPLANE = torch.zeros(1, 3, 1, 2, 2)
CENTER = np.array([0.2, -0.1, 0.3])  # off-centre on every axis: any axis swap moves the object
TEXTURE_SIZE = 256


def ball_field() -> AnalyticField:
    """A ball of radius 0.45 around CENTER; colour (p + 1) / 2."""
    center = torch.tensor(CENTER)
    return AnalyticField(lambda p: (100 * (0.5 - (p - center.to(p)).norm(dim=-1))).clamp_min(0), position_color)


@pytest.fixture(scope="module")
def ball() -> tuple[trimesh.Trimesh, trimesh.Trimesh]:
    """(vertex-coloured mesh, textured mesh) of the ball field."""
    field = ball_field()
    mesh = extract_mesh(field, DUMMY_TRIPLANE, resolution=24, density_threshold=5.0)
    textured, baked = texture_mesh(mesh, field, DUMMY_TRIPLANE, TEXTURE_SIZE)
    assert set(baked.seconds) == {"unwrap", "rasterize", "query", "dilate"}
    assert 0.3 < baked.covered.mean() < 0.95  # charts fill the atlas, with padding between them
    return mesh, textured


def sample_bilinear(image: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """Bilinear lookup (the GPU's) of an (H, W, C) texture at uv (N, 2), v up, row 0 at the top."""
    height, width = image.shape[:2]
    x = np.clip(uv[:, 0] * width - 0.5, 0, width - 1)
    y = np.clip((1.0 - uv[:, 1]) * height - 0.5, 0, height - 1)
    x0, y0 = np.floor(x).astype(int), np.floor(y).astype(int)
    x1, y1 = np.minimum(x0 + 1, width - 1), np.minimum(y0 + 1, height - 1)
    fx, fy = (x - x0)[:, None], (y - y0)[:, None]
    image = image.astype(np.float64)
    top = image[y0, x0] * (1 - fx) + image[y0, x1] * fx
    bottom = image[y1, x0] * (1 - fx) + image[y1, x1] * fx
    return top * (1 - fy) + bottom * fy


def random_surface_samples(mesh: trimesh.Trimesh, uv: np.ndarray, count: int, seed: int = 0):
    """(world points (N, 3), their uv (N, 2)) at uniformly random points of the surface."""
    rng = np.random.default_rng(seed)
    faces = mesh.faces[rng.choice(len(mesh.faces), count, p=mesh.area_faces / mesh.area)]  # uniform on the surface
    weights = rng.dirichlet(np.ones(3), count)
    points = np.einsum("nk,nkd->nd", weights, mesh.vertices[faces])
    return points, np.einsum("nk,nkd->nd", weights, uv[faces])


def expected_srgb_255(points: np.ndarray) -> np.ndarray:
    """The analytic field's colour (sRGB-encoded, 0..255) at world points (N, 3)."""
    return np.clip((points + 1.0) / 2.0, 0, 1) * 255.0


# ---------------------------------------------------------------------- rasteriser
def test_rasterize_uv_covers_exactly_the_texels_inside_each_triangle():
    size = 16
    uv = np.array([[0.1, 0.1], [0.9, 0.1], [0.1, 0.9], [0.9, 0.9]])
    faces = np.array([[0, 1, 2], [1, 3, 2]])
    face_index, barycentric = rasterize_uv(uv, faces, size)
    centres = texel_centers_uv(size)
    inside_square = (centres[..., 0] > 0.1) & (centres[..., 0] < 0.9) & (centres[..., 1] > 0.1) & (centres[..., 1] < 0.9)
    np.testing.assert_array_equal(face_index >= 0, inside_square)
    lower_left = centres[..., 0] + centres[..., 1] < 1.0
    assert (face_index[inside_square & lower_left] == 0).all() and (face_index[inside_square & ~lower_left] == 1).all()
    # The barycentric weights reproduce each covered texel centre.
    covered = face_index >= 0
    rebuilt = np.einsum("tk,tkd->td", barycentric[covered], uv[faces[face_index[covered]]])
    np.testing.assert_allclose(rebuilt, centres[covered], atol=1e-12)
    np.testing.assert_allclose(barycentric[covered].sum(-1), 1.0)


def test_rasterize_uv_chunks_give_the_same_result(monkeypatch):
    rng = np.random.default_rng(1)
    uv, faces = rng.random((60, 2)), rng.integers(0, 60, (40, 3))
    whole = rasterize_uv(uv, faces, 32)
    import mira.export.texture as texture

    monkeypatch.setattr(texture, "RASTER_CANDIDATES_PER_CHUNK", 50)
    chunked = rasterize_uv(uv, faces, 32)
    covered = whole[0] >= 0
    np.testing.assert_array_equal(covered, chunked[0] >= 0)
    # Where triangles overlap, the later face wins in both; same faces, same weights.
    np.testing.assert_array_equal(whole[0], chunked[0])
    np.testing.assert_allclose(whole[1], chunked[1])


def test_dilation_fills_every_empty_texel_with_its_nearest_covered_neighbour():
    image = np.zeros((5, 5, 3), dtype=np.uint8)
    covered = np.zeros((5, 5), dtype=bool)
    image[1, 1], covered[1, 1] = (200, 10, 10), True
    image[3, 4], covered[3, 4] = (10, 200, 10), True
    filled = dilate_texture(image, covered)
    assert tuple(filled[0, 0]) == (200, 10, 10) and tuple(filled[4, 4]) == (10, 200, 10)
    assert tuple(filled[1, 1]) == (200, 10, 10)  # covered texels keep their value
    with pytest.raises(TextureBakeError, match="no texel"):
        dilate_texture(image, np.zeros((5, 5), dtype=bool))


# ---------------------------------------------------------------------- baking
def test_baked_texels_hold_the_colour_field_on_the_surface(ball):
    """Random points on the surface: the texture read (bilinear, as a GPU does) at their uv is the
    field's colour at their 3D position, to within a level or two (seams included)."""
    _, textured = ball
    image = np.asarray(textured.visual.material.baseColorTexture.convert("RGB"))
    assert image.shape == (TEXTURE_SIZE, TEXTURE_SIZE, 3)
    points, uv = random_surface_samples(textured, np.asarray(textured.visual.uv), 4000)
    error = np.abs(sample_bilinear(image, uv) - expected_srgb_255(points))
    assert np.percentile(error, 99) < 2.0 and error.max() < 6.0, (np.percentile(error, 99), error.max())
    # A v flip or a u/v swap would read another chart: the check above is not blind to it.
    flipped = np.abs(sample_bilinear(image, uv[:, ::-1]) - expected_srgb_255(points))
    assert flipped.mean() > 10


def test_textured_mesh_keeps_the_surface_and_its_normals(ball):
    mesh, textured = ball
    assert textured.area == pytest.approx(mesh.area, rel=1e-9)
    distances = np.linalg.norm(textured.vertices - CENTER, axis=1)
    assert np.abs(distances - 0.45).max() < 0.02
    # Seam vertices are duplicated, but carry the smooth normal of the vertex they came from.
    outward = (textured.vertices - CENTER) / distances[:, None]
    assert np.einsum("ij,ij->i", textured.vertex_normals, outward).min() > 0.95


# ---------------------------------------------------------------------- files
def test_textured_glb_round_trip_through_trimesh(ball, tmp_path):
    """UVs, texture size, colour space (sRGB texture, dielectric material) and orientation (+Y up)."""
    _, textured = ball
    path = save_mesh(textured, tmp_path / "mesh.glb")
    (loaded,) = trimesh.load(path, process=False).geometry.values()
    assert len(loaded.faces) == len(textured.faces) and len(loaded.visual.uv) == len(loaded.vertices)
    material = loaded.visual.material
    assert material.baseColorTexture.size == (TEXTURE_SIZE, TEXTURE_SIZE)
    assert material.metallicFactor == 0.0 and material.roughnessFactor == 1.0
    # Orientation: MIRA (x, y, z) -> glTF (y, z, x): the ball centred at MIRA z = 0.3 sits at glTF y = 0.3.
    centre = loaded.vertices.mean(axis=0)
    np.testing.assert_allclose(centre, [CENTER[1], CENTER[2], CENTER[0]], atol=0.02)
    # Colour: the texture read at the loaded UVs (trimesh flips glTF's v back) is the field's sRGB colour
    # at the loaded point taken back to MIRA's world.
    world = trimesh.transform_points(loaded.vertices, np.linalg.inv(MIRA_TO_Y_UP))
    image = np.asarray(material.baseColorTexture.convert("RGB"))
    error = np.abs(sample_bilinear(image, np.asarray(loaded.visual.uv)) - expected_srgb_255(world))
    assert np.percentile(error, 99) < 2.0 and error.max() < 10.0  # every vertex, slivers included
    # In the file: the texture is the material's baseColorTexture, PNG, and no COLOR_0 tints it.
    content = read_glb(path)
    primitive = content.tree["meshes"][0]["primitives"][0]
    assert set(primitive["attributes"]) == {"POSITION", "NORMAL", "TEXCOORD_0"}
    pbr = content.tree["materials"][0]["pbrMetallicRoughness"]
    assert pbr["baseColorTexture"]["index"] == 0 and content.tree["images"][0]["mimeType"] == "image/png"
    assert content.image().startswith(b"\x89PNG")
    normals = content.accessor(primitive["attributes"]["NORMAL"])
    np.testing.assert_allclose(np.linalg.norm(normals, axis=1), 1.0, atol=1e-5)
    assert content.accessor(primitive["attributes"]["POSITION"]).min(0).tolist() == pytest.approx(
        content.tree["accessors"][primitive["attributes"]["POSITION"]]["min"])


def test_vertex_colour_glb_is_linear(ball, tmp_path):
    """glTF vertex colours are linear: COLOR_0 holds srgb_to_linear of the field's sRGB colour, 16-bit."""
    mesh, _ = ball
    content = read_glb(save_mesh(mesh, tmp_path / "mesh.glb"))
    primitive = content.tree["meshes"][0]["primitives"][0]
    accessor = content.tree["accessors"][primitive["attributes"]["COLOR_0"]]
    assert accessor["componentType"] == UNSIGNED_SHORT and accessor["normalized"] and accessor["type"] == "VEC4"
    linear = content.accessor(primitive["attributes"]["COLOR_0"])[:, :3] / 65535.0
    srgb = mesh.visual.vertex_colors[:, :3] / 255.0
    np.testing.assert_allclose(linear, srgb_to_linear(srgb), atol=1 / 65535)
    assert (linear < srgb - 0.05).any()  # mid tones really are darker in linear: not sRGB bytes
    material = content.tree["materials"][primitive["material"]]["pbrMetallicRoughness"]
    assert material["metallicFactor"] == 0.0  # glTF's default material would be fully metallic


def test_srgb_linear_conversions_are_inverse_and_match_the_standard():
    values = np.linspace(0, 1, 1001)
    np.testing.assert_allclose(linear_to_srgb(srgb_to_linear(values)), values, atol=1e-12)
    assert srgb_to_linear(np.array([0.5]))[0] == pytest.approx(0.21404, abs=1e-5)
    assert srgb_to_linear(np.array([0.04]))[0] == pytest.approx(0.04 / 12.92)


def test_textured_obj_writes_mtl_and_png_beside_it(ball, tmp_path):
    _, textured = ball
    path = save_mesh(textured, tmp_path / "model.obj")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.mtl", "model.obj", "model.png"]
    mtl = (tmp_path / "model.mtl").read_text()
    assert "map_Kd model.png" in mtl and "Kd 1 1 1" in mtl  # Kd multiplies the texture in many viewers
    assert "mtllib model.mtl" in path.read_text()
    loaded = trimesh.load(path, process=False)
    assert Image.open(tmp_path / "model.png").size == (TEXTURE_SIZE, TEXTURE_SIZE)
    world = trimesh.transform_points(loaded.vertices, np.linalg.inv(MIRA_TO_Y_UP))
    np.testing.assert_allclose(world.mean(axis=0), CENTER, atol=0.02)  # +Y up like the GLB
    image = np.asarray(loaded.visual.material.image.convert("RGB"))
    error = np.abs(sample_bilinear(image, np.asarray(loaded.visual.uv)) - expected_srgb_255(world))
    assert np.percentile(error, 99) < 2.0


def test_textured_ply_gets_the_texture_as_vertex_colours(ball, tmp_path):
    _, textured = ball
    loaded = trimesh.load(save_mesh(textured, tmp_path / "mesh.ply"), process=False)
    np.testing.assert_allclose(loaded.vertices.mean(axis=0), CENTER, atol=0.02)  # PLY: MIRA's world
    error = np.abs(loaded.visual.vertex_colors[:, :3].astype(float) - expected_srgb_255(loaded.vertices))
    assert np.percentile(error, 99) < 3.0


def test_empty_mesh_cannot_be_unwrapped():
    from mira.export.texture import unwrap_uv

    with pytest.raises(TextureBakeError, match="empty"):
        unwrap_uv(np.zeros((0, 3)), np.zeros((0, 3), dtype=np.int64))


def test_glb_normals_are_unit_even_for_degenerate_and_unused_vertices(tmp_path):
    """glTF requires unit NORMALs (the Khronos validator flags zero ones, which remeshed / sliver
    vertices have): such vertices get a unit normal, the others keep theirs."""
    mesh = trimesh.creation.icosphere(subdivisions=1)
    vertices = np.concatenate([mesh.vertices, [[0.0, 0.0, 2.0], [5.0, 5.0, 5.0]]])  # one sliver apex, one unused
    n = len(mesh.vertices)
    faces = np.concatenate([mesh.faces, [[n, n, n]]])  # a zero-area face
    broken = trimesh.Trimesh(vertices, faces, process=False)
    broken.visual.vertex_colors = np.full((len(vertices), 4), 200, dtype=np.uint8)
    content = read_glb(save_mesh(broken, tmp_path / "mesh.glb"))
    normals = content.accessor(content.tree["meshes"][0]["primitives"][0]["attributes"]["NORMAL"])
    np.testing.assert_allclose(np.linalg.norm(normals, axis=1), 1.0, atol=1e-6)
    expected = mesh.vertex_normals @ MIRA_TO_Y_UP[:3, :3].T
    np.testing.assert_allclose(normals[:n], expected, atol=1e-6)
