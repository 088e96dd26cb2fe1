"""``MultiViewDataset``: training samples of one source view + K supervision views per object.

The root folder (``cfg.data.data_dir``) holds ``index.json`` (``{"train": [...], "val": [...]}``)
and one folder per object in any layout :mod:`mira.data.formats` reads (our renders, zero123
``views_release``, NeRF-synthetic / nerfstudio).

Sampling is a pure function of ``(seed, epoch, index)`` (the epoch is fixed to 0 for the
validation split), so any ``Sampler`` - ``DistributedSampler`` included - and any number of
``DataLoader`` workers give the same samples. ``set_epoch`` reaches persistent workers too.
"""

from __future__ import annotations

import logging
import multiprocessing
import multiprocessing.context
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from mira.cameras import crop_intrinsics, transform_cameras
from mira.config import MiraConfig
from mira.data.formats import DatasetFormatError, ViewIndex, detect_format, read_view_index
from mira.data.images import ImageLoadError, composite, load_rgba, resize
from mira.data.index import read_index
from mira.data.source_view import prepare_training_source_view

LOGGER = logging.getLogger(__name__)
# Objects tried in turn (index, index + 1, ...) before a sample gives up.
MAX_OBJECT_ATTEMPTS = 16
# Camera/file indices of objects kept in memory per worker.
VIEW_INDEX_CACHE_SIZE = 4096


class SharedInt:
    """An integer shared with ``DataLoader`` worker processes (persistent workers included).

    It lives in shared memory while the dataset is sent to a worker process (fork or spawn);
    pickled at any other time (a copy, a checkpoint), it travels as a plain int.
    """

    def __init__(self, value: int = 0):
        self._shared = self._new_shared(value)

    @staticmethod
    def _new_shared(value: int):
        """A shared 64-bit integer with a lock of the spawn context, which travels to forked and spawned workers
        alike (a fork-context lock cannot be sent to a spawned worker: the procedural data's workers are spawned,
        mira/data/procedural/mix.py)."""
        return multiprocessing.get_context("spawn").Value("q", value)

    @property
    def value(self) -> int:
        return int(self._shared.value)

    @value.setter
    def value(self, value: int) -> None:
        self._shared.value = value

    def add(self, amount: int = 1) -> None:
        with self._shared.get_lock():
            self._shared.value += amount

    def __getstate__(self) -> dict:
        if multiprocessing.context.get_spawning_popen() is not None:
            return {"shared": self._shared}
        return {"plain": self.value}

    def __setstate__(self, state: dict) -> None:
        self._shared = state["shared"] if "shared" in state else self._new_shared(state["plain"])


class ObjectSkipped(Exception):
    """No usable view of this object (camera file unreadable or every image corrupt)."""


class MultiViewDataset(Dataset):
    """One item per object of a split.

    Args:
        config: uses ``data.data_dir``, ``data.render_size`` (H = W), ``data.supervision_k`` (K),
            ``data.random_crop_scale``, ``data.source_in_targets``, ``data.zero123_world_scale``,
            ``model.source_size`` (S) and ``renderer.background_color``.
        split: ``"train"`` or ``"val"`` (a list in ``<data_dir>/index.json``).
        seed: sampling seed; default ``config.train.seed``.
        root: dataset folder instead of ``config.data.data_dir``.

    Item (all float32)::

        source_image (3, S, S), source_c2w (4, 4), source_intrinsics (4,),
        target_images (K, 3, H, W), target_masks (K, 1, H, W), target_c2w (K, 4, 4),
        target_intrinsics (K, 4), background (3,), world_to_canonical (4, 4) (the similarity taking the
        object's world to the canonical frame), object_id (str), source_view (str) and target_views (K str): the view names

    The source view goes through the source-view contract
    (:func:`mira.data.source_view.prepare_training_source_view`): framed, its camera at the
    canonical pose, and every target camera moved into that canonical frame with it. Cameras are
    OpenCV c2w with normalised intrinsics; images are composited on ``background`` (random per
    training sample with ``random_background``, else ``background_color``). With
    ``source_in_targets`` the source view is also the first target (its whole image). Targets may
    be random resized crops (``random_crop_scale``: range of the crop side as a fraction of the
    image side) with matching intrinsics.
    A corrupt or missing image is skipped with a warning naming the file and counted in
    :attr:`num_skipped`; another view (or, failing all, another object) takes its place.
    """

    def __init__(self, config: MiraConfig, split: str = "train", seed: int | None = None,
                 root: str | Path | None = None) -> None:
        if split not in ("train", "val"):
            raise ValueError(f"split must be 'train' or 'val', got '{split}'")
        self.config = config
        self.split = split
        self.seed = int(config.train.seed if seed is None else seed)
        self.root = Path(root if root is not None else config.data.data_dir)
        index = read_index(self.root)
        self.object_ids: list[str] = list(index[split])
        self._epoch = SharedInt(0)
        self._skipped = SharedInt(0)
        self._bad_files: set[str] = set()
        self._view_cache: OrderedDict[str, ViewIndex] = OrderedDict()
        low, high = config.data.random_crop_scale
        if not 0.0 < low <= high <= 1.0:
            raise ValueError(f"random_crop_scale must satisfy 0 < low <= high <= 1, got {config.data.random_crop_scale}")

    # ------------------------------------------------------------------ public
    def __len__(self) -> int:
        return len(self.object_ids)

    def set_epoch(self, epoch: int) -> None:
        """Draw new views / crops for the training split (also in running persistent workers)."""
        self._epoch.value = int(epoch)

    @property
    def epoch(self) -> int:
        return self._epoch.value

    @property
    def num_skipped(self) -> int:
        """Image files skipped so far (corrupt or missing), over all worker processes."""
        return self._skipped.value

    def __getitem__(self, index: int) -> dict:
        return self.draw(index, self.epoch if self.split == "train" else 0)

    def draw(self, index: int, epoch: int) -> dict:
        """The item of object ``index`` as epoch ``epoch`` samples it (views, crops, background: a pure function
        of ``(seed, epoch, index)``); ``dataset[index]`` is ``draw(index, current epoch)``. A mix of datasets
        (:class:`mira.data.procedural.mix.RenderMixDataset`) draws the same object in several samples of one
        epoch with distinct ``epoch`` keys."""
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} objects")
        for attempt in range(min(MAX_OBJECT_ATTEMPTS, len(self))):
            object_id = self.object_ids[(index + attempt) % len(self)]
            rng = np.random.default_rng([self.seed, epoch, index, attempt])
            try:
                return self._sample(object_id, rng)
            except ObjectSkipped as reason:
                LOGGER.warning("skipping object %s: %s", object_id, reason)
        raise RuntimeError(
            f"{MAX_OBJECT_ATTEMPTS} objects in a row from {self.root} (starting at {self.object_ids[index]}) "
            "have no readable views; check the dataset (load_input_data.py re-renders broken objects)"
        )

    def view_index(self, object_id: str) -> ViewIndex:
        """Cameras and image files of an object (cached)."""
        if object_id in self._view_cache:
            self._view_cache.move_to_end(object_id)
            return self._view_cache[object_id]
        folder = self.root / object_id
        try:
            scale = self.config.data.zero123_world_scale if detect_format(folder) == "zero123" else None
            views = read_view_index(folder, world_scale=scale)
        except DatasetFormatError as error:
            raise ObjectSkipped(str(error)) from error
        self._view_cache[object_id] = views
        if len(self._view_cache) > VIEW_INDEX_CACHE_SIZE:
            self._view_cache.popitem(last=False)
        return views

    # ------------------------------------------------------------------ sampling
    def _sample(self, object_id: str, rng: np.random.Generator) -> dict:
        views = self.view_index(object_id)
        k = self.config.data.supervision_k
        order = rng.permutation(len(views))
        wanted = k if self.config.data.source_in_targets else k + 1
        chosen, images = self._load_first(views, order, wanted)
        if len(chosen) < wanted:  # fewer readable views than needed: repeat some
            extra = rng.integers(0, len(chosen), size=wanted - len(chosen))
            chosen += [chosen[i] for i in extra]
            images += [images[i] for i in extra]
        source, targets = 0, (list(range(k)) if self.config.data.source_in_targets else list(range(1, k + 1)))
        return self._assemble(object_id, views, chosen, images, source, targets, rng)

    def _load_first(self, views: ViewIndex, order: np.ndarray, wanted: int) -> tuple[list[int], list[Tensor]]:
        """Load views in ``order`` until ``wanted`` were read; corrupt ones are skipped and counted."""
        chosen, images = [], []
        for view in order:
            if len(chosen) == wanted:
                break
            path = views.image_paths[int(view)]
            try:
                images.append(load_rgba(path))
            except ImageLoadError as error:
                self._skip_file(path, error)
                continue
            chosen.append(int(view))
        if not chosen:
            raise ObjectSkipped(f"none of its {len(views)} images could be read")
        return chosen, images

    def _skip_file(self, path: Path, error: Exception) -> None:
        if str(path) not in self._bad_files:
            self._bad_files.add(str(path))
            self._skipped.add(1)
            LOGGER.warning("skipping unreadable image %s (%s)", path, error)

    def background(self, rng: np.random.Generator) -> Tensor:
        """(3,) the sample's background: uniform random RGB when training with ``random_background``."""
        if self.split == "train" and self.config.data.random_background:
            return torch.from_numpy(rng.uniform(0.0, 1.0, size=3)).float()
        return torch.tensor(self.config.renderer.background_color, dtype=torch.float32)

    def source_background(self, background: Tensor) -> Tensor:
        """(3,) the source image's background: the sample's random one in training with ``random_background``,
        else ``data.source_background_color`` when the checkpoint's contract names one (TripoSR's grey),
        else ``background``."""
        if (self.split == "train" and self.config.data.random_background) or self.config.data.source_background_color is None:
            return background
        return torch.tensor(self.config.data.source_background_color, dtype=torch.float32)

    def _assemble(self, object_id: str, views: ViewIndex, chosen: list[int], images: list[Tensor],
                  source: int, targets: list[int], rng: np.random.Generator) -> dict:
        background = self.background(rng)
        size_t = self.config.data.render_size
        try:
            prepared = prepare_training_source_view(
                images[source][None].float(), views.c2w[chosen[source]][None].float(),
                views.intrinsics[chosen[source]][None].float(), self.config, self.source_background(background))
        except ValueError as error:  # empty image, object centre behind the camera
            raise ObjectSkipped(f"source view {views.image_paths[chosen[source]]}: {error}") from error
        target_rgb, target_mask, target_intr = [], [], []
        for t in targets:
            image, intrinsics = self._random_crop(images[t], views.intrinsics[chosen[t]], rng)
            target_rgb.append(resize(composite(image, background), size_t))
            target_mask.append(resize(image[3:4], size_t))
            target_intr.append(intrinsics)
        target_c2w = transform_cameras(prepared.world_to_canonical, views.c2w[[chosen[t] for t in targets]][None].float())
        return {
            "source_image": prepared.image[0],
            "source_c2w": prepared.c2w[0],
            "source_intrinsics": prepared.intrinsics[0],
            "target_images": torch.stack(target_rgb).float(),
            "target_masks": torch.stack(target_mask).float(),
            "target_c2w": target_c2w[0],
            "target_intrinsics": torch.stack(target_intr).float(),
            "background": background,
            "world_to_canonical": prepared.world_to_canonical[0],
            "object_id": object_id,
            "source_view": views.names[chosen[source]],
            "target_views": [views.names[chosen[t]] for t in targets],
        }

    def _random_crop(self, rgba: Tensor, intrinsics: Tensor, rng: np.random.Generator) -> tuple[Tensor, Tensor]:
        """A square crop of side ``U(random_crop_scale) * min(H, W)`` pixels at a random place.

        Args: rgba (4, H, W), intrinsics (4,). Returns the crop (4, c, c) and its intrinsics (4,).
        """
        low, high = self.config.data.random_crop_scale
        height, width = rgba.shape[-2:]
        if high >= 1.0 and low >= 1.0 and height == width:
            return rgba, intrinsics
        side = max(1, min(height, width, int(round(rng.uniform(low, high) * min(height, width)))))
        left = int(rng.integers(0, width - side + 1))
        top = int(rng.integers(0, height - side + 1))
        crop = rgba[:, top:top + side, left:left + side]
        box = (float(left), float(top), float(left + side), float(top + side))
        return crop, crop_intrinsics(intrinsics, box, width, height)
