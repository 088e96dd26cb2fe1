"""Marching cubes in PyTorch against PyMCubes, its case table, coarse-to-fine density grids, cavity filling."""

from __future__ import annotations

import math

import mcubes
import numpy as np
import pytest
import torch
from scipy.ndimage import binary_fill_holes
from scipy.spatial import cKDTree

from mira.export.mesh import enclosed_cavities, enclosed_cavities_torch, extract_mesh, marching_cubes_world
from mira.rendering.density_grid import coarse_to_fine_density_grid, dense_density_grid
from mira.rendering.marching_cubes import edge_offsets, marching_cubes
from mira.rendering.marching_cubes_table import TRIANGLES
from helpers_inference import AnalyticField, position_color, sphere_renderer

BOX = (torch.tensor([-1.0, -1.0, -1.0]), torch.tensor([1.0, 1.0, 1.0]))


# ---------------------------------------------------------------------- helpers
def corner_of(n: int) -> tuple[int, int, int]:
    """Corner ``n = dx + 2 dy + 4 dz`` of a cell -> (dx, dy, dz)."""
    return n & 1, n >> 1 & 1, n >> 2 & 1


def edge_ends(edge: int) -> tuple[int, int]:
    """The corner numbers of a cell edge's two ends."""
    lower = tuple(edge_offsets()[edge].tolist())
    upper = list(lower)
    upper[edge // 4] = 1
    number = lambda c: c[0] + 2 * c[1] + 4 * c[2]  # noqa: E731
    return number(lower), number(upper)


def oriented_triangles(faces: np.ndarray) -> set[tuple[int, int, int]]:
    """Triangles as vertex triples rotated to start at their smallest index (orientation kept)."""
    start = np.argmin(faces, axis=1)
    rows = np.arange(len(faces))
    rotated = np.stack([faces[rows, (start + k) % 3] for k in range(3)], axis=1)
    return set(map(tuple, rotated.tolist()))


def assert_same_mesh(reference: tuple[np.ndarray, np.ndarray], ours: tuple[np.ndarray, np.ndarray], atol: float = 1e-5):
    """Same vertex count, every reference vertex within ``atol`` of its own vertex of ours (a one-to-one
    match), and the same oriented triangles through that match."""
    (v_ref, f_ref), (v, f) = reference, ours
    assert v.shape == v_ref.shape and f.shape == f_ref.shape
    if len(v_ref) == 0:
        return
    distance, match = cKDTree(v).query(v_ref)
    assert distance.max() <= atol
    assert len(np.unique(match)) == len(match)  # one vertex per crossed edge in both: no duplicates
    assert oriented_triangles(match[f_ref.astype(np.int64)]) == oriented_triangles(f)


def torch_mesh(volume: np.ndarray, level: float, **kwargs) -> tuple[np.ndarray, np.ndarray]:
    vertices, faces = marching_cubes(torch.from_numpy(volume), level, **kwargs)
    return vertices.numpy(), faces.numpy()


def axis_grid(shape: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    axes = [np.linspace(-1.0, 1.0, n) for n in shape]
    return np.meshgrid(*axes, indexing="ij")


def sphere_grid(shape=(41, 37, 45), radius=0.6) -> np.ndarray:
    x, y, z = axis_grid(shape)
    return (radius - np.sqrt((x - 0.1) ** 2 + y**2 + (z + 0.05) ** 2)).astype(np.float32)


def torus_grid(shape=(48, 48, 40)) -> np.ndarray:
    x, y, z = axis_grid(shape)
    return 0.25 - np.sqrt((np.sqrt(x**2 + y**2) - 0.55) ** 2 + z**2)


# ---------------------------------------------------------------------- the case table
def test_table_is_the_pymcubes_table():
    """Regenerate the table as its docstring says: mesh each 2x2x2 case with PyMCubes, name the edges."""
    for case in range(256):
        cube = np.zeros((2, 2, 2))
        for n in range(8):
            if case >> n & 1:
                cube[corner_of(n)] = 1.0
        vertices, faces = mcubes.marching_cubes(cube, 0.5)
        edges = []
        for point in vertices[faces.reshape(-1)]:
            (axis,) = np.flatnonzero(np.isclose(point, 0.5))
            others = [int(round(point[d])) for d in range(3) if d != axis]
            edges.append(4 * axis + others[0] + 2 * others[1])
        assert tuple(edges) == TRIANGLES[case], case


def test_table_closes_each_case_without_pymcubes():
    """Each case uses exactly its crossed edges; inside the cube every triangle side is shared by two
    triangles in opposite directions; the sides left open lie on the cube's faces."""
    faces_of_edge = [{d * 2 + bit for d in range(3) for bit in (0, 1) if edge_offsets()[e][d] == bit and d != e // 4}
                     for e in range(12)]  # cube face (axis, side) that contain each edge
    for case, row in enumerate(TRIANGLES):
        above = [case >> n & 1 for n in range(8)]
        crossed = {e for e in range(12) if above[edge_ends(e)[0]] != above[edge_ends(e)[1]]}
        assert set(row) == crossed, case
        sides: dict[tuple[int, int], int] = {}
        for a, b, c in zip(row[0::3], row[1::3], row[2::3]):
            assert len({a, b, c}) == 3, case
            for side in ((a, b), (b, c), (c, a)):
                sides[side] = sides.get(side, 0) + 1
        for (a, b), count in sides.items():
            assert count == 1, case  # never the same directed side twice
            if (b, a) not in sides:  # an open side: on a cube face
                assert faces_of_edge[a] & faces_of_edge[b], case


def test_single_corner_normal_points_away_from_the_inside():
    vertices, faces = marching_cubes(torch.tensor([[[1.0, 0.0], [0.0, 0.0]], [[0.0, 0.0], [0.0, 0.0]]]), 0.5)
    a, b, c = vertices[faces[0]]
    assert torch.dot(torch.linalg.cross(b - a, c - a), a + b + c).item() > 0  # the inside corner is the origin


# ---------------------------------------------------------------------- against PyMCubes
@pytest.mark.parametrize("name", ["sphere", "torus", "sphere_float64", "plane"])
def test_analytic_fields_match_pymcubes(name):
    if name == "plane":
        x, _, _ = axis_grid((20, 13, 17))
        volume, level = (x - 0.123).astype(np.float32), 0.0
    else:
        volume = {"sphere": sphere_grid(), "torus": torus_grid(), "sphere_float64": sphere_grid().astype(np.float64)}[name]
        level = 0.0
    ours = torch_mesh(volume, level)
    assert_same_mesh(mcubes.marching_cubes(volume, level), ours)
    assert len(ours[1]) > 100


@pytest.mark.parametrize("seed", range(6))
def test_noise_grids_match_pymcubes(seed):
    """Random noise: every case, ambiguous faces included, and non-cubic grids down to 2 points a side."""
    rng = np.random.default_rng(seed)
    shape = tuple(int(n) for n in rng.integers(2, 23, size=3))
    volume = rng.standard_normal(shape)
    level = float(rng.uniform(-0.5, 0.5))
    reference = mcubes.marching_cubes(volume, level)
    assert_same_mesh(reference, torch_mesh(volume, level))
    assert_same_mesh(reference, torch_mesh(volume, level, block=3, blocks_per_chunk=2))
    assert_same_mesh(reference, torch_mesh(volume, level, block=1))
    single = volume.astype(np.float32)
    assert_same_mesh(mcubes.marching_cubes(single, level), torch_mesh(single, level))


def test_every_case_occurs_and_matches():
    rng = np.random.default_rng(7)
    volume = rng.standard_normal((40, 40, 40))
    above = volume > 0
    bits = sum(above[dx : dx + 39, dy : dy + 39, dz : dz + 39].astype(int) << n
               for n, (dx, dy, dz) in enumerate(map(corner_of, range(8))))
    cases = set(np.unique(bits).tolist())
    assert cases == set(range(256))
    assert_same_mesh(mcubes.marching_cubes(volume, 0.0), torch_mesh(volume, 0.0))


def test_values_exactly_at_the_level():
    """Corners equal to the level count as below (as in PyMCubes); vertices then sit on grid points,
    several crossed edges share a position but each keeps its own vertex."""
    rng = np.random.default_rng(3)
    volume = rng.integers(0, 3, size=(15, 16, 17)).astype(np.float32)  # many corners exactly at level 1
    reference = mcubes.marching_cubes(volume, 1.0)
    ours = torch_mesh(volume, 1.0)
    assert len(ours[0]) == len(reference[0]) and len(ours[1]) == len(reference[1])
    # positions coincide, so compare the triangles as (oriented) position triples
    def triangles(vertices, faces):
        corners = [tuple(map(tuple, t)) for t in np.round(vertices[faces], 9).tolist()]
        return sorted(min(t[k:] + t[:k] for k in range(3)) for t in corners)

    assert triangles(*reference) == triangles(*ours)
    assert np.isclose(ours[0], np.round(ours[0])).all(axis=1).sum() > 10  # vertices on grid points


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_level_is_a_float32_as_in_pymcubes(dtype):
    """PyMCubes takes the level as a C float: a value of float32(0.1) (or 0.1 + 1e-9) is not above the
    level 0.1, a value of 1 + 1e-9 is above the level 1."""
    for value, level, triangles in [(np.float32(0.1), 0.1, 0), (0.1 + 1e-9, 0.1, 0), (1.0 + 1e-7, 1.0, 8), (0.1 + 1e-7, 0.1, 8)]:
        volume = np.zeros((3, 3, 3), dtype=dtype)
        volume[1, 1, 1] = value
        reference = mcubes.marching_cubes(volume, level)
        assert len(reference[1]) == triangles * (dtype == np.float64 or float(volume[1, 1, 1]) > float(np.float32(level)))
        assert_same_mesh(reference, torch_mesh(volume, level))


def test_empty_and_full_grids_have_no_triangles():
    for volume in (np.zeros((5, 6, 7)), np.ones((5, 6, 7))):
        vertices, faces = marching_cubes(torch.from_numpy(volume), 0.5)
        assert vertices.shape == (0, 3) and faces.shape == (0, 3)
    with pytest.raises(ValueError, match="every side >= 2"):
        marching_cubes(torch.zeros(1, 4, 4), 0.5)


def test_marching_cubes_world_methods_agree():
    density = np.clip(100 * sphere_grid((30, 30, 30), 0.5), 0, None).astype(np.float32)
    box_min, box_max = np.array([-1.0, -0.8, -0.6]), np.array([1.0, 1.2, 0.9])
    reference = marching_cubes_world(density, 10.0, box_min, box_max, method="pymcubes")
    ours = marching_cubes_world(torch.from_numpy(density), 10.0, box_min, box_max, method="torch")
    assert_same_mesh(reference, ours, atol=1e-9)
    with pytest.raises(ValueError, match="pymcubes"):
        marching_cubes_world(density, 10.0, box_min, box_max, method="skimage")


def test_extract_mesh_methods_agree_with_colours():
    field = AnalyticField(lambda p: (100 * (0.5 - (p - torch.tensor([0.1, 0.0, 0.2], dtype=p.dtype)).norm(dim=-1))).clamp_min(0),
                          position_color)
    a = extract_mesh(field, torch.zeros(1, 3, 1, 2, 2), resolution=36, density_threshold=10.0, marching_cubes="pymcubes")
    b = extract_mesh(field, torch.zeros(1, 3, 1, 2, 2), resolution=36, density_threshold=10.0, marching_cubes="torch")
    assert_same_mesh((np.asarray(a.vertices), np.asarray(a.faces)), (np.asarray(b.vertices), np.asarray(b.faces)), 1e-9)
    _, match = cKDTree(b.vertices).query(a.vertices)
    np.testing.assert_array_equal(a.visual.vertex_colors, b.visual.vertex_colors[match])
    assert b.is_watertight and b.volume == pytest.approx(4 / 3 * math.pi * 0.4**3, rel=0.02)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_and_cpu_agree():
    """The same vertices and faces (same order) on CUDA as on the CPU, and PyMCubes' triangles."""
    rng = np.random.default_rng(11)
    for volume, level in [(torus_grid(), 0.0), (rng.standard_normal((33, 29, 31)), 0.2)]:
        cpu = marching_cubes(torch.from_numpy(volume), level)
        cuda = marching_cubes(torch.from_numpy(volume).cuda(), level)
        assert torch.equal(cpu[1], cuda[1].cpu())
        torch.testing.assert_close(cpu[0], cuda[0].cpu(), rtol=0, atol=1e-12)
        assert_same_mesh(mcubes.marching_cubes(volume, level), (cuda[0].cpu().numpy(), cuda[1].cpu().numpy()))
    dense = dense_density_grid(torus_density, 80, *BOX)
    sparse = coarse_to_fine_density_grid(torus_density, 80, *(b.cuda() for b in BOX), 5.0)
    assert torch.equal(marching_cubes(dense, 5.0)[1], marching_cubes(sparse.density, 5.0)[1].cpu())


# ---------------------------------------------------------------------- coarse-to-fine density
def torus_density(points: torch.Tensor) -> torch.Tensor:
    ring = torch.stack([points[:, :2].norm(dim=-1) - 0.5, points[:, 2]], dim=-1)
    return (50 * (0.2 - ring.norm(dim=-1))).clamp_min(0)


def two_balls_density(points: torch.Tensor) -> torch.Tensor:
    big = (100 * (0.45 - (points - torch.tensor([-0.35, 0.1, 0.0])).norm(dim=-1))).clamp_min(0)
    small = (100 * (0.2 - (points - torch.tensor([0.6, -0.4, 0.3])).norm(dim=-1))).clamp_min(0)
    return big + small


@pytest.mark.parametrize("resolution, block, margin", [(64, 8, 1), (101, 8, 0), (77, 5, 1), (48, 6, 0)])
@pytest.mark.parametrize("field", [torus_density, two_balls_density])
def test_coarse_to_fine_gives_the_dense_mesh(field, resolution, block, margin):
    dense = dense_density_grid(field, resolution, *BOX, chunk_size=50_000)
    sparse = coarse_to_fine_density_grid(field, resolution, *BOX, 5.0, block=block, margin=margin, chunk_size=50_000)
    assert torch.equal(sparse.density[sparse.evaluated], dense[sparse.evaluated])
    reference, ours = marching_cubes(dense, 5.0), marching_cubes(sparse.density, 5.0)
    assert torch.equal(reference[1], ours[1]) and torch.equal(reference[0], ours[0])
    assert sparse.evaluated_fraction < (0.75 if resolution > 64 else 1.0)
    assert torch.equal(sparse.density > 5.0, dense > 5.0)  # interpolated points on their true side too


def test_coarse_to_fine_follows_the_surface_out_of_the_coarse_blocks():
    """With no margin, blocks the surface reaches beyond those the coarse grid marked are found by the
    fine check (more than one round), and the mesh is still the dense one."""
    centre = torch.tensor([-0.191, -0.132, -0.082])  # found by a search: coarse corners miss part of the surface
    field = lambda p: (60 * (0.3056 - (p - centre).norm(dim=-1))).clamp_min(0)  # noqa: E731
    dense = dense_density_grid(field, 97, *BOX)
    sparse = coarse_to_fine_density_grid(field, 97, *BOX, 5.0, block=12, margin=0)
    assert sparse.rounds > 1
    assert torch.equal(marching_cubes(dense, 5.0)[1], marching_cubes(sparse.density, 5.0)[1])


def test_extract_mesh_coarse_to_fine_on_a_triplane_renderer():
    """A real TriplaneRenderer (weights set so its density is a sphere): the same coloured mesh either way."""
    renderer, triplanes, _ = sphere_renderer((0.1, -0.2, 0.15), 0.5, 10.0)
    full = extract_mesh(renderer, triplanes, resolution=72, density_threshold=10.0, coarse_to_fine=False)
    fast = extract_mesh(renderer, triplanes, resolution=72, density_threshold=10.0)  # coarse-to-fine from 64^3
    assert_same_mesh((np.asarray(full.vertices), np.asarray(full.faces)), (np.asarray(fast.vertices), np.asarray(fast.faces)), 1e-5)
    _, match = cKDTree(fast.vertices).query(full.vertices)
    np.testing.assert_array_equal(full.visual.vertex_colors, fast.visual.vertex_colors[match])


def test_coarse_to_fine_without_a_coarse_surface_evaluates_everything():
    """A ball smaller than the coarse spacing between coarse points: the coarse grid sees no surface, so
    every point is evaluated and the ball is still meshed."""
    field = lambda p: (100 * (0.05 - (p - torch.tensor([0.11, 0.13, -0.12])).norm(dim=-1))).clamp_min(0)  # noqa: E731
    sparse = coarse_to_fine_density_grid(field, 65, *BOX, 1.0, block=8)
    assert sparse.evaluated.all()
    assert torch.equal(marching_cubes(sparse.density, 1.0)[1], marching_cubes(dense_density_grid(field, 65, *BOX), 1.0)[1])
    assert len(marching_cubes(sparse.density, 1.0)[1]) > 0


def test_coarse_to_fine_evaluates_fewer_points():
    field = AnalyticField(lambda p: two_balls_density(p.float()).double(), position_color)
    extract_mesh(field, torch.zeros(1, 3, 1, 2, 2), resolution=96, density_threshold=5.0)
    assert field.num_queried < 0.4 * 96**3


# ---------------------------------------------------------------------- cavities
def test_enclosed_cavities_match_binary_fill_holes():
    rng = np.random.default_rng(0)
    for _ in range(40):
        shape = tuple(int(n) for n in rng.integers(3, 18, size=3))
        occupied = rng.random(shape) < rng.uniform(0.3, 0.85)
        expected = binary_fill_holes(occupied) & ~occupied
        found = enclosed_cavities(occupied)
        np.testing.assert_array_equal(np.zeros(shape, dtype=bool) if found is None else found, expected)
    x, y, z = axis_grid((40, 40, 40))
    radius = np.sqrt(x**2 + y**2 + z**2)
    shell = (radius > 0.3) & (radius < 0.5)
    np.testing.assert_array_equal(enclosed_cavities(shell), radius <= 0.3)
    assert enclosed_cavities(np.zeros((5, 5, 5), dtype=bool)) is None


@pytest.mark.parametrize("check_every", [1, 3, 16])
def test_torch_flood_fill_finds_the_cavities_of_scipy_labelling(check_every):
    """The device flood fill (used for CUDA grids) finds exactly binary_fill_holes' cavities: random grids,
    a hollow ball, a hollow ball with a tunnel to the outside (no cavity), a winding channel."""
    rng = np.random.default_rng(1)
    grids = [rng.random(tuple(int(n) for n in rng.integers(3, 18, size=3))) < rng.uniform(0.3, 0.85)
             for _ in range(30)]
    x, y, z = axis_grid((40, 40, 40))
    radius = np.sqrt(x**2 + y**2 + z**2)
    shell = (radius > 0.3) & (radius < 0.5)
    tunnel = shell.copy()
    tunnel[20, 20, :] = False  # a one-voxel channel from the hollow to the outside
    spiral = np.ones((9, 30, 9), dtype=bool)
    spiral[4, 1:29, 4] = False  # a long enclosed corridor ...
    spiral[4, 28, 4:8] = False  # ... with a bend (still enclosed: the slab's faces are occupied)
    for occupied in grids + [shell, tunnel, spiral, np.zeros((5, 5, 5), dtype=bool)]:
        expected = binary_fill_holes(occupied) & ~occupied
        found = enclosed_cavities_torch(torch.from_numpy(occupied), check_every=check_every)
        np.testing.assert_array_equal(np.zeros(occupied.shape, dtype=bool) if found is None else found.numpy(),
                                      expected)


@pytest.mark.parametrize("coarsest", [2, 3, 32])
def test_coarse_blocks_seed_the_flood_fill_without_changing_it(coarsest):
    """The fill of wholly empty 2 x 2 x 2 blocks (recursively, down to ``coarsest``) seeds the voxel fill: the
    cavities stay exactly scipy's, on odd and even sides, narrow tunnels and cavities inside cavities."""
    from mira.export.mesh import exterior_empty_space, upsample_blocks, wholly_empty_blocks

    rng = np.random.default_rng(2)
    x, y, z = axis_grid((67, 64, 65))
    radius = np.sqrt(x**2 + y**2 + z**2)
    nested = ((radius > 0.3) & (radius < 0.5)) | ((radius > 0.1) & (radius < 0.2))  # a ball in a hollow ball
    tunnel = nested.copy()
    tunnel[33, 32, :] = False  # one voxel wide, from outside through both shells
    blobs = binary_fill_holes(rng.random((70, 66, 64)) < 0.5) ^ (rng.random((70, 66, 64)) < 0.2)
    cup = ((radius > 0.5) & (radius < 0.7) & (z < 0.4)) | ((np.abs(x) < 0.8) & (np.abs(y) < 0.8) & (np.abs(z) < 0.03))
    for occupied in (nested, tunnel, blobs, cup):
        expected = binary_fill_holes(occupied) & ~occupied
        found = enclosed_cavities_torch(torch.from_numpy(occupied), coarsest=coarsest)
        np.testing.assert_array_equal(np.zeros(occupied.shape, dtype=bool) if found is None else found.numpy(),
                                      expected)
    empty = torch.from_numpy(~blobs[:7, :6, :5])
    blocks = wholly_empty_blocks(empty)
    assert blocks.shape == (4, 3, 3)
    assert bool(blocks[3, 2, 2]) == bool(empty[6:, 4:, 4:].all())  # odd sides: the voxels inside the grid
    assert bool(blocks[0, 0, 0]) == bool(empty[:2, :2, :2].all())
    assert upsample_blocks(blocks, empty.shape).shape == empty.shape
    assert bool((upsample_blocks(blocks, empty.shape) <= empty).all())  # a wholly empty block's voxels are empty
    reach = exterior_empty_space(empty, coarsest=1)
    assert bool((reach <= empty).all())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_torch_flood_fill_on_cuda_equals_scipy_labelling():
    x, y, z = axis_grid((96, 96, 96))
    radius = np.sqrt(x**2 + y**2 + z**2)
    occupied = ((radius > 0.3) & (radius < 0.5)) | (np.abs(x - 0.6) < 0.05)
    found = enclosed_cavities_torch(torch.from_numpy(occupied).cuda())
    np.testing.assert_array_equal(found.cpu().numpy(), binary_fill_holes(occupied) & ~occupied)


def test_coarse_seeding_leaves_the_voxel_fill_a_few_steps(monkeypatch):
    """The point of the coarse fill: on a cup open on an odd-sized face of its crop (the case the block
    padding once cut off), the voxel-level fill reaches its fixed point at its first check (8 steps) instead
    of after its ~90-step path (counted by the checks' calls, not timed)."""
    x, y, z = axis_grid((128, 128, 128))
    radius = np.sqrt(x**2 + y**2 + z**2)
    cup = torch.from_numpy(((radius > 0.5) & (radius < 0.7) & (z < 0.4)) |
                           ((np.abs(x) < 0.8) & (np.abs(y) < 0.8) & (np.abs(z) < 0.03)))
    checks = []
    equal = torch.equal
    monkeypatch.setattr(torch, "equal", lambda a, b: (checks.append(tuple(a.shape)), equal(a, b))[1])
    plain = enclosed_cavities_torch(cup, coarsest=10**6)
    plain_checks, checks[:] = len(checks), []
    seeded = enclosed_cavities_torch(cup, coarsest=16)
    fine_shape = max(checks, key=lambda shape: np.prod(shape))
    assert torch.equal(plain, seeded) and plain.any()
    assert plain_checks >= 4 and checks.count(fine_shape) == 1


def test_world_mesh_from_torch_keeps_numpys_transform_and_winds_outward(monkeypatch):
    """marching_cubes_world(method="torch") does the grid-to-world transform, clipping and winding check on the
    grid's device: the same float64 vertices as numpy's grid_index_to_world + clip, outward faces, and a mesh
    that came out inward-wound is flipped."""
    from mira.export import mesh as mesh_module
    from mira.export.mesh import grid_index_to_world

    x, y, z = axis_grid((33, 33, 33))
    grid = torch.from_numpy(np.clip(1.0 - (x**2 + 1.5 * y**2 + z**2) / 0.5, 0.0, None) * 5.0)
    box_min, box_max = np.array([-0.5, -1.0, -2.0]), np.array([1.5, 1.0, 0.0])
    raw_vertices, raw_faces = marching_cubes(torch.nn.functional.pad(grid, (1,) * 6), 2.0)
    expected = np.clip(grid_index_to_world(raw_vertices.numpy() - 1.0, 33, box_min, box_max), box_min, box_max)
    vertices, faces = marching_cubes_world(grid, 2.0, box_min, box_max, method="torch")
    np.testing.assert_array_equal(vertices, expected)
    np.testing.assert_array_equal(faces, raw_faces.numpy())
    assert mesh_module._signed_volume(vertices, faces) > 0

    inward = lambda volume, level: (lambda v, f: (v, f.flip(1)))(*marching_cubes(volume, level))  # noqa: E731
    monkeypatch.setattr(mesh_module, "torch_marching_cubes", inward)
    _, flipped_back = marching_cubes_world(grid, 2.0, box_min, box_max, method="torch")
    np.testing.assert_array_equal(flipped_back, raw_faces.numpy())
