"""Check a converted OpenLRM or TripoSR checkpoint against the outputs of the reference's own code.

    python -m mira.pretrained.verify --reference DIR [DIR ...] [--json report.json]
    python -m mira.pretrained.verify --reference DIR --write_fixture tests/fixtures/openlrm-tiny

``DIR`` is what ``shared/reference/ref_run.py openlrm`` writes: ``checkpoint/`` (the weights in
the published checkpoint's layout, ``config.json`` + ``model.safetensors``), ``outputs.npz`` (the
reference's input image and camera, encoder tokens, camera embedding, triplanes, rendered views
with their rays, density and colour on a grid) and ``meta.json``. The checkpoint is loaded the
way users load one (:func:`mira.checkpoints.load_model`: detected as OpenLRM, converted strictly)
and MIRA recomputes each output from the reference's inputs, in float32 on the CPU:

* ``encoder_tokens``, ``camera_embedding``, ``decoder_tokens`` (after the decoder's final LayerNorm),
  ``triplanes`` (from the image and source camera);
* ``density_grid``, ``grid_rgb`` (the field at the reference's grid points, MIRA's triplanes);
* ``render_rgb`` / ``render_opacity`` / ``render_depth`` on the reference's rays (depth where the
  opacity exceeds :data:`DEPTH_MIN_OPACITY`), and ``ray_origins`` / ``ray_directions``: the rays
  MIRA's camera code (:mod:`mira.cameras`) makes from the reference's cameras. (Rendered pixels are
  compared on the reference's own rays because EG3D's first and last samples lie exactly on the box
  surface: a last-bit change of a ray moves such a sample in or out of the box, in OpenLRM's code as
  in MIRA's.)
* ``mesh``: marching cubes as OpenLRM's inference extracts a mesh (PyMCubes on the density grid,
  vertices ``index / (G - 1) * 2 - 1``) against MIRA's extraction at the same grid and level.
  On the reference's density grid, MIRA's :func:`mira.export.mesh.marching_cubes_world` must contain
  every reference triangle (vertices within :data:`MESH_VERTEX_TOLERANCE`), its only extra triangles
  being the caps that close the surface on the box faces; end to end,
  :func:`mira.export.mesh.extract_mesh` (MIRA's field, no cavity filling) must put a vertex within
  :data:`MESH_END_TO_END_TOLERANCE` of every reference vertex (the two density grids differ by
  float32 rounding, which moves vertices where the density is nearly flat).

For a TripoSR run (``ref_run.py triposr``; ``checkpoint/`` holds ``config.yaml`` + ``model.ckpt``, loaded
as users load one) the same is checked except what TripoSR has not (camera embedding, opacity and depth
outputs): ``encoder_tokens``, ``decoder_tokens`` (the backbone's output, after its residual),
``triplanes``, ``density_grid`` / ``grid_rgb``, ``render_rgb`` on the reference's rays, the rays MIRA makes
from the reference's cameras, and the mesh (TripoSR's extraction: marching cubes of the density grid
over ``[-radius, radius]^3``, corners included, as OpenLRM's over its box).

A tensor passes when ``max |MIRA - reference| <= tolerance * max(1, max |reference|)``. The exit
status is 0 only when everything passes. ``--write_fixture`` copies a reference run compactly (the
checkpoint, meta.json, compressed outputs) for the CI tests, which need no reference code.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

DEFAULT_TOLERANCE = 1e-4
DEPTH_MIN_OPACITY = 1e-3
MESH_VERTEX_TOLERANCE = 1e-5
MESH_END_TO_END_TOLERANCE = 1e-3
# The level of the mesh check: near this quantile of the reference density grid (a random field has
# no surface at OpenLRM's 3.0, so a level the field crosses is used), in the middle of the widest gap
# between grid values there, so that no corner sits within float32 rounding of the level.
MESH_LEVEL_QUANTILE = 0.75
MESH_LEVEL_WINDOW = 0.02
OUTPUTS_FILE = "outputs.npz"
# The files of the published checkpoint layout per reference model (TripoSR: dino_vit_config.json is
# optional, written by ref_run.py for test-size encoders).
CHECKPOINT_FILES = {"openlrm": ("config.json", "model.safetensors"), "triposr": ("config.yaml", "model.ckpt")}
OPTIONAL_CHECKPOINT_FILES = {"openlrm": (), "triposr": ("dino_vit_config.json",)}
META_FILE = "meta.json"
CHECKPOINT_DIR = "checkpoint"


@dataclass
class Comparison:
    """One checked quantity: its shape, the largest deviation, the reference's scale and the verdict."""

    name: str
    shape: list[int]
    max_abs_error: float
    scale: float
    tolerance: float
    passed: bool
    note: str = ""


@dataclass
class ReferenceRun:
    """A ``ref_run.py openlrm`` output folder (or a fixture written by ``--write_fixture``)."""

    directory: Path
    meta: dict[str, Any]
    outputs: dict[str, np.ndarray]

    @classmethod
    def load(cls, directory: str | Path) -> "ReferenceRun":
        """Read ``meta.json`` and ``outputs.npz``; raise ``FileNotFoundError`` naming what is missing."""
        directory = Path(directory)
        if not (directory / META_FILE).is_file():
            raise FileNotFoundError(f"{directory / META_FILE} not found: --reference takes a folder written by "
                                    "shared/reference/ref_run.py (or by --write_fixture)")
        meta = json.loads((directory / META_FILE).read_text())
        if meta.get("model") not in CHECKPOINT_FILES:
            raise ValueError(f"{directory}: a reference run of '{meta.get('model')}', not of {sorted(CHECKPOINT_FILES)}")
        for name in (OUTPUTS_FILE, *(f"{CHECKPOINT_DIR}/{file}" for file in CHECKPOINT_FILES[meta["model"]])):
            if not (directory / name).is_file():
                raise FileNotFoundError(f"{directory / name} not found: --reference takes a folder written by "
                                        f"shared/reference/ref_run.py {meta['model']} (or by --write_fixture)")
        with np.load(directory / OUTPUTS_FILE) as data:
            outputs = {key: data[key] for key in data.files}
        return cls(directory=directory, meta=meta, outputs=outputs)

    @property
    def checkpoint(self) -> Path:
        return self.directory / CHECKPOINT_DIR

    def openlrm_options(self) -> dict[str, Any]:
        """Conversion options of this run: its source size and, for a test-size encoder, its heads."""
        options: dict[str, Any] = {"source_size": int(self.meta["infer"]["source_size"])}
        encoder = self.meta.get("tiny_encoder")
        if encoder:
            options["encoder_num_heads"] = int(encoder["num_heads"])
        return options

    def tensor(self, name: str) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(self.outputs[name])).float()


def _compare(name: str, ours: torch.Tensor, reference: torch.Tensor, tolerance: float, note: str = "",
             mask: torch.Tensor | None = None) -> Comparison:
    if ours.shape != reference.shape:
        raise ValueError(f"{name}: MIRA gives shape {tuple(ours.shape)}, the reference {tuple(reference.shape)}")
    difference = (ours.double() - reference.double()).abs()
    values = reference.double().abs()
    if mask is not None:
        difference, values = difference[mask], values[mask]
    error = float(difference.max()) if difference.numel() else 0.0
    scale = float(values.max()) if values.numel() else 0.0
    limit = tolerance * max(1.0, scale)
    return Comparison(name, list(reference.shape), error, scale, limit, bool(error <= limit), note)


def _source_camera(vector: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """OpenLRM's 16-value source camera (3x4 OpenGL c2w + fx, fy, cx, cy) -> OpenCV c2w (B, 4, 4), (B, 4)."""
    from mira.cameras import opengl_to_opencv, to_homogeneous

    c2w_gl = to_homogeneous(vector[:, :12].reshape(-1, 3, 4))
    return opengl_to_opencv(c2w_gl), vector[:, 12:16]


def _render_cameras(vectors: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """OpenLRM render cameras (V, 25): 4x4 OpenGL c2w + 3x3 normalised K -> OpenCV c2w (V, 4, 4), (V, 4)."""
    from mira.cameras import opengl_to_opencv

    c2w = opengl_to_opencv(vectors[:, :16].reshape(-1, 4, 4))
    k = vectors[:, 16:25].reshape(-1, 3, 3)
    return c2w, torch.stack([k[:, 0, 0], k[:, 1, 1], k[:, 0, 2], k[:, 1, 2]], dim=-1)


def mesh_level(density: np.ndarray) -> float:
    """A density level for the mesh check: the middle of the widest gap between sorted grid values within
    ``MESH_LEVEL_WINDOW`` of the ``MESH_LEVEL_QUANTILE`` quantile."""
    values = np.sort(density.ravel().astype(np.float64))
    low = int((MESH_LEVEL_QUANTILE - MESH_LEVEL_WINDOW) * (len(values) - 1))
    high = int((MESH_LEVEL_QUANTILE + MESH_LEVEL_WINDOW) * (len(values) - 1))
    window = values[low : high + 1]
    widest = int(np.argmax(np.diff(window)))
    return float(0.5 * (window[widest] + window[widest + 1]))


def openlrm_mesh(density: np.ndarray, level: float, half_extent: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """The mesh OpenLRM's (and TripoSR's) inference extracts from a (G, G, G) density grid over
    ``[-half_extent, half_extent]^3`` (corners included): PyMCubes at ``level``, vertices
    ``(index / (G - 1) * 2 - 1) * half_extent`` (no padding, no clean-up). Returns (V, 3), (F, 3)."""
    import mcubes

    vertices, faces = mcubes.marching_cubes(density, float(level))
    return (vertices / (density.shape[0] - 1) * 2 - 1) * half_extent, faces.astype(np.int64)


def compare_meshes(reference: tuple[np.ndarray, np.ndarray], ours: tuple[np.ndarray, np.ndarray],
                   box: float = 1.0) -> dict[str, Any]:
    """Reference triangles found among ours, and whether every extra triangle of ours is a box cap.

    Returns:
        {"reference_faces", "mira_faces", "missing_faces", "extra_faces", "extra_faces_off_the_box",
        "max_vertex_distance", "passed"}.
    """
    from scipy.spatial import cKDTree

    ref_vertices, ref_faces = reference
    our_vertices, our_faces = ours
    if len(ref_faces) == 0:
        return {"reference_faces": 0, "mira_faces": int(len(our_faces)), "passed": False,
                "note": "the reference mesh is empty at this level"}
    distance, index = cKDTree(our_vertices).query(ref_vertices)
    close = distance <= MESH_VERTEX_TOLERANCE
    mapped = np.sort(index[ref_faces], axis=1)
    valid = close[ref_faces].all(axis=1)
    our_set = {tuple(face) for face in np.sort(our_faces, axis=1)}
    found = [valid[i] and tuple(mapped[i]) in our_set for i in range(len(mapped))]
    matched = {tuple(mapped[i]) for i in range(len(mapped)) if found[i]}
    extra = [face for face in np.sort(our_faces, axis=1) if tuple(face) not in matched]
    on_box = np.isclose(np.abs(our_vertices), box, atol=1e-6).any(axis=1)
    off_box = sum(1 for face in extra if not on_box[list(face)].any())
    missing = int(len(found) - sum(found))
    return {"reference_faces": int(len(ref_faces)), "mira_faces": int(len(our_faces)), "missing_faces": missing,
            "extra_faces": len(extra), "extra_faces_off_the_box": int(off_box),
            "max_vertex_distance": float(distance.max()), "passed": missing == 0 and off_box == 0}


def verify(run: ReferenceRun, tolerance: float = DEFAULT_TOLERANCE) -> dict[str, Any]:
    """Convert ``run``'s checkpoint and compare every output (see the module docstring); the report of
    :func:`verify_openlrm` or :func:`verify_triposr`."""
    return (verify_triposr if run.meta["model"] == "triposr" else verify_openlrm)(run, tolerance)


@torch.no_grad()
def verify_openlrm(run: ReferenceRun, tolerance: float = DEFAULT_TOLERANCE) -> dict[str, Any]:
    """An OpenLRM run: convert its checkpoint and compare every output (see the module docstring).

    Returns:
        {"reference", "config_name", "num_parameters", "comparisons": [Comparison as dict], "mesh",
        "passed", "seconds"}.
    """
    from mira.cameras import pixel_centers, rays_from_pixels
    from mira.checkpoints import load_model
    from mira.export.mesh import extract_mesh, marching_cubes_world

    started = time.perf_counter()
    model = load_model(str(run.checkpoint), openlrm_options=run.openlrm_options())
    results: list[Comparison] = []
    image = run.tensor("image")
    c2w, intrinsics = _source_camera(run.tensor("source_camera"))
    results.append(_compare("encoder_tokens", model.encoder(image), run.tensor("encoder_tokens"), tolerance))
    results.append(_compare("camera_embedding", model.camera_embedder.embed_camera(c2w, intrinsics),
                            run.tensor("camera_embedding"), tolerance))
    triplanes, decoder_tokens = _triplanes_and_decoder_tokens(model, image, c2w, intrinsics)
    results.append(_compare("decoder_tokens", decoder_tokens, run.tensor("decoder_tokens"), tolerance,
                            "after the final LayerNorm, before the upsampler"))
    results.append(_compare("triplanes", triplanes, run.tensor("triplanes"), tolerance))

    renderer = model.renderer
    axis = run.tensor("grid_axis")
    size = len(axis)
    points = torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), dim=-1).reshape(1, -1, 3)
    field = renderer.query(triplanes, points)
    results.append(_compare("density_grid", field["density"].reshape(size, size, size), run.tensor("density_grid"),
                            tolerance, "MIRA's triplanes at the reference's grid points"))
    results.append(_compare("grid_rgb", field["rgb"].reshape(size, size, size, 3), run.tensor("grid_rgb"), tolerance))

    origins, directions = run.tensor("render_ray_origins"), run.tensor("render_ray_directions")
    views, rays = origins.shape[:2]
    side = int(round(rays**0.5))
    rendered = renderer(triplanes.expand(views, -1, -1, -1, -1), origins, directions)
    as_images = {key: value.reshape(views, side, side, -1).permute(0, 3, 1, 2)[None] for key, value in rendered.items()}
    ref_opacity = run.tensor("render_opacity")
    results.append(_compare("render_rgb", as_images["rgb"], run.tensor("render_rgb"), tolerance,
                            "MIRA's triplanes and renderer on the reference's rays"))
    results.append(_compare("render_opacity", as_images["opacity"], ref_opacity, tolerance))
    results.append(_compare("render_depth", as_images["depth"], run.tensor("render_depth"), tolerance,
                            f"pixels with opacity > {DEPTH_MIN_OPACITY}", mask=ref_opacity > DEPTH_MIN_OPACITY))
    camera_c2w, camera_intrinsics = _render_cameras(run.tensor("render_cameras"))
    uv = pixel_centers(side, side).expand(views, -1, -1)
    our_origins, our_directions = rays_from_pixels(camera_c2w, camera_intrinsics, uv, side, side)
    results.append(_compare("ray_origins", our_origins, origins, tolerance, "mira.cameras from the reference's cameras"))
    results.append(_compare("ray_directions", our_directions, directions, tolerance,
                            "mira.cameras from the reference's cameras"))

    density = run.outputs["density_grid"].astype(np.float32)
    level = mesh_level(density)
    reference_mesh = openlrm_mesh(density, level)
    box_min, box_max = np.array(renderer.config.box_min), np.array(renderer.config.box_max)
    same_grid = compare_meshes(reference_mesh, marching_cubes_world(density, level, box_min, box_max))
    ours = extract_mesh(renderer, triplanes, resolution=size, density_threshold=level, fill_cavities=False)
    from scipy.spatial import cKDTree

    end_to_end = float(cKDTree(np.asarray(ours.vertices)).query(reference_mesh[0])[0].max())
    mesh = {"level": level, "grid": size, **same_grid, "end_to_end_max_vertex_distance": end_to_end,
            "end_to_end_passed": end_to_end <= MESH_END_TO_END_TOLERANCE}
    mesh["passed"] = bool(same_grid["passed"] and mesh["end_to_end_passed"])
    passed = all(result.passed for result in results) and bool(mesh["passed"])
    return {"reference": str(run.directory), "config_name": run.meta.get("config_name"),
            "tiny": bool(run.meta.get("tiny")), "num_parameters": int(sum(p.numel() for p in model.parameters())),
            "reference_num_parameters": run.meta.get("num_parameters"), "tolerance": tolerance,
            "comparisons": [asdict(result) for result in results], "mesh": mesh, "passed": passed,
            "seconds": round(time.perf_counter() - started, 2)}


def _mesh_checks(renderer, triplanes: torch.Tensor, density: np.ndarray, half_extent: float) -> dict[str, Any]:
    """The mesh part of the report: the reference's extraction (:func:`openlrm_mesh`) of its density grid
    against MIRA's on the same grid and level, and MIRA's own end to end (see the module docstring)."""
    from scipy.spatial import cKDTree

    from mira.export.mesh import extract_mesh, marching_cubes_world

    size = density.shape[0]
    level = mesh_level(density)
    reference_mesh = openlrm_mesh(density, level, half_extent)
    box_min, box_max = np.array(renderer.config.box_min), np.array(renderer.config.box_max)
    same_grid = compare_meshes(reference_mesh, marching_cubes_world(density, level, box_min, box_max), box=half_extent)
    ours = extract_mesh(renderer, triplanes, resolution=size, density_threshold=level, fill_cavities=False)
    end_to_end = float(cKDTree(np.asarray(ours.vertices)).query(reference_mesh[0])[0].max())
    mesh = {"level": level, "grid": size, **same_grid, "end_to_end_max_vertex_distance": end_to_end,
            "end_to_end_passed": end_to_end <= MESH_END_TO_END_TOLERANCE}
    mesh["passed"] = bool(same_grid["passed"] and mesh["end_to_end_passed"])
    return mesh


def triposr_grid_points(size: int, radius: float) -> torch.Tensor:
    """(1, size^3, 3) the points TripoSR queries its grid at (``MarchingCubeHelper.grid_vertices``:
    ``linspace(0, 1, size)`` per axis, meshgrid "ij", then mapped to ``[-radius, radius]`` by
    ``(v - 0) / (1 - 0) * 2 radius - radius``). They differ from ``linspace(-radius, radius, size)`` (the
    run's ``grid_axis``) by float32 rounding, which the field amplifies (up to 6e-5 on random full-size
    weights), so the comparison uses the very points TripoSR used."""
    unit = torch.linspace(0, 1, size)
    grid = torch.stack(torch.meshgrid(unit, unit, unit, indexing="ij"), dim=-1).reshape(1, -1, 3)
    return (grid - 0) / (1 - 0) * (radius - (-radius)) + (-radius)


def _triplanes_and_decoder_tokens(model: Any, image: torch.Tensor, c2w: torch.Tensor,
                                  intrinsics: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``model.forward_triplanes`` and the decoder's tokens as its final norm outputs them (before the upsampler):
    (B, 3, C, 2R, 2R) triplanes and (B, 3R^2, D) tokens."""
    captured: dict[str, torch.Tensor] = {}
    hook = model.decoder.final_norm.register_forward_hook(lambda _m, _i, out: captured.__setitem__("tokens", out))
    try:
        triplanes = model.forward_triplanes(image, c2w, intrinsics)
    finally:
        hook.remove()
    return triplanes, captured["tokens"]


@torch.no_grad()
def verify_triposr(run: ReferenceRun, tolerance: float = DEFAULT_TOLERANCE) -> dict[str, Any]:
    """A TripoSR run: load its ``config.yaml`` + ``model.ckpt`` as users do and compare every output TripoSR
    has (see the module docstring). Returns the same report as :func:`verify_openlrm`."""
    from mira.cameras import pixel_centers, rays_from_pixels
    from mira.checkpoints import load_model

    started = time.perf_counter()
    model = load_model(str(run.checkpoint))
    results: list[Comparison] = []
    image = run.tensor("image")
    results.append(_compare("encoder_tokens", model.encoder(image), run.tensor("encoder_tokens"), tolerance,
                            "ViT last_hidden_state (CLS + patches)"))
    # No camera input: the source camera arguments are placeholders.
    triplanes, decoder_tokens = _triplanes_and_decoder_tokens(
        model, image, torch.eye(4).expand(image.shape[0], 4, 4), torch.tensor([[1.0, 1.0, 0.5, 0.5]]).expand(image.shape[0], 4))
    results.append(_compare("decoder_tokens", decoder_tokens, run.tensor("decoder_tokens"), tolerance,
                            "the backbone's output (residual included), before the upsampler"))
    results.append(_compare("triplanes", triplanes, run.tensor("triplanes"), tolerance))

    renderer = model.renderer
    size = len(run.tensor("grid_axis"))
    points = triposr_grid_points(size, float(renderer.config.box_max[0]))
    field = renderer.query(triplanes, points)
    results.append(_compare("density_grid", field["density"].reshape(size, size, size), run.tensor("density_grid"),
                            tolerance, "MIRA's triplanes at the reference's grid points"))
    results.append(_compare("grid_rgb", field["rgb"].reshape(size, size, size, 3), run.tensor("grid_rgb"), tolerance))

    origins, directions = run.tensor("render_ray_origins"), run.tensor("render_ray_directions")  # (V, H, W, 3)
    views, height, width = origins.shape[:3]
    rendered = renderer(triplanes.expand(views, -1, -1, -1, -1), origins.reshape(views, -1, 3),
                        directions.reshape(views, -1, 3))
    rgb = rendered["rgb"].reshape(views, height, width, 3).permute(0, 3, 1, 2)[None]
    results.append(_compare("render_rgb", rgb, run.tensor("render_rgb"), tolerance,
                            "MIRA's triplanes and renderer on the reference's rays"))
    render = run.meta["render"]
    c2w = torch.tensor(render["c2w_opencv"], dtype=torch.float32)
    intrinsics = torch.tensor([render["intrinsics_normalised"]], dtype=torch.float32).expand(views, 4)
    uv = pixel_centers(height, width).expand(views, -1, -1)
    our_origins, our_directions = rays_from_pixels(c2w, intrinsics, uv, width, height)
    results.append(_compare("ray_origins", our_origins, origins.reshape(views, -1, 3), tolerance,
                            "mira.cameras from the reference's cameras"))
    results.append(_compare("ray_directions", our_directions, directions.reshape(views, -1, 3), tolerance,
                            "mira.cameras from the reference's cameras"))

    radius = float(renderer.config.box_max[0])
    mesh = _mesh_checks(renderer, triplanes, run.outputs["density_grid"].astype(np.float32), radius)
    passed = all(result.passed for result in results) and bool(mesh["passed"])
    return {"reference": str(run.directory), "config_name": run.meta.get("config_name"),
            "tiny": bool(run.meta.get("tiny")), "num_parameters": int(sum(p.numel() for p in model.parameters())),
            "reference_num_parameters": run.meta.get("num_parameters"), "tolerance": tolerance,
            "comparisons": [asdict(result) for result in results], "mesh": mesh, "passed": passed,
            "seconds": round(time.perf_counter() - started, 2)}


def write_fixture(run: ReferenceRun, target: Path) -> None:
    """A compact copy of ``run`` for CI: checkpoint/, meta.json, outputs.npz (compressed float32)."""
    from mira.atomic import atomic_output

    (target / CHECKPOINT_DIR).mkdir(parents=True, exist_ok=True)
    model = run.meta["model"]
    for name in CHECKPOINT_FILES[model] + OPTIONAL_CHECKPOINT_FILES[model]:
        if (run.checkpoint / name).is_file():
            shutil.copyfile(run.checkpoint / name, target / CHECKPOINT_DIR / name)
    (target / META_FILE).write_text(json.dumps(run.meta, indent=1) + "\n")
    with atomic_output(target / OUTPUTS_FILE) as temporary:
        with open(temporary, "wb") as handle:
            np.savez_compressed(handle, **{key: value.astype(np.float32) for key, value in run.outputs.items()})


def format_report(report: dict[str, Any]) -> str:
    """A plain-text table of one verification."""
    lines = [f"{report['reference']} ({report['config_name']}{', tiny' if report['tiny'] else ''}): "
             f"{report['num_parameters']:,} parameters (reference {report['reference_num_parameters']:,}), "
             f"{'PASS' if report['passed'] else 'FAIL'} in {report['seconds']} s"]
    for item in report["comparisons"]:
        lines.append(f"  {item['name']:<20} max|err| {item['max_abs_error']:.3e}  scale {item['scale']:.3e}  "
                     f"limit {item['tolerance']:.1e}  {'ok' if item['passed'] else 'FAIL'}  {item['note']}")
    mesh = report["mesh"]
    lines.append(f"  mesh (level {mesh['level']:.4g}, grid {mesh['grid']}): {mesh.get('reference_faces')} reference "
                 f"triangles, {mesh.get('missing_faces')} missing in MIRA's; {mesh.get('extra_faces')} extra, "
                 f"{mesh.get('extra_faces_off_the_box')} of them off the box; end to end max vertex distance "
                 f"{mesh.get('end_to_end_max_vertex_distance', float('nan')):.2e}  {'ok' if mesh['passed'] else 'FAIL'}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mira.pretrained.verify", description=__doc__.split("\n\n")[0])
    parser.add_argument("--reference", nargs="+", required=True, type=Path,
                        help="ref_run.py openlrm / triposr output folders")
    parser.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE,
                        help="max |error| per unit of the reference's scale (default 1e-4)")
    parser.add_argument("--json", type=Path, default=None, help="also write the reports here")
    parser.add_argument("--write_fixture", type=Path, default=None,
                        help="copy the (single) reference run compactly to this folder, for CI")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: all cores)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        runs = [ReferenceRun.load(directory) for directory in args.reference]
    except (FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    if args.write_fixture is not None:
        if len(runs) != 1:
            print("error: --write_fixture takes one --reference", file=sys.stderr)
            return 1
        write_fixture(runs[0], args.write_fixture)
    reports = []
    for run in runs:
        report = verify(run, args.tolerance)
        reports.append(report)
        print(format_report(report), flush=True)
    if args.json is not None:
        from mira.atomic import write_json_atomic

        write_json_atomic(reports, args.json)
    return 0 if all(report["passed"] for report in reports) else 1


if __name__ == "__main__":
    sys.exit(main())
