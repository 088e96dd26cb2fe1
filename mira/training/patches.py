"""Random square patches of the supervision views: the pixels the model renders in a training step.

Rendering a ``P x P`` patch of each ``H x W`` view (instead of the whole view) bounds the
number of rays per step while keeping image-shaped outputs for LPIPS. Positions are drawn
from torch's global CPU generator, whose state every checkpoint stores.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from mira.devices import to_device_async


@dataclass
class Patches:
    """Where each view's patch lies.

    Attributes:
        top, left: (B, V) integer pixel offsets of the patches' top-left corners.
        size: patch side P in pixels.
        image_size: side of the square views they are cut from.
    """

    top: Tensor
    left: Tensor
    size: int
    image_size: int

    def flat_indices(self) -> Tensor:
        """(B, V, P * P) row-major indices ``row * W + col`` into a flattened view."""
        offsets = torch.arange(self.size, device=self.top.device)
        rows = self.top[..., None, None] + offsets[:, None]  # (B, V, P, 1)
        cols = self.left[..., None, None] + offsets[None, :]  # (B, V, 1, P)
        return (rows * self.image_size + cols).flatten(-2)

    def pixel_uv(self) -> Tensor:
        """(B, V, P * P, 2) pixel-centre coordinates ``(u, v) = (col + 0.5, row + 0.5)``, row-major."""
        offsets = torch.arange(self.size, device=self.top.device, dtype=torch.float32) + 0.5
        v = self.top[..., None, None].float() + offsets[:, None]
        u = self.left[..., None, None].float() + offsets[None, :]
        u, v = torch.broadcast_tensors(u, v)
        return torch.stack([u, v], dim=-1).flatten(-3, -2)

    def gather(self, images: Tensor) -> Tensor:
        """Cut the patches out of views (B, V, C, H, W) -> (B, V, C, P, P)."""
        batch, views, channels, height, width = images.shape
        if height != self.image_size or width != self.image_size:
            raise ValueError(f"views are {height}x{width}, patches were drawn for {self.image_size}^2")
        index = self.flat_indices().to(images.device)[:, :, None, :].expand(-1, -1, channels, -1)
        flat = images.reshape(batch, views, channels, height * width)
        return flat.gather(-1, index).reshape(batch, views, channels, self.size, self.size)


def sample_patches(batch: int, views: int, image_size: int, patch_size: int, device: torch.device | str = "cpu") -> Patches:
    """Uniformly random ``patch_size``-sided patches, one per view.

    ``patch_size <= 0`` or ``>= image_size`` gives the whole view (offset 0). Offsets are
    drawn on the CPU (reproducible on any device) and moved to ``device``; to a GPU through pinned
    memory without waiting (a copy from pageable memory would synchronise the stream every step).
    """
    size = image_size if patch_size <= 0 or patch_size >= image_size else patch_size
    span = image_size - size + 1
    top = torch.randint(0, span, (batch, views))
    left = torch.randint(0, span, (batch, views))
    offsets = to_device_async(torch.stack([top, left]), device)  # (2, B, V)
    return Patches(top=offsets[0], left=offsets[1], size=size, image_size=image_size)


def to_patch_images(per_pixel: Tensor, size: int) -> Tensor:
    """Rendered per-pixel values (B, V, P * P, C) -> image-shaped (B, V, C, P, P)."""
    batch, views, pixels, channels = per_pixel.shape
    if pixels != size * size:
        raise ValueError(f"expected {size * size} pixels per view, got {pixels}")
    return per_pixel.reshape(batch, views, size, size, channels).permute(0, 1, 4, 2, 3)
