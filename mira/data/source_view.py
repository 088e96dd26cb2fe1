"""The source-view contract: how one view becomes the model's input image and camera.

Training (:class:`mira.data.MultiViewDataset`, the procedural and analytic scenes),
evaluation (:mod:`mira.evaluation.protocol`) and inference (``test.py``) all call
:func:`prepare_source_view`, so the model sees the same kind of input everywhere
(``docs/CAMERAS.md``, "The source view"):

1. **Framing.** The object's foreground box (alpha > ``FOREGROUND_ALPHA_THRESHOLD``) is
   centred in a square crop whose side is the box's longer side / ``foreground_ratio``; the crop
   (it may reach beyond the image: transparent there) is resampled to ``size`` x ``size``
   (``torchvision.ops.roi_align``: bilinear taps averaged over each output pixel, so large photos
   are anti-aliased) and composited over the background colour. The crop's intrinsics follow
   exactly (:func:`mira.cameras.crop_intrinsics`). An image without a camera is taken to come from
   the default camera of our renders: focal ``default_focal`` times its larger side, principal
   point ``default_principal_point``.
2. **Canonical pose.** The scene is re-expressed by a similarity transform
   (:func:`mira.cameras.source_to_canonical`) so that the source camera sits at the canonical pose
   (azimuth 0, elevation 0, looking at the origin) at distance ``distance_per_focal * f``, where
   ``f`` is the framed view's normalised focal length. Framing keeps an object's image size fixed,
   so this puts every object at about the same size in the canonical world (its visible half-extent
   is about ``foreground_ratio * distance_per_focal / 2``), and the perspective follows the real
   camera: a photo framed tightly from far away keeps its weak perspective. The similarity
   changes no image, so the targets stay exact (:func:`mira.cameras.transform_cameras`).
   ``camera_azimuth_deg`` turns the canonical pose about +Z (OpenLRM's source camera: -90).
   With ``model_focal`` > 0 (OpenLRM's contract) the model is always told that normalised focal
   (principal point (0.5, 0.5) for a photo) at distance ``distance_per_focal * model_focal``: views
   with a camera are cropped so that their framed focal *is* ``model_focal`` (crop side = focal in
   pixels / ``model_focal``, centred on the object; the told camera is the true one), photos are
   framed by ``foreground_ratio`` and assumed to have it.
3. **Staying in the box.** When the object's radius is known (training and evaluation data are
   normalised to ``object_radius``), the crop is enlarged where needed so the canonical object
   stays within ``CANONICAL_RADIUS_LIMIT`` of the renderer box (an elongated object seen end-on
   would otherwise be scaled up past it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from torch import Tensor
from torchvision.ops import roi_align

from mira.cameras import canonical_source_c2w, crop_intrinsics, source_to_canonical
from mira.config import MiraConfig

# Pixels with alpha above this count as the object when its box is measured.
FOREGROUND_ALPHA_THRESHOLD = 0.1
# The canonical object's bounding radius may fill at most this fraction of the box half-side.
CANONICAL_RADIUS_LIMIT = 0.95


class EmptyForegroundError(ValueError):
    """An image has no pixel with alpha above the threshold: there is no object to frame."""


@dataclass(frozen=True)
class SourceFraming:
    """The settings of the contract (``cfg.data`` keys, see :meth:`from_config`).

    Attributes:
        size: side S of the model input (``model.source_size``).
        foreground_ratio: longer side of the object's box / side of the input, in (0, 1].
        distance_per_focal: the canonical source camera's distance per unit of normalised focal.
        default_focal: normalised focal (focal / larger image side) assumed for an image without camera.
        default_principal_point: (cx/W, cy/H) assumed for an image without camera.
        camera_azimuth_deg: azimuth of the canonical source camera.
        model_focal: > 0: the normalised focal the model is always told (see the module docstring).
    """

    size: int
    foreground_ratio: float = 0.85
    distance_per_focal: float = 1.6
    default_focal: float = 1.09375
    default_principal_point: tuple[float, float] = (0.5, 0.5)
    camera_azimuth_deg: float = 0.0
    model_focal: float = 0.0

    def __post_init__(self) -> None:
        if self.size < 1:
            raise ValueError(f"source size must be positive, got {self.size}")
        if not 0.0 < self.foreground_ratio <= 1.0:
            raise ValueError(f"foreground_ratio must be in (0, 1], got {self.foreground_ratio}")
        if self.distance_per_focal <= 0 or self.default_focal <= 0:
            raise ValueError("distance_per_focal and default_focal must be positive, got "
                             f"{self.distance_per_focal} and {self.default_focal}")

    @classmethod
    def from_config(cls, config: MiraConfig, foreground_ratio: float | None = None) -> "SourceFraming":
        """The contract of ``config`` (``foreground_ratio`` overrides ``data.source_foreground_ratio``)."""
        data = config.data
        ratio = data.source_foreground_ratio if foreground_ratio is None else foreground_ratio
        return cls(size=config.model.source_size, foreground_ratio=ratio,
                   distance_per_focal=data.source_distance_per_focal, default_focal=data.focal_length,
                   default_principal_point=(float(data.principal_point[0]), float(data.principal_point[1])),
                   camera_azimuth_deg=data.source_camera_azimuth_deg, model_focal=data.source_model_focal)


@dataclass
class SourceView:
    """Model input of B source views.

    Attributes:
        image: (B, 3, S, S) RGB in [0, 1], the framed object over the background colour.
        alpha: (B, 1, S, S) the framed object's alpha (a supervision mask of the source view).
        c2w: (B, 4, 4) the canonical source pose (OpenCV).
        intrinsics: (B, 4) normalised intrinsics of the framed image.
        crop_box: (B, 4) the square crop (left, top, right, bottom) in pixels of the original image.
        world_to_canonical: (B, 4, 4) similarities taking the views' world to the canonical one;
            None when the views came without cameras (inference on a photo).
    """

    image: Tensor
    alpha: Tensor
    c2w: Tensor
    intrinsics: Tensor
    crop_box: Tensor
    world_to_canonical: Tensor | None


def default_intrinsics(width: int, height: int, framing: SourceFraming) -> Tensor:
    """(4,) normalised intrinsics assumed for a ``width`` x ``height`` image without camera:
    square pixels, focal ``default_focal * max(width, height)`` pixels (Blender's sensor fit AUTO)."""
    focal_pixels = framing.default_focal * max(width, height)
    cx, cy = framing.default_principal_point
    return torch.tensor([focal_pixels / width, focal_pixels / height, cx, cy], dtype=torch.float32)


def foreground_boxes(alpha: Tensor, threshold: float = FOREGROUND_ALPHA_THRESHOLD) -> Tensor:
    """Boxes (B, 4) = (left, top, right, bottom) in pixels (right/bottom exclusive) of ``alpha > threshold``.

    Args:
        alpha: (B, H, W).
    Raises:
        EmptyForegroundError: an image has no foreground pixel.
    """
    inside = alpha > threshold
    rows, cols = inside.any(dim=2), inside.any(dim=1)  # (B, H), (B, W)
    if not bool(rows.any(dim=1).all()):
        empty = [int(i) for i in torch.nonzero(~rows.any(dim=1))[:, 0]]
        raise EmptyForegroundError(f"no pixel has alpha > {threshold} in image(s) {empty} of the batch: nothing to frame")
    height, width = alpha.shape[-2:]
    row_index = torch.arange(height, device=alpha.device)
    col_index = torch.arange(width, device=alpha.device)
    top = torch.where(rows, row_index, height).amin(dim=1)
    bottom = torch.where(rows, row_index, -1).amax(dim=1) + 1
    left = torch.where(cols, col_index, width).amin(dim=1)
    right = torch.where(cols, col_index, -1).amax(dim=1) + 1
    return torch.stack([left, top, right, bottom], dim=1).to(torch.float32)


def square_crop_boxes(boxes: Tensor, foreground_ratio: float, min_side: Tensor | None = None) -> Tensor:
    """Square crops (B, 4) centred on ``boxes`` (B, 4), side = longer box side / ratio (at least ``min_side``)."""
    centre_x = 0.5 * (boxes[:, 0] + boxes[:, 2])
    centre_y = 0.5 * (boxes[:, 1] + boxes[:, 3])
    side = torch.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]) / foreground_ratio
    if min_side is not None:
        side = torch.maximum(side, min_side.to(side))
    half = 0.5 * side
    return torch.stack([centre_x - half, centre_y - half, centre_x + half, centre_y + half], dim=1)


def crop_and_resize(images: Tensor, boxes: Tensor, size: int) -> Tensor:
    """Resample the boxes (B, 4) of images (B, C, H, W) to (B, C, size, size).

    Pixel (i, j) of the output samples the box at ``left + (j + 0.5) * side / size`` (the pixel-centre
    convention of :mod:`mira.cameras`), averaging a grid of bilinear taps over the output pixel;
    outside the image reads 0. So the crop's intrinsics are exactly ``crop_intrinsics(.., box, ..)``.
    """
    indices = torch.arange(images.shape[0], dtype=images.dtype, device=images.device)[:, None]
    rois = torch.cat([indices, boxes.to(images)], dim=1)
    return roi_align(images, rois, output_size=(size, size), spatial_scale=1.0, sampling_ratio=-1, aligned=True)


def _as_batch_colour(background: Sequence[float] | Tensor, batch: int, like: Tensor) -> Tensor:
    colour = torch.as_tensor(background, dtype=like.dtype, device=like.device)
    return colour.expand(batch, 3) if colour.dim() == 1 else colour


def prepare_source_view(
    rgba: Tensor,
    framing: SourceFraming,
    background: Sequence[float] | Tensor,
    intrinsics: Tensor | None = None,
    c2w: Tensor | None = None,
    object_radius: float | None = None,
    box_half_side: float | None = None,
) -> SourceView:
    """Frame B source views and put their cameras in the canonical pose (see the module docstring).

    Args:
        rgba: (B, 4, H, W) straight-alpha RGBA in [0, 1].
        framing: the contract's settings.
        background: (3,) or (B, 3) RGB in [0, 1] to composite over.
        intrinsics: (B, 4) normalised intrinsics of the views; None: :func:`default_intrinsics`.
        c2w: (B, 4, 4) OpenCV camera-to-world of the views (they look at the object centre, the
            world origin); None for images without camera (then ``world_to_canonical`` is None).
        object_radius: bounding radius of the objects in the views' world (with ``c2w``): crops are
            enlarged so the canonical object stays within ``CANONICAL_RADIUS_LIMIT * box_half_side``.
        box_half_side: half side of the renderer box (needed with ``object_radius``).
    Returns:
        :class:`SourceView`.
    Raises:
        EmptyForegroundError: a view has no foreground pixel.
    """
    if rgba.dim() != 4 or rgba.shape[1] != 4:
        raise ValueError(f"prepare_source_view: rgba must be (B, 4, H, W), got {tuple(rgba.shape)}")
    batch, _, height, width = rgba.shape
    rgba = rgba.float()
    if intrinsics is None:
        intrinsics = default_intrinsics(width, height, framing).to(rgba.device).expand(batch, 4)
    intrinsics = intrinsics.to(rgba)
    min_side = None
    if framing.model_focal > 0:
        return _prepare_fixed_focal(rgba, framing, background, intrinsics, c2w)
    if c2w is not None and object_radius is not None:
        if box_half_side is None:
            raise ValueError("prepare_source_view: object_radius needs box_half_side")
        # s = k f_eff / z0 and f_eff = fx W / side, so s * radius <= limit  <=>  side >= fx W k radius / (limit z0).
        origin_depth = -(c2w[:, :3, 3] * c2w[:, :3, 2]).sum(-1).to(rgba)
        limit = CANONICAL_RADIUS_LIMIT * box_half_side
        min_side = intrinsics[:, 0] * width * framing.distance_per_focal * object_radius / (limit * origin_depth)
    boxes = square_crop_boxes(foreground_boxes(rgba[:, 3]), framing.foreground_ratio, min_side)
    premultiplied = torch.cat([rgba[:, :3] * rgba[:, 3:], rgba[:, 3:]], dim=1)
    crop = crop_and_resize(premultiplied, boxes, framing.size).clamp(0.0, 1.0)
    colour = _as_batch_colour(background, batch, crop)[:, :, None, None]
    alpha = crop[:, 3:]
    image = (crop[:, :3] + (1.0 - alpha) * colour).clamp(0.0, 1.0)
    framed = crop_intrinsics(intrinsics, tuple(boxes.unbind(1)), width, height)
    distance = framing.distance_per_focal * 0.5 * (framed[:, 0] + framed[:, 1])
    azimuth = framing.camera_azimuth_deg
    world_to_canonical = None if c2w is None else source_to_canonical(c2w.to(rgba), distance, azimuth)
    return SourceView(image=image, alpha=alpha, c2w=canonical_source_c2w(distance, azimuth), intrinsics=framed,
                      crop_box=boxes, world_to_canonical=world_to_canonical)


def _frame(rgba: Tensor, boxes: Tensor, size: int, background: Sequence[float] | Tensor) -> tuple[Tensor, Tensor]:
    """Crop ``boxes`` (B, 4) of straight-alpha ``rgba`` (B, 4, H, W) to ``size`` and composite:
    image (B, 3, S, S), alpha (B, 1, S, S)."""
    premultiplied = torch.cat([rgba[:, :3] * rgba[:, 3:], rgba[:, 3:]], dim=1)
    crop = crop_and_resize(premultiplied, boxes, size).clamp(0.0, 1.0)
    colour = _as_batch_colour(background, rgba.shape[0], crop)[:, :, None, None]
    alpha = crop[:, 3:]
    return (crop[:, :3] + (1.0 - alpha) * colour).clamp(0.0, 1.0), alpha


def _prepare_fixed_focal(rgba: Tensor, framing: SourceFraming, background: Sequence[float] | Tensor,
                         intrinsics: Tensor, c2w: Tensor | None) -> SourceView:
    """The contract with ``framing.model_focal`` > 0 (module docstring): with cameras, a crop of side
    ``fx W / model_focal`` centred on the object box (its framed focal is ``model_focal``); without,
    framing by ``foreground_ratio`` and the intrinsics ``(model_focal, model_focal, 0.5, 0.5)``."""
    batch, _, height, width = rgba.shape
    focal = framing.model_focal
    boxes = square_crop_boxes(foreground_boxes(rgba[:, 3]), framing.foreground_ratio)
    if c2w is not None:
        centre_x, centre_y = 0.5 * (boxes[:, 0] + boxes[:, 2]), 0.5 * (boxes[:, 1] + boxes[:, 3])
        half = 0.5 * intrinsics[:, 0] * width / focal
        boxes = torch.stack([centre_x - half, centre_y - half, centre_x + half, centre_y + half], dim=1)
    image, alpha = _frame(rgba, boxes, framing.size, background)
    if c2w is None:
        framed = torch.tensor([focal, focal, 0.5, 0.5], dtype=rgba.dtype, device=rgba.device).expand(batch, 4)
    else:
        framed = crop_intrinsics(intrinsics, tuple(boxes.unbind(1)), width, height)
    distance = torch.full((batch,), framing.distance_per_focal * focal, dtype=rgba.dtype, device=rgba.device)
    azimuth = framing.camera_azimuth_deg
    world_to_canonical = None if c2w is None else source_to_canonical(c2w.to(rgba), distance, azimuth)
    return SourceView(image=image, alpha=alpha, c2w=canonical_source_c2w(distance, azimuth), intrinsics=framed.contiguous(),
                      crop_box=boxes, world_to_canonical=world_to_canonical)


def box_half_side(config: MiraConfig) -> float:
    """Half the smallest side of the renderer box (the canonical object must fit in it)."""
    return 0.5 * min(hi - lo for lo, hi in zip(config.renderer.box_min, config.renderer.box_max))


def prepare_training_source_view(rgba: Tensor, c2w: Tensor, intrinsics: Tensor, config: MiraConfig,
                                 background: Sequence[float] | Tensor, object_radius: float | None = None) -> SourceView:
    """:func:`prepare_source_view` for views with cameras and objects normalised to ``data.object_radius``
    (training data and evaluation; ``object_radius`` when the data knows its object's own bounding
    radius): rgba (B, 4, H, W), c2w (B, 4, 4), intrinsics (B, 4)."""
    radius = config.data.object_radius if object_radius is None else object_radius
    return prepare_source_view(rgba, SourceFraming.from_config(config), background, intrinsics, c2w,
                               object_radius=radius, box_half_side=box_half_side(config))
