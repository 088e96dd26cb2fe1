"""``load_object_views``: every view of one object folder as tensors (evaluation, fitting, tests)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import torch
from torch import Tensor

from mira.data.formats import ViewIndex, read_view_index
from mira.data.images import ImageLoadError, load_rgba, resize

LOGGER = logging.getLogger(__name__)


@dataclass
class ObjectViews:
    """The views of one object.

    Attributes:
        images: (N, 4, H, W) float RGBA in [0, 1], straight alpha.
        c2w: (N, 4, 4) float32 camera-to-world, OpenCV camera axes (see :mod:`mira.cameras`).
        intrinsics: (N, 4) float32 normalised ``(fx/W, fy/H, cx/W, cy/H)``.
        names: N view names (image file names without suffix).
        mesh_path: ground-truth mesh in the same world frame (our renders with ``--save_mesh``).
        skipped: image files that could not be read (each also logged as a warning).
        format: ``"mira"``, ``"transforms"`` or ``"zero123"``.
    """

    images: Tensor
    c2w: Tensor
    intrinsics: Tensor
    names: list[str]
    mesh_path: Path | None = None
    skipped: list[Path] = field(default_factory=list)
    format: str = "mira"

    def __len__(self) -> int:
        return len(self.names)


def load_object_views(
    object_dir: str | Path,
    *,
    split: str | None = None,
    world_scale: float | None = None,
    views: Sequence[int] | None = None,
    size: int | None = None,
) -> ObjectViews:
    """Load an object folder in any supported layout (see :mod:`mira.data.formats`).

    Args:
        object_dir: our render folder, a zero123 ``views_release`` folder, or a NeRF-synthetic /
            nerfstudio folder.
        split: NeRF-synthetic split (``"train"``, ``"val"``, ``"test"``); default all.
        world_scale: scale of the folder's world into ours; default per format (zero123: 1.6).
        views: indices of the views to load; default all.
        size: resize every image to ``size`` x ``size`` (intrinsics are normalised, so unchanged);
            required when the images differ in size.
    Returns:
        :class:`ObjectViews`; a corrupt or missing image is skipped with a warning naming it.
    Raises:
        DatasetFormatError: no readable camera file; ImageLoadError: no readable image at all.
    """
    index = read_view_index(object_dir, split=split, world_scale=world_scale)
    selected = list(range(len(index))) if views is None else [int(v) for v in views]
    images, kept, skipped = [], [], []
    for i in selected:
        path = index.image_paths[i]
        try:
            image = load_rgba(path)
        except ImageLoadError as error:
            LOGGER.warning("skipping view: %s", error)
            skipped.append(path)
            continue
        images.append(resize(image, size) if size is not None else image)
        kept.append(i)
    if not images:
        raise ImageLoadError(Path(object_dir), f"none of its {len(selected)} view images could be read")
    _check_same_size(images, index, kept)
    names = index.names
    return ObjectViews(
        images=torch.stack(images),
        c2w=index.c2w[kept],
        intrinsics=index.intrinsics[kept],
        names=[names[i] for i in kept],
        mesh_path=index.mesh_path,
        skipped=skipped,
        format=index.format,
    )


def _check_same_size(images: list[Tensor], index: ViewIndex, kept: list[int]) -> None:
    shapes = {tuple(image.shape[-2:]) for image in images}
    if len(shapes) > 1:
        raise ValueError(
            f"the views of {index.object_dir} differ in size ({sorted(shapes)}): pass size=... to load_object_views"
        )
