"""Reading view images: RGBA tensors, compositing on a background colour, resizing."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor


class ImageLoadError(OSError):
    """An image file is missing, truncated or not an image. ``path`` names it."""

    def __init__(self, path: Path, reason: str):
        super().__init__(f"cannot read image {path}: {reason}")
        self.path = Path(path)
        self.reason = reason


def load_rgba(path: str | Path) -> Tensor:
    """An image file as float RGBA (4, H, W) in [0, 1] with straight (not premultiplied) alpha.

    Images without alpha get alpha 1; 16-bit images keep their precision.
    Raises :class:`ImageLoadError` for a missing or corrupt file.
    """
    path = Path(path)
    if not path.is_file():
        raise ImageLoadError(path, "file not found")
    try:
        with Image.open(path) as image:
            image.load()  # decode now: truncated files fail here, not later
            array = _to_rgba_array(image)
    except ImageLoadError:
        raise
    except Exception as error:  # PIL raises many types (OSError, SyntaxError, ValueError, ...)
        raise ImageLoadError(path, f"{type(error).__name__}: {error}") from error
    return torch.from_numpy(array).permute(2, 0, 1).contiguous()


def _to_rgba_array(image: Image.Image) -> np.ndarray:
    """(H, W, 4) float32 in [0, 1] from any PIL mode."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):  # 16-bit grey
        grey = np.asarray(image, dtype=np.float32) / 65535.0
        return np.concatenate([np.repeat(grey[..., None], 3, axis=-1), np.ones_like(grey)[..., None]], axis=-1)
    if image.mode != "RGBA":
        image = image.convert("RGBA")
    return np.asarray(image, dtype=np.float32) / 255.0


def composite(rgba: Tensor, background: Sequence[float] | Tensor) -> Tensor:
    """Straight-alpha RGBA (..., 4, H, W) over a background colour (3,) -> RGB (..., 3, H, W)."""
    background = torch.as_tensor(background, dtype=rgba.dtype, device=rgba.device).view(3, 1, 1)
    alpha = rgba[..., 3:4, :, :]
    return rgba[..., :3, :, :] * alpha + background * (1.0 - alpha)


def resize(images: Tensor, size: int | tuple[int, int]) -> Tensor:
    """Antialiased bilinear resize of (C, H, W) or (B, C, H, W) images to ``size`` (square or (H, W)).

    Pixel centres keep the convention of :mod:`mira.cameras`, so normalised intrinsics are unchanged.
    """
    size = (size, size) if isinstance(size, int) else tuple(size)
    if tuple(images.shape[-2:]) == size:
        return images
    batched = images if images.dim() == 4 else images.unsqueeze(0)
    out = F.interpolate(batched, size=size, mode="bilinear", align_corners=False, antialias=True)
    return (out if images.dim() == 4 else out[0]).clamp(0.0, 1.0)


def image_size(path: str | Path) -> tuple[int, int]:
    """(width, height) of an image from its header; :class:`ImageLoadError` if unreadable."""
    path = Path(path)
    try:
        with Image.open(path) as image:
            return image.size
    except FileNotFoundError as error:
        raise ImageLoadError(path, "file not found") from error
    except Exception as error:
        raise ImageLoadError(path, f"{type(error).__name__}: {error}") from error
