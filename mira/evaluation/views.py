"""Views prepared for evaluation: resized, composited on the background, split into train / held-out.

Every metric of ``mira.fit`` and ``mira.evaluate`` compares renders with these images
(``docs/EVALUATION.md``): the RGBA renders are composited over the renderer's background
colour at full resolution, then resized (antialiased bilinear) to ``size x size``. Resizing
the whole image keeps the normalised intrinsics valid, so cameras are used as they are.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import torch
from torch import Tensor

from mira.data.images import composite, resize


@dataclass
class ViewSet:
    """Posed views of one object, ready to compare with renders.

    Attributes:
        rgb: (N, 3, H, W) in [0, 1], composited over the background colour.
        mask: (N, 1, H, W) alpha in [0, 1].
        c2w: (N, 4, 4) OpenCV camera-to-world.
        intrinsics: (N, 4) normalised fx, fy, cx, cy.
        names: N view names (file stems).
    """

    rgb: Tensor
    mask: Tensor
    c2w: Tensor
    intrinsics: Tensor
    names: list[str]

    def __len__(self) -> int:
        return self.rgb.shape[0]

    @property
    def size(self) -> tuple[int, int]:
        """(H, W) of the images."""
        return int(self.rgb.shape[-2]), int(self.rgb.shape[-1])

    def subset(self, indices: Sequence[int]) -> "ViewSet":
        """The views at ``indices`` (in that order)."""
        index = torch.as_tensor(list(indices), dtype=torch.long)
        return ViewSet(
            rgb=self.rgb[index],
            mask=self.mask[index],
            c2w=self.c2w[index],
            intrinsics=self.intrinsics[index],
            names=[self.names[i] for i in index.tolist()],
        )

    def to(self, device: torch.device | str) -> "ViewSet":
        """A copy with every tensor on ``device``."""
        return ViewSet(
            rgb=self.rgb.to(device),
            mask=self.mask.to(device),
            c2w=self.c2w.to(device),
            intrinsics=self.intrinsics.to(device),
            names=list(self.names),
        )


def prepare_views(views: Any, size: int, background: Sequence[float]) -> ViewSet:
    """An :class:`ObjectViews` (``mira.data.load_object_views``) -> :class:`ViewSet` at ``size`` px.

    Args:
        views: has ``images`` (N, 4, H, W) RGBA in [0, 1], ``c2w`` (N, 4, 4) OpenCV,
            ``intrinsics`` (N, 4) normalised and ``names``.
        size: output side in pixels.
        background: RGB in [0, 1] to composite over (the renderer's ``background_color``).
    """
    if size < 1:
        raise ValueError(f"render size must be positive, got {size}")
    if views.images.dim() != 4 or views.images.shape[1] != 4:
        raise ValueError(f"expected RGBA images (N, 4, H, W), got {tuple(views.images.shape)}")
    images = views.images.float()
    return ViewSet(
        rgb=resize(composite(images, background), size),
        mask=resize(images[:, 3:4], size),
        c2w=views.c2w.float(),
        intrinsics=views.intrinsics.float(),
        names=list(views.names),
    )


def holdout_split(num_views: int, every: int) -> tuple[list[int], list[int]]:
    """Split view indices into (train, held-out): views ``0, every, 2 * every, ...`` are held out.

    The NeRF-synthetic / LLFF "every k-th view" convention (``i % every == 0``). ``every``
    must be >= 2 and leave at least one view on each side.
    """
    if every < 2:
        raise ValueError(f"holdout_every must be >= 2 (1 would hold out every view), got {every}")
    heldout = [i for i in range(num_views) if i % every == 0]
    train = [i for i in range(num_views) if i % every != 0]
    if not train or not heldout:
        raise ValueError(f"{num_views} views with holdout_every={every} leave no training or no held-out view")
    return train, heldout
