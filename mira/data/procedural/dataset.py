"""Training samples of procedural objects, rendered in batches on the training device.

:class:`ProceduralDataset` has the item layout of :class:`mira.data.MultiViewDataset` and goes
through the same source-view contract (:func:`mira.data.source_view.prepare_training_source_view`):
the source view is rendered ``SOURCE_SUPERSAMPLING`` times larger than the model input and framed,
the targets are rendered at ``render_size``, and every camera is moved into the canonical frame.

It is a map-style dataset whose ``__getitems__`` renders a whole batch at once (PyTorch's
``DataLoader`` calls it with the batch's indices), so a batch costs a few sphere-tracing launches
on the GPU; ``renders_on_device`` tells the trainer to load it in the main process, or, with
``data.procedural_workers``, in worker processes that render on the GPU and hand back CPU tensors
(any ``DataLoader`` worker hands its batches back on the CPU).

Everything is a pure function of ``(seed, epoch, index)``: resuming a run replays the same samples.
Objects: with ``procedural_objects = N > 0`` a fixed set of N objects (index i is object i); else an
endless stream, object ``epoch * procedural_epoch_size + i``. Validation objects come from a disjoint
range (``VAL_OBJECT_OFFSET + i``), always with the same cameras, the default lights and the
configured background.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset, get_worker_info

from mira.cameras import ZERO123_FOV_DEG, intrinsics_from_fov, look_at, spherical_to_cartesian, transform_cameras
from mira.config import MiraConfig
from mira.data.procedural.lighting import Lighting, default_lighting, random_lighting
from mira.data.procedural.render import render_views
from mira.data.procedural.sampling import sample_objects
from mira.data.source_view import prepare_training_source_view
from mira.devices import to_device_async

VAL_OBJECT_OFFSET = 1_000_000_000
# The source view is rendered this many times larger than the model input, then framed (anti-aliased).
SOURCE_SUPERSAMPLING = 2
# Target views: rays per pixel along each axis (anti-aliased edges, like Blender's renders).
TARGET_SUPERSAMPLING = 2
# The cameras of blender_scripts/dataset_rendering.py's defaults: distance U(2.2, 2.8), directions
# uniform on the sphere, a 35 mm lens on a 32 mm sensor.
CAMERA_DISTANCE_RANGE = (2.2, 2.8)
ELEVATION_RANGE_DEG = (-90.0, 90.0)
_CAMERA_STREAM, _SOURCE_STREAM = 11, 12


def sphere_cameras(count: int, rng: np.random.Generator) -> Tensor:
    """(count, 4, 4) OpenCV c2w looking at the origin: azimuth uniform, directions uniform on the
    sphere band of ``ELEVATION_RANGE_DEG``, distance uniform in ``CAMERA_DISTANCE_RANGE``."""
    low, high = (math.sin(math.radians(e)) for e in ELEVATION_RANGE_DEG)
    azimuth = rng.uniform(0.0, 360.0, size=count)
    elevation = np.degrees(np.arcsin(rng.uniform(low, high, size=count)))
    distance = rng.uniform(*CAMERA_DISTANCE_RANGE, size=count)
    eye = spherical_to_cartesian(*(torch.as_tensor(v, dtype=torch.float64) for v in (azimuth, elevation, distance)))
    return look_at(eye).float()


def mixed_lighting(indices: Sequence[int], seed: int, use_random: Tensor, device: torch.device | str) -> Lighting:
    """Per object: :func:`random_lighting` where ``use_random`` (B,) is true, else the default lights."""
    randomised = random_lighting(indices, seed, device)
    default = default_lighting(len(indices), device)
    suns = randomised.sun_direction.shape[1]
    pad = suns - default.sun_direction.shape[1]
    default = Lighting(environment=default.environment,
                       sun_direction=torch.cat([default.sun_direction, randomised.sun_direction[:, :pad]], dim=1),
                       sun_irradiance=torch.nn.functional.pad(default.sun_irradiance, (0, 0, 0, pad)),
                       sun_angle=torch.nn.functional.pad(default.sun_angle, (0, pad)))
    pick = to_device_async(use_random, device)

    def choose(a: Tensor, b: Tensor) -> Tensor:
        return torch.where(pick.view(-1, *([1] * (a.dim() - 1))), a, b)

    return Lighting(choose(randomised.environment, default.environment),
                    choose(randomised.sun_direction, default.sun_direction),
                    choose(randomised.sun_irradiance, default.sun_irradiance),
                    choose(randomised.sun_angle, default.sun_angle))


class ProceduralDataset(Dataset):
    """Procedural objects as training / validation samples (see the module docstring).

    Args:
        config: ``data.procedural_*``, ``data.supervision_k`` (K), ``data.render_size``,
            ``data.source_in_targets``, ``data.random_background``, ``data.fixed_source_view``,
            ``model.source_size`` and the source-view contract keys.
        split: "train" or "val".
        seed: object and sampling seed; default ``train.seed``.
        device: where objects are rendered (the training device).
        num_objects: validation: how many objects (default ``train.val_max_objects``).
    """

    renders_on_device = True

    def __init__(self, config: MiraConfig, split: str = "train", seed: int | None = None,
                 device: torch.device | str = "cpu", num_objects: int | None = None) -> None:
        if split not in ("train", "val"):
            raise ValueError(f"split must be 'train' or 'val', got '{split}'")
        self.config = config
        self.split = split
        self.seed = int(config.train.seed if seed is None else seed)
        self.device = torch.device(device)
        data = config.data
        if split == "val":
            self.num_objects = num_objects if num_objects is not None else max(1, config.train.val_max_objects)
        else:
            self.num_objects = num_objects if num_objects is not None else (data.procedural_objects or data.procedural_epoch_size)
        if self.num_objects < 1:
            raise ValueError(f"ProceduralDataset needs at least one object, got {self.num_objects}")
        self.epoch = 0
        self.num_skipped = 0
        self.intrinsics = intrinsics_from_fov(ZERO123_FOV_DEG)

    def __len__(self) -> int:
        return self.num_objects

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def object_index(self, index: int) -> int:
        """The procedural object shown by sample ``index`` in the current epoch."""
        if self.split == "val":
            return VAL_OBJECT_OFFSET + index
        if self.config.data.procedural_objects > 0:
            return index
        return self.epoch * self.num_objects + index

    def __getitem__(self, index: int) -> dict:
        return self.__getitems__([index])[0]

    def __getitems__(self, indices: Sequence[int]) -> list[dict]:
        """Render the samples ``indices`` together; returns one item dict per index (tensors on ``device``)."""
        for index in indices:
            if not 0 <= index < self.num_objects:
                raise IndexError(f"index {index} out of range for {self.num_objects} procedural objects")
        batch = self._render_batch([int(i) for i in indices])
        if get_worker_info() is not None:  # a data worker process: CPU tensors back to the training process
            batch = {key: value.cpu() for key, value in batch.items()}
        items = []
        for row, index in enumerate(indices):
            item = {key: value[row] for key, value in batch.items()}
            item["object_id"] = f"procedural_{self.object_index(int(index)):010d}"
            items.append(item)
        return items

    # ------------------------------------------------------------------ internals
    def _sample_rng(self, index: int, stream: int) -> np.random.Generator:
        epoch = 0 if self.split == "val" else self.epoch
        return np.random.default_rng(np.random.SeedSequence([self.seed, epoch, index, stream]))

    def _cameras_and_colours(self, indices: list[int], views: int) -> tuple[Tensor, Tensor, Tensor]:
        """Per sample: c2w (B, views, 4, 4) (view 0 the source), background (B, 3), random-light flags (B,)."""
        data, train = self.config.data, self.split == "train"
        c2w, backgrounds, lights = [], [], []
        for index in indices:
            rng = self._sample_rng(index, _CAMERA_STREAM)
            cameras = sphere_cameras(views, rng)
            if data.fixed_source_view or not train:
                source_rng = np.random.default_rng(np.random.SeedSequence([self.seed, self.object_index(index), _SOURCE_STREAM]))
                cameras[0] = sphere_cameras(1, source_rng)[0]
            c2w.append(cameras)
            if train and data.random_background:
                backgrounds.append(torch.from_numpy(rng.uniform(0.0, 1.0, size=3)).float())
            else:
                backgrounds.append(torch.tensor(self.config.renderer.background_color, dtype=torch.float32))
            lights.append(bool(train and rng.uniform() < data.procedural_random_lighting))
        return torch.stack(c2w), torch.stack(backgrounds), torch.tensor(lights)

    def _render_batch(self, indices: list[int]) -> dict[str, Tensor]:
        config, device = self.config, self.device
        k = config.data.supervision_k
        objects_ids = [self.object_index(i) for i in indices]
        objects = sample_objects(objects_ids, self.seed, device)
        in_targets = config.data.source_in_targets
        c2w, background, random_lights = self._cameras_and_colours(indices, k + (0 if in_targets else 1))
        c2w, background = to_device_async(c2w, device), to_device_async(background, device)
        lighting = mixed_lighting(objects_ids, self.seed, random_lights, device)
        batch = len(indices)
        intrinsics = to_device_async(self.intrinsics, device).expand(batch, c2w.shape[1], 4)
        source_size = SOURCE_SUPERSAMPLING * config.model.source_size
        source_rgba = render_views(objects, c2w[:, :1], intrinsics[:, :1], source_size, source_size,
                                   lighting=lighting, supersample=1)[:, 0]
        prepared = prepare_training_source_view(source_rgba, c2w[:, 0], intrinsics[:, 0], config, background)
        target_c2w = c2w if in_targets else c2w[:, 1:]
        size = config.data.render_size
        targets = render_views(objects, target_c2w, intrinsics[:, :k], size, size, lighting=lighting,
                               supersample=TARGET_SUPERSAMPLING)  # (B, K, 4, H, W)
        alpha = targets[:, :, 3:]
        colour = background[:, None, :, None, None]
        return {
            "source_image": prepared.image,
            "source_c2w": prepared.c2w,
            "source_intrinsics": prepared.intrinsics,
            "target_images": targets[:, :, :3] * alpha + colour * (1.0 - alpha),
            "target_masks": alpha,
            "target_c2w": transform_cameras(prepared.world_to_canonical, target_c2w),
            "target_intrinsics": intrinsics[:, :k].contiguous(),
            "background": background,
            "world_to_canonical": prepared.world_to_canonical,
        }
