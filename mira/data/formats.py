"""Readers of multi-view object folders: cameras and image files, no pixels.

Three layouts are recognised (:func:`detect_format`):

* ``"mira"``: our renders (``blender_scripts/dataset_rendering.py``): ``transforms.json`` +
  ``metadata.json`` (+ ``mesh.ply``). World already normalised (``dataset_rendering.py --normalisation``:
  bounding sphere of radius 0.9 by default, or inside [-0.8, 0.8]^3).
* ``"transforms"``: NeRF-synthetic (``transforms_{train,val,test}.json`` with ``camera_angle_x``)
  or nerfstudio (``transforms.json`` with ``fl_x, fl_y, cx, cy, w, h``, optionally per frame).
  ``transform_matrix`` is camera-to-world with OpenGL camera axes.
* ``"zero123"``: zero123 / Objaverse ``views_release``: ``NNN.png`` + ``NNN.npy`` (3x4
  world-to-camera in Blender camera axes), fixed 49.13 deg field of view. Its objects are
  normalised to [-0.5, 0.5]^3 with cameras at radius 1.5, so its world is scaled by
  ``world_scale`` (default :data:`ZERO123_WORLD_SCALE` = 1.6) into our box.

Every reader returns a :class:`ViewIndex` with OpenCV camera-to-world matrices (through the
converters of :mod:`mira.cameras` only) and normalised intrinsics. :func:`write_object_views`
writes the ``"mira"`` layout from Python (software-rendered test and analytic datasets).
"""

from __future__ import annotations

import json
import math
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from mira.atomic import write_json_atomic
from mira.cameras import (ZERO123_FOV_DEG, c2w_to_w2c, intrinsics_from_fov, normalize_intrinsics, opencv_to_opengl,
                          opengl_to_opencv, to_homogeneous, w2c_to_c2w)
from mira.data.images import ImageLoadError, image_size

# Largest side of the object's bounding box in renders made with ``--normalisation box`` (world units):
# [-0.8, 0.8]^3. The default ``sphere`` normalisation puts objects in a bounding sphere of radius 0.9
# instead; the zero123 scale below keeps the box convention (a largest side of 1 becomes 1.6).
RENDER_BOX_SIZE = 1.6
# zero123 / Objaverse views_release objects have a largest side of 1 (inside [-0.5, 0.5]^3).
ZERO123_OBJECT_SIZE = 1.0
ZERO123_WORLD_SCALE = RENDER_BOX_SIZE / ZERO123_OBJECT_SIZE
NERF_SYNTHETIC_SPLITS = ("train", "val", "test")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".exr")
_ZERO123_POSE = re.compile(r"^(\d+)\.npy$")


class DatasetFormatError(ValueError):
    """A view folder or camera file is missing or malformed; the message names the file."""


@dataclass
class ViewIndex:
    """Cameras and image files of one object (pixels are loaded separately).

    Attributes:
        object_dir: the object's folder.
        format: ``"mira"``, ``"transforms"`` or ``"zero123"``.
        image_paths: N image files.
        c2w: (N, 4, 4) float32 camera-to-world, OpenCV camera axes, world +Z up.
        intrinsics: (N, 4) float32 normalised ``(fx/W, fy/H, cx/W, cy/H)``.
        mesh_path: ground-truth mesh in the same world frame, if the folder has one.
        world_scale: factor applied to the folder's world coordinates (camera centres).
    """

    object_dir: Path
    format: str
    image_paths: list[Path]
    c2w: Tensor
    intrinsics: Tensor
    mesh_path: Path | None = None
    world_scale: float = 1.0
    metadata: dict = field(default_factory=dict)

    @property
    def names(self) -> list[str]:
        """View names: image file names without suffix (``"000"``, ``"train/r_0"`` ...)."""
        return [_view_name(self.object_dir, p) for p in self.image_paths]

    def __len__(self) -> int:
        return len(self.image_paths)


def _view_name(root: Path, path: Path) -> str:
    try:
        relative = path.relative_to(root)
    except ValueError:
        relative = Path(path.name)
    return str(relative.with_suffix("")).replace("\\", "/")


# ----------------------------------------------------------------------------- detection
def detect_format(object_dir: str | Path) -> str:
    """``"mira"``, ``"transforms"`` or ``"zero123"`` from the files in ``object_dir``."""
    object_dir = Path(object_dir)
    if not object_dir.is_dir():
        raise DatasetFormatError(f"object folder not found: {object_dir}")
    if (object_dir / "transforms.json").is_file():
        return "mira" if (object_dir / "metadata.json").is_file() else "transforms"
    if any((object_dir / f"transforms_{split}.json").is_file() for split in NERF_SYNTHETIC_SPLITS):
        return "transforms"
    if any(_ZERO123_POSE.match(p.name) for p in object_dir.glob("*.npy")):
        return "zero123"
    raise DatasetFormatError(
        f"no views found in {object_dir}: expected transforms.json (MIRA renders / nerfstudio), "
        "transforms_train.json (NeRF-synthetic) or NNN.png + NNN.npy (zero123 views_release)"
    )


def read_view_index(object_dir: str | Path, split: str | None = None, world_scale: float | None = None) -> ViewIndex:
    """Cameras and image files of an object folder in any supported layout.

    Args:
        object_dir: the folder.
        split: NeRF-synthetic only: ``"train"``, ``"val"`` or ``"test"``; default all of them.
        world_scale: multiply world coordinates (camera centres) by this; default per format:
            :data:`ZERO123_WORLD_SCALE` for zero123 folders, 1 otherwise.
    """
    object_dir = Path(object_dir)
    kind = detect_format(object_dir)
    if kind == "zero123":
        return read_zero123_views(object_dir, ZERO123_WORLD_SCALE if world_scale is None else world_scale)
    views = read_transforms_views(object_dir, split=split, world_scale=1.0 if world_scale is None else world_scale)
    if kind == "mira":
        views.format = "mira"
        views.metadata = _read_json(object_dir / "metadata.json")
        mesh = object_dir / "mesh.ply"
        views.mesh_path = mesh if mesh.is_file() and views.world_scale == 1.0 else None
    return views


# ----------------------------------------------------------------------------- zero123
def write_object_views(directory: str | Path, rgba: np.ndarray, c2w: Tensor, intrinsics: Tensor,
                       metadata: dict) -> Path:
    """Write one object folder in our render layout, as ``blender_scripts/dataset_rendering.py`` does.

    Args:
        directory: ``<output_dir>/<object_id>``, created if missing.
        rgba: (N, H, W, 4) uint8 straight-alpha images -> ``000.png ...``.
        c2w: (N, 4, 4) OpenCV camera-to-world -> ``transform_matrix`` (OpenGL axes) in
            ``transforms.json`` and ``000.npy ...`` (3x4 w2c, Blender camera axes, as zero123).
        intrinsics: (4,) normalised intrinsics shared by all views.
        metadata: written to ``metadata.json`` (last, as the renderer does).
    """
    from PIL import Image

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    height, width = rgba.shape[1:3]
    c2w_gl = opencv_to_opengl(c2w)
    w2c_gl = c2w_to_w2c(c2w_gl)[:, :3, :]
    frames = []
    for view in range(rgba.shape[0]):
        name = f"{view:03d}"
        Image.fromarray(rgba[view], mode="RGBA").save(directory / f"{name}.png")
        np.save(directory / f"{name}.npy", w2c_gl[view].numpy().astype(np.float32))
        frames.append({"file_path": f"{name}.png", "transform_matrix": c2w_gl[view].tolist()})
    fx, fy, cx, cy = intrinsics.tolist()
    transforms = {"camera_angle_x": 2.0 * math.atan(0.5 / fx), "fl_x": fx * width, "fl_y": fy * height,
                  "cx": cx * width, "cy": cy * height, "w": width, "h": height, "frames": frames}
    write_json_atomic(transforms, directory / "transforms.json")
    write_json_atomic(metadata, directory / "metadata.json")
    return directory


def read_zero123_views(object_dir: str | Path, world_scale: float = ZERO123_WORLD_SCALE) -> ViewIndex:
    """A zero123 ``views_release`` folder: ``NNN.png`` + ``NNN.npy`` (3x4 w2c, Blender camera axes)."""
    object_dir = Path(object_dir)
    poses = sorted((p for p in object_dir.glob("*.npy") if _ZERO123_POSE.match(p.name)), key=lambda p: int(p.stem))
    if not poses:
        raise DatasetFormatError(f"no NNN.npy camera files in {object_dir} (zero123 views_release layout)")
    image_paths, c2w = [], []
    for pose_path in poses:
        image_paths.append(pose_path.with_suffix(".png"))
        c2w.append(zero123_pose_to_c2w(_load_pose(pose_path), world_scale))
    intrinsics = intrinsics_from_fov(ZERO123_FOV_DEG).expand(len(poses), 4).clone()
    return ViewIndex(object_dir, "zero123", image_paths, torch.stack(c2w).float(), intrinsics, world_scale=world_scale)


def zero123_pose_to_c2w(w2c_blender: Tensor, world_scale: float = ZERO123_WORLD_SCALE) -> Tensor:
    """zero123 (3, 4) world-to-camera in Blender camera axes -> OpenCV c2w (4, 4) in our world scale."""
    c2w = opengl_to_opencv(w2c_to_c2w(to_homogeneous(w2c_blender)))
    c2w[:3, 3] *= world_scale
    return c2w


def _load_pose(path: Path) -> Tensor:
    try:
        array = np.load(path, allow_pickle=False)
    except Exception as error:
        raise DatasetFormatError(f"cannot read camera file {path}: {error}") from error
    if array.shape not in ((3, 4), (4, 4)) or not np.all(np.isfinite(array)):
        raise DatasetFormatError(f"{path}: expected a finite 3x4 world-to-camera matrix, got shape {array.shape}")
    return torch.as_tensor(array, dtype=torch.float64)


# ----------------------------------------------------------------------------- transforms.json
def read_transforms_views(object_dir: str | Path, split: str | None = None, world_scale: float = 1.0) -> ViewIndex:
    """nerfstudio ``transforms.json`` or NeRF-synthetic ``transforms_<split>.json`` folder."""
    object_dir = Path(object_dir)
    files = _transforms_files(object_dir, split)
    image_paths, c2w, intrinsics = [], [], []
    for path in files:
        content = _read_json(path)
        frames = content.get("frames")
        if not isinstance(frames, list) or not frames:
            raise DatasetFormatError(f"{path}: no 'frames' list")
        _warn_distortion(content, path)
        paths = [_frame_image(path.parent, frame, path, number) for number, frame in enumerate(frames)]
        default_size = _default_image_size(content, frames, paths, path)
        for number, (frame, image_path) in enumerate(zip(frames, paths)):
            image_paths.append(image_path)
            c2w.append(_frame_pose(frame, path, number, world_scale))
            intrinsics.append(_frame_intrinsics(content, frame, default_size, path))
    return ViewIndex(object_dir, "transforms", image_paths, torch.stack(c2w), torch.stack(intrinsics),
                     world_scale=world_scale)


def _transforms_files(object_dir: Path, split: str | None) -> list[Path]:
    single = object_dir / "transforms.json"
    if single.is_file() and split is None:
        return [single]
    splits = NERF_SYNTHETIC_SPLITS if split is None else (split,)
    files = [object_dir / f"transforms_{s}.json" for s in splits if (object_dir / f"transforms_{s}.json").is_file()]
    if not files:
        wanted = f"transforms_{split}.json" if split else "transforms.json or transforms_{train,val,test}.json"
        raise DatasetFormatError(f"no {wanted} in {object_dir}")
    return files


def _frame_image(root: Path, frame: dict, source: Path, number: int) -> Path:
    """The frame's image path; NeRF-synthetic paths like './train/r_0' have no suffix."""
    if "file_path" not in frame:
        raise DatasetFormatError(f"{source}: frame {number} has no 'file_path'")
    path = (root / frame["file_path"]).resolve()
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return path
    for suffix in IMAGE_SUFFIXES:
        candidate = path.with_name(path.name + suffix)
        if candidate.is_file():
            return candidate
    return path.with_name(path.name + ".png")


def _frame_pose(frame: dict, source: Path, number: int, world_scale: float) -> Tensor:
    matrix = np.asarray(frame.get("transform_matrix", []), dtype=np.float64)
    if matrix.shape not in ((4, 4), (3, 4)) or not np.all(np.isfinite(matrix)):
        raise DatasetFormatError(f"{source}: frame {number} needs a finite 4x4 'transform_matrix'")
    c2w = opengl_to_opencv(to_homogeneous(torch.from_numpy(matrix)))
    c2w[:3, 3] *= world_scale
    return c2w.float()


def _default_image_size(content: dict, frames: list[dict], paths: list[Path], source: Path) -> tuple[int, int]:
    """(w, h) from the file's keys, else from the first readable image (views share a size)."""
    if content.get("w") is not None and content.get("h") is not None:
        return int(content["w"]), int(content["h"])
    if all(f.get("w") is not None and f.get("h") is not None for f in frames):
        return int(frames[0]["w"]), int(frames[0]["h"])
    for image_path in paths:
        try:
            return image_size(image_path)
        except ImageLoadError:
            continue
    raise DatasetFormatError(f"{source}: no 'w'/'h' keys and none of its {len(paths)} images can be read")


def _frame_intrinsics(content: dict, frame: dict, default_size: tuple[int, int], source: Path) -> Tensor:
    """Normalised intrinsics from per-frame keys, then file-level keys (nerfstudio), else camera_angle_x."""

    def key(name: str):
        return frame.get(name, content.get(name))

    width = key("w") if key("w") is not None else default_size[0]
    height = key("h") if key("h") is not None else default_size[1]
    if key("fl_x") is not None:
        fx = float(key("fl_x"))
        fy = float(key("fl_y") if key("fl_y") is not None else fx)
        cx = float(key("cx") if key("cx") is not None else width / 2.0)
        cy = float(key("cy") if key("cy") is not None else height / 2.0)
        return normalize_intrinsics(fx, fy, cx, cy, int(width), int(height))
    if key("camera_angle_x") is not None:
        fov_x = math.degrees(float(key("camera_angle_x")))
        fov_y = math.degrees(float(key("camera_angle_y"))) if key("camera_angle_y") is not None else None
        if fov_y is None:  # square pixels: fy (pixels) = fx (pixels)
            intr = intrinsics_from_fov(fov_x)
            intr[1] = intr[0] * width / height
            return intr
        return intrinsics_from_fov(fov_x, fov_y)
    raise DatasetFormatError(f"{source}: no intrinsics: need 'fl_x' (+ 'w', 'h') or 'camera_angle_x'")


def _warn_distortion(content: dict, path: Path) -> None:
    coefficients = [content.get(k, 0.0) for k in ("k1", "k2", "k3", "k4", "p1", "p2")]
    if any(abs(float(c)) > 1e-9 for c in coefficients):
        warnings.warn(f"{path}: lens distortion coefficients are ignored (pinhole model)", stacklevel=3)


def _read_json(path: Path) -> dict:
    try:
        content = json.loads(Path(path).read_text())
    except FileNotFoundError as error:
        raise DatasetFormatError(f"file not found: {path}") from error
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise DatasetFormatError(f"{path} is not valid JSON ({error}); re-render or re-download it") from error
    if not isinstance(content, dict):
        raise DatasetFormatError(f"{path}: the top level must be a JSON object")
    return content
