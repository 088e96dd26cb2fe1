"""Projective attention bias: triplane tokens look first at the image patches they project onto.

Each triplane token stands for a line through the box: the token at (row, column) of plane (a0, a1)
is the set of points whose a0 / a1 coordinates are its cell centre, the third axis free. Seen by the
source camera that line is a 2D segment in the image. :class:`ProjectiveAttentionBias` measures, per
sample, the distance from every image patch centre to every token's segment (in patch widths), and each
decoder block's cross-attention adds ``-slope_h * distance^2`` to head h's logits (slopes learned,
:class:`AttentionLocality`). The leading (CLS) tokens are never penalised.

Why: with a DINOv2 encoder trained from scratch (``configs/mira-demo.json``) the image tokens start
without any spatial meaning to the triplane tokens, and cross-attention learns where to look only
slowly: the decoder fits a blurred mean object for thousands of steps (docs/TRAINING.md). The
geometry is known exactly (the source camera is an input), so it is given: the ALiBi idea (a fixed
distance penalty on attention logits, Press et al. 2022) with the distance measured by projection.
The slopes start at a geometric range per head (sharp: about one patch; wide: about half the image),
so some heads are local and some nearly global from the first step; content still decides within them.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mira.cameras import project_points

# Initial slopes of the heads, in 1 / (patch width)^2: from SHARPEST_SLOPE (a Gaussian of about 0.7 patch)
# down to WIDEST_SLOPE (about 6 patches) geometrically.
SHARPEST_SLOPE = 1.0
WIDEST_SLOPE = 1.0 / 64.0


def initial_slopes(num_heads: int) -> Tensor:
    """(H,) slopes from :data:`SHARPEST_SLOPE` to :data:`WIDEST_SLOPE`, geometric (one head: the sharpest)."""
    if num_heads == 1:
        return torch.tensor([SHARPEST_SLOPE])
    exponents = torch.linspace(0.0, 1.0, num_heads, dtype=torch.float64)
    return (SHARPEST_SLOPE * (WIDEST_SLOPE / SHARPEST_SLOPE) ** exponents).float()


def inverse_softplus(values: Tensor) -> Tensor:
    """x with ``softplus(x) = values`` (values > 0)."""
    return values + torch.log(-torch.expm1(-values))


class AttentionLocality(nn.Module):
    """One block's learned per-head slopes: squared distances (B, N, T) -> logit bias (B, H, N, T)."""

    def __init__(self, num_heads: int) -> None:
        super().__init__()
        self.raw_slope = nn.Parameter(inverse_softplus(initial_slopes(num_heads)))

    def slopes(self) -> Tensor:
        """(H,) positive slopes."""
        return F.softplus(self.raw_slope)

    def forward(self, squared_distance: Tensor) -> Tensor:
        """``-slope_h * squared_distance`` (B, N, T) -> (B, H, N, T), in the distances' dtype."""
        slopes = self.slopes().to(squared_distance.dtype)
        return -slopes.view(1, -1, 1, 1) * squared_distance.unsqueeze(1)


def token_segments(resolution: int, plane_axes: Sequence[Sequence[int]], box_min: Sequence[float],
                   box_max: Sequence[float]) -> Tensor:
    """(3 * R * R, 2, 3) the two ends of each triplane token's line through the box (world units).

    Token order is the decoder's: planes in ``plane_axes`` order, each R x R row-major; row r indexes
    the plane's second axis and column c its first (as ``grid_sample`` reads the planes), at cell
    centres ``box_min + (i + 0.5) / R * extent``; the free axis runs from ``box_min`` to ``box_max``.
    """
    low = torch.tensor(box_min, dtype=torch.float64)
    high = torch.tensor(box_max, dtype=torch.float64)
    centres = (torch.arange(resolution, dtype=torch.float64) + 0.5) / resolution
    rows, cols = torch.meshgrid(centres, centres, indexing="ij")
    segments = []
    for first, second in plane_axes:
        free = 3 - first - second
        ends = torch.empty(resolution * resolution, 2, 3, dtype=torch.float64)
        ends[:, :, first] = (low[first] + cols.flatten() * (high[first] - low[first]))[:, None]
        ends[:, :, second] = (low[second] + rows.flatten() * (high[second] - low[second]))[:, None]
        ends[:, 0, free] = low[free]
        ends[:, 1, free] = high[free]
        segments.append(ends)
    return torch.cat(segments).float()


def patch_centres(height: int, width: int, patch: int) -> Tensor:
    """(rows * cols, 2) pixel (u, v) centres of the ViT's patches, row-major (rows = H // p, cols = W // p)."""
    rows, cols = height // patch, width // patch
    v, u = torch.meshgrid((torch.arange(rows) + 0.5) * patch, (torch.arange(cols) + 0.5) * patch, indexing="ij")
    return torch.stack([u.flatten(), v.flatten()], dim=-1).float()


def point_segment_squared_distance(points: Tensor, start: Tensor, end: Tensor) -> Tensor:
    """Squared 2D distances from points (M, 2) to segments (B, N, 2) -> (B, N, M)."""
    direction = end - start  # (B, N, 2)
    length2 = (direction * direction).sum(-1, keepdim=True).clamp_min(1e-12)  # (B, N, 1)
    offset = points[None, None] - start[:, :, None]  # (B, N, M, 2)
    t = ((offset * direction[:, :, None]).sum(-1) / length2).clamp(0.0, 1.0)  # (B, N, M)
    closest = offset - t[..., None] * direction[:, :, None]
    return (closest * closest).sum(-1)


class ProjectiveAttentionBias(nn.Module):
    """Squared distances, in patch widths, from each image token to each triplane token's projected line.

    Args:
        resolution: R, triplane tokens per plane side.
        plane_axes: the world axes of each plane (``mira.rendering.triplane.PLANE_AXES_BY_NAME``).
        box_min, box_max: the box the triplane spans (``renderer.box_min`` / ``box_max``).
        patch_size: the encoder's patch side p (pixels).
    """

    def __init__(self, resolution: int, plane_axes: Sequence[Sequence[int]], box_min: Sequence[float],
                 box_max: Sequence[float], patch_size: int) -> None:
        super().__init__()
        self.patch_size = int(patch_size)
        self.register_buffer("segments", token_segments(resolution, plane_axes, box_min, box_max), persistent=False)
        self._centres: dict[tuple[int, int, torch.device], Tensor] = {}  # patch centres per image size, in patches

    def patch_grid(self, height: int, width: int, device: torch.device) -> Tensor:
        """(rows * cols, 2) patch centres in patch widths for an H x W image, made once per size and device."""
        key = (height, width, device)
        if torch.compiler.is_compiling():  # traced into the graph, never cached from inside one
            return patch_centres(height, width, self.patch_size).to(device) / self.patch_size
        if key not in self._centres:
            self._centres[key] = patch_centres(height, width, self.patch_size).to(device) / self.patch_size
        return self._centres[key]

    @torch.no_grad()
    def forward(self, source_c2w: Tensor, source_intrinsics: Tensor, image_size: tuple[int, int],
                num_image_tokens: int) -> Tensor:
        """Squared distances for one batch.

        Args:
            source_c2w: (B, 4, 4) OpenCV camera-to-world of the source view.
            source_intrinsics: (B, 4) its normalised intrinsics.
            image_size: (H, W) of the encoder's input images.
            num_image_tokens: T, leading (CLS) tokens + (H // p) * (W // p) patches.
        Returns:
            (B, 3 * R * R, T) float32, 0 for the leading tokens.
        """
        height, width = image_size
        centres = self.patch_grid(height, width, source_c2w.device)
        leading = num_image_tokens - centres.shape[0]
        if leading < 0:
            raise ValueError(f"projective attention bias: {num_image_tokens} image tokens cannot hold the "
                             f"{centres.shape[0]} patches of a {height} x {width} image with patch {self.patch_size}")
        batch, num_tokens = source_c2w.shape[0], self.segments.shape[0]
        ends = self.segments.reshape(1, num_tokens * 2, 3).expand(batch, -1, -1)
        c2w = source_c2w.float()
        uv, _ = project_points(ends, c2w, source_intrinsics.float(), width, height)  # box in front: canonical pose
        uv = uv.view(batch, num_tokens, 2, 2) / self.patch_size
        distance = point_segment_squared_distance(centres, uv[:, :, 0], uv[:, :, 1])
        return F.pad(distance, (leading, 0))

