"""Analytic multi-view scenes (a few shaded spheres) for training without a dataset.

Each object is 1-3 coloured, Lambert-shaded spheres inside the ball of radius 0.9 (the bounding
sphere our renders are normalised to),
ray-cast exactly (no mesh, no Blender), so every view is consistent with every other:
a model can genuinely learn them. Used by ``synthetic_objects > 0`` (smoke runs and GPU
scaling runs on machines without a dataset) and by the tests, which also write them to
disk in our render format (:func:`write_synthetic_dataset`) to exercise ``mira.data``.

Items have the layout of :class:`mira.data.MultiViewDataset` and go through the same
source-view contract (the source view is rendered ``SOURCE_SUPERSAMPLING`` times larger, then
framed): ``source_image (3,S,S)``, ``source_c2w (4,4)``, ``source_intrinsics (4,)``,
``target_images (K,3,H,W)``, ``target_masks (K,1,H,W)``, ``target_c2w (K,4,4)``,
``target_intrinsics (K,4)``, ``background (3,)``, ``world_to_canonical (4,4)``, ``object_id``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from mira.atomic import write_json_atomic
from mira.cameras import (ZERO123_FOV_DEG, image_rays, intrinsics_from_fov, look_at, spherical_to_cartesian,
                          transform_cameras)
from mira.config import MiraConfig
from mira.data.source_view import prepare_training_source_view

LIGHT_DIRECTION = (0.4, -0.3, 0.87)  # towards the light, world frame (Z up)
AMBIENT = 0.35
CAMERA_DISTANCE_RANGE = (2.2, 2.8)
ELEVATION_RANGE_DEG = (-10.0, 40.0)
VAL_OBJECT_OFFSET = 1_000_000  # val objects use disjoint generator streams
SCENE_RADIUS = 0.9  # every scene lies inside this ball: the data.object_radius of our renders
SOURCE_SUPERSAMPLING = 2  # the source view is rendered this many times larger, then framed
FIXED_SOURCE_STREAM = 2**31  # the "epoch" of fixed source views (fixed_source_view)


@dataclass
class SphereScene:
    """Spheres: centres (S, 3), radii (S,), albedo colours (S, 3) in [0, 1]."""

    centers: Tensor
    radii: Tensor
    colors: Tensor


def make_scene(object_index: int, seed: int) -> SphereScene:
    """The scene of object ``object_index``: 1-3 spheres inside the ball of radius ``SCENE_RADIUS``."""
    generator = torch.Generator().manual_seed(seed * 7919 + object_index)
    count = int(torch.randint(1, 4, (1,), generator=generator))
    radii = 0.25 + 0.3 * torch.rand(count, generator=generator)
    directions = torch.nn.functional.normalize(torch.randn(count, 3, generator=generator), dim=-1)
    reach = (SCENE_RADIUS - radii) * torch.rand(count, generator=generator) ** (1.0 / 3.0)
    centers = directions * reach[:, None]
    colors = 0.15 + 0.8 * torch.rand(count, 3, generator=generator)
    return SphereScene(centers=centers, radii=radii, colors=colors)


def scene_radius(scene: SphereScene) -> float:
    """The radius of the smallest ball about the origin that holds every sphere of ``scene``."""
    return float((scene.centers.norm(dim=-1) + scene.radii).max())


def render_scene(scene: SphereScene, c2w: Tensor, intrinsics: Tensor, size: int,
                 background: tuple[float, float, float] | list[float]) -> tuple[Tensor, Tensor]:
    """Ray-cast the spheres.

    Args:
        c2w: (V, 4, 4) OpenCV camera-to-world; intrinsics: (V, 4) normalised.
        size: output side in pixels.
    Returns:
        rgb (V, 3, size, size) composited on ``background`` and mask (V, 1, size, size) in {0, 1}.
    """
    origins, directions = image_rays(c2w, intrinsics, size, size)  # (V, N, 3)
    offset = origins[:, :, None, :] - scene.centers  # (V, N, S, 3)
    b = (offset * directions[:, :, None, :]).sum(-1)
    c = (offset * offset).sum(-1) - scene.radii**2
    disc = b * b - c
    t = -b - disc.clamp_min(0).sqrt()
    hit = (disc > 0) & (t > 0)
    t = torch.where(hit, t, torch.full_like(t, float("inf")))
    t_min, nearest = t.min(dim=-1)  # (V, N)
    mask = torch.isfinite(t_min)
    points = origins + directions * torch.where(mask, t_min, torch.zeros_like(t_min))[..., None]
    normals = torch.nn.functional.normalize(points - scene.centers[nearest], dim=-1)
    light = torch.nn.functional.normalize(torch.tensor(LIGHT_DIRECTION), dim=0)
    shade = AMBIENT + (1 - AMBIENT) * (normals @ light).clamp_min(0)
    colour = scene.colors[nearest] * shade[..., None]
    bg = torch.tensor(background, dtype=colour.dtype)
    rgb = torch.where(mask[..., None], colour, bg)
    views = c2w.shape[0]
    rgb = rgb.reshape(views, size, size, 3).permute(0, 3, 1, 2).contiguous()
    return rgb, mask.reshape(views, 1, size, size).float()


def random_cameras(count: int, generator: torch.Generator) -> Tensor:
    """(count, 4, 4) OpenCV c2w looking at the origin, random azimuth/elevation/distance."""
    azimuth = torch.rand(count, generator=generator) * 360.0
    low, high = ELEVATION_RANGE_DEG
    elevation = low + (high - low) * torch.rand(count, generator=generator)
    low, high = CAMERA_DISTANCE_RANGE
    distance = low + (high - low) * torch.rand(count, generator=generator)
    return look_at(spherical_to_cartesian(azimuth, elevation, distance))


class SyntheticSceneDataset(Dataset):
    """``num_objects`` analytic sphere scenes, rendered on the fly (``scene_maker``: another family of
    sphere scenes, e.g. the learning tests' single balls).

    Deterministic per ``(seed, epoch, index)`` like :class:`mira.data.MultiViewDataset`:
    the scene depends on ``(seed, index)``, the source/target cameras also on the epoch.
    """

    def __init__(self, config: MiraConfig, split: str = "train", seed: int | None = None,
                 num_objects: int | None = None,
                 scene_maker: Callable[[int, int], SphereScene] | None = None) -> None:
        if split not in ("train", "val"):
            raise ValueError(f"split must be 'train' or 'val', got '{split}'")
        self.config = config
        self.split = split
        self.scene_maker = scene_maker or make_scene  # (object index, seed) -> scene
        self.seed = config.train.seed if seed is None else seed
        self.num_objects = num_objects if num_objects is not None else config.train.synthetic_objects
        if self.num_objects <= 0:
            raise ValueError("SyntheticSceneDataset needs num_objects > 0 (config key synthetic_objects)")
        self.epoch = 0
        self.num_skipped = 0
        self.intrinsics = intrinsics_from_fov(ZERO123_FOV_DEG)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.num_objects

    def object_index(self, index: int) -> int:
        return index + (VAL_OBJECT_OFFSET if self.split == "val" else 0)

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < self.num_objects:
            raise IndexError(index)
        object_index = self.object_index(index)
        scene = self.scene_maker(object_index, self.seed)
        epoch = 0 if self.split == "val" else self.epoch
        generator = torch.Generator().manual_seed(_stream_seed(self.seed, epoch, object_index))
        k = self.config.data.supervision_k
        c2w = random_cameras(k + 1, generator)
        if self.config.data.fixed_source_view:  # the object is always seen from the same source view
            c2w[0] = random_cameras(1, torch.Generator().manual_seed(_stream_seed(self.seed, FIXED_SOURCE_STREAM, object_index)))[0]
        intrinsics = self.intrinsics.expand(k + 1, 4).clone()
        if self.split == "train" and self.config.data.random_background:
            background = source_background = torch.rand(3, generator=generator)
        else:  # the source on the checkpoint's source background (TripoSR's grey), if it names one
            background = torch.tensor(self.config.renderer.background_color, dtype=torch.float32)
            source_background = torch.tensor(self.config.source_background(), dtype=torch.float32)
        source_rgb, source_mask = render_scene(scene, c2w[:1], intrinsics[:1],
                                               SOURCE_SUPERSAMPLING * self.config.model.source_size, (0.0, 0.0, 0.0))
        source = prepare_training_source_view(torch.cat([source_rgb, source_mask], dim=1), c2w[:1], intrinsics[:1],
                                              self.config, source_background, object_radius=scene_radius(scene))
        targets, masks = render_scene(scene, c2w[1:], intrinsics[1:], self.config.data.render_size, background.tolist())
        return {
            "source_image": source.image[0],
            "source_c2w": source.c2w[0],
            "source_intrinsics": source.intrinsics[0],
            "target_images": targets,
            "target_masks": masks,
            "target_c2w": transform_cameras(source.world_to_canonical, c2w[None, 1:])[0],
            "target_intrinsics": intrinsics[1:],
            "background": background,
            "world_to_canonical": source.world_to_canonical[0],
            "object_id": f"sphere_{object_index:07d}",
        }


def write_synthetic_dataset(output_dir: str | Path, num_train: int, num_val: int, num_views: int = 8,
                            size: int = 64, seed: int = 0) -> Path:
    """Write sphere scenes in MIRA's render format (as blender_scripts/dataset_rendering.py does).

    Per object ``<output_dir>/<object_id>/``: ``000.png...`` RGBA, ``000.npy...`` 3x4 w2c in
    Blender/OpenGL camera axes, ``transforms.json`` (c2w in OpenGL axes) and
    ``metadata.json``; plus ``<output_dir>/index.json = {"train": [...], "val": [...]}``.
    """
    from mira.data.formats import write_object_views

    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    intrinsics = intrinsics_from_fov(ZERO123_FOV_DEG)
    index: dict[str, list[str]] = {"train": [], "val": []}
    for split, count in (("train", num_train), ("val", num_val)):
        for i in range(count):
            object_index = i + (VAL_OBJECT_OFFSET if split == "val" else 0)
            object_id = f"sphere_{object_index:07d}"
            scene = make_scene(object_index, seed)
            c2w = random_cameras(num_views, torch.Generator().manual_seed(_stream_seed(seed, -1, object_index)))
            rgb, mask = render_scene(scene, c2w, intrinsics.expand(num_views, 4), size, (0.0, 0.0, 0.0))
            rgba = torch.cat([rgb * mask, mask], dim=1).permute(0, 2, 3, 1)  # straight alpha, black where empty
            write_object_views(output_dir / object_id, (rgba.numpy() * 255).round().astype(np.uint8), c2w,
                               intrinsics, {"source": "mira.training.synthetic_scenes", "num_views": num_views})
            index[split].append(object_id)
    write_json_atomic(index, output_dir / "index.json")
    return output_dir


def _stream_seed(seed: int, epoch: int, object_index: int) -> int:
    """A 63-bit generator seed from ``(seed, epoch, object_index)``, the same in every process."""
    return int(np.random.SeedSequence([seed, epoch + 1, object_index]).generate_state(2, np.uint64)[0] >> np.uint64(1))
