"""Shared helpers of the data tests: running the Blender script, silhouettes of meshes through
``mira.cameras.project_points``, and object folders written without Blender."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import torch
import trimesh
from skimage.draw import polygon

from mira import cameras
from mira.data.formats import write_object_views

REPO_ROOT = Path(__file__).resolve().parents[1]
RENDER_SCRIPT = REPO_ROOT / "blender_scripts" / "dataset_rendering.py"
# The proof that the saved cameras agree with mira.cameras: silhouettes must match this well.
MIN_IOU = 0.95


def run_render_script(blender_command: list[str], *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run dataset_rendering.py with ``args`` (after ``--``); returns the finished process."""
    command = [*blender_command, str(RENDER_SCRIPT), "--", *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout)


def run_blender_snippet(blender_command: list[str], code: str, *args: str, tmp_dir: Path) -> subprocess.CompletedProcess:
    """Run a small bpy script (e.g. to export test files in formats trimesh cannot write)."""
    script = tmp_dir / "snippet.py"
    script.write_text(code)
    result = subprocess.run([*blender_command, str(script), "--", *map(str, args)], capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    return result


def last_error_line(result: subprocess.CompletedProcess) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def silhouette(mesh: trimesh.Trimesh, c2w: torch.Tensor, intrinsics: torch.Tensor, width: int, height: int,
               supersample: int = 4) -> np.ndarray:
    """Coverage (H, W) in [0, 1] of ``mesh`` seen by an OpenCV camera, by filling every projected
    triangle (in front of the camera) on a ``supersample`` times finer grid."""
    vertices = torch.as_tensor(np.asarray(mesh.vertices), dtype=torch.float64)[None]
    uv, depth = cameras.project_points(vertices, c2w.double()[None], intrinsics.double()[None], width, height)
    uv, depth = uv[0].numpy(), depth[0].numpy()
    faces = np.asarray(mesh.faces)
    faces = faces[(depth[faces] > 1e-6).all(axis=1)]
    fine = np.zeros((height * supersample, width * supersample), dtype=bool)
    # skimage puts pixel (r, c) at integer coordinates; ours has pixel centres at +0.5.
    rows, cols = uv[:, 1] * supersample - 0.5, uv[:, 0] * supersample - 0.5
    for face in faces:
        rr, cc = polygon(rows[face], cols[face], fine.shape)
        fine[rr, cc] = True
    return fine.reshape(height, supersample, width, supersample).mean(axis=(1, 3))


def iou(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a > 0.5, b > 0.5
    return float((a & b).sum() / max(1, (a | b).sum()))


def c2w_from_transforms_frame(frame: dict) -> torch.Tensor:
    """OpenCV c2w of a transforms.json frame (OpenGL c2w) through the one converter."""
    return cameras.opengl_to_opencv(torch.tensor(frame["transform_matrix"], dtype=torch.float64))


def c2w_from_zero123_npy(path: Path) -> torch.Tensor:
    """OpenCV c2w of a zero123-style 3x4 w2c (Blender camera axes)."""
    w2c = torch.tensor(np.load(path), dtype=torch.float64)
    return cameras.opengl_to_opencv(cameras.w2c_to_c2w(w2c))


def orbit_views(count: int, distance: float = 2.5, elevation_deg: float = 25.0) -> torch.Tensor:
    """(count, 4, 4) OpenCV c2w around the origin."""
    return cameras.orbit_cameras(count, elevation_deg, distance, start_azimuth_deg=15.0, dtype=torch.float64)


def write_software_object(folder: Path, mesh: trimesh.Trimesh, c2w: torch.Tensor, size: int,
                          colour: tuple[int, int, int] = (200, 60, 40)) -> None:
    """An object folder in our render format without Blender: flat-coloured silhouettes of ``mesh``
    (alpha = coverage) seen from ``c2w`` (N, 4, 4) at the zero123 field of view, plus mesh.ply."""
    intrinsics = cameras.intrinsics_from_fov(cameras.ZERO123_FOV_DEG).double()
    rgba = np.zeros((len(c2w), size, size, 4), dtype=np.uint8)
    rgba[..., :3] = colour
    for index, pose in enumerate(c2w):
        rgba[index, ..., 3] = np.round(silhouette(mesh, pose, intrinsics, size, size) * 255).astype(np.uint8)
    write_object_views(folder, rgba, c2w, intrinsics, {"object_id": folder.name, "software_render": True})
    mesh.export(folder / "mesh.ply")
