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
            rgb, alpha = image_to_float_rgba(image)
    except ImageLoadError:
        raise
    except Exception as error:  # PIL raises many types (OSError, SyntaxError, ValueError, ...)
        raise ImageLoadError(path, f"{type(error).__name__}: {error}") from error
    alpha = np.ones(rgb.shape[:2], dtype=np.float32) if alpha is None else alpha
    return torch.from_numpy(np.concatenate([rgb, alpha[..., None]], axis=-1)).permute(2, 0, 1).contiguous()


def image_to_float_rgba(image: Image.Image) -> tuple[np.ndarray, np.ndarray | None]:
    """Any PIL image -> float32 RGB (H, W, 3) in [0, 1] and alpha (H, W) in [0, 1] or None.

    16-bit and 32-bit integer greyscale (``I;16*``, ``I``) are scaled by their full range
    (65535 for values above 255), float images (``F``) are taken as [0, 1] unless larger.
    Alpha is None when the image has no alpha channel or it is fully opaque.
    """
    mode = image.mode
    if mode.startswith("I;16") or mode in ("I", "F"):
        values = np.asarray(image, dtype=np.float64)
        if mode == "F":
            scale = 1.0 if values.max(initial=0.0) <= 1.0 else 255.0
        else:
            scale = 65535.0 if values.max(initial=0.0) > 255 else 255.0
        grey = np.clip(values / scale, 0.0, 1.0).astype(np.float32)
        return np.repeat(grey[..., None], 3, axis=-1), None
    has_alpha = mode in ("RGBA", "LA", "PA", "RGBa", "La") or (mode == "P" and "transparency" in image.info)
    if has_alpha:
        rgba = np.asarray(image.convert("RGBA"), dtype=np.float32) / 255.0
        rgb, alpha = rgba[..., :3], rgba[..., 3]
        return rgb, (None if alpha.min() >= 1.0 else alpha)
    return np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0, None


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
