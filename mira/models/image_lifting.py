"""Pixel-aligned triplane features: every triplane cell reads the source image where its line projects.

A triplane cell at (row, column) of plane (a0, a1) stands for a line through the box (its a0 / a1
coordinates fixed, the third axis free). :class:`ImageLifting` places ``depth_samples`` points along
each cell's line, projects them into the source image with the source camera, and reads a feature map
of the image there (bilinear, ``grid_sample``). The ``depth_samples`` readings of a cell, in order
along the line, go through a small MLP into

* an offset added to the decoder's triplane tokens before the blocks (2 x 2 cells averaged per token),
  so that self- and cross-attention start from what the image shows at each token's place, and
* an offset added to the decoder's output triplane, at full cell resolution (the decoder's tokens
  are 2 x 2 cells each; this path carries the image's detail below a token).

The feature map is a two-layer convolutional stem on the image at half resolution plus the encoder's
patch features (projected, bilinearly upsampled): fine colour and edges, and the encoder's context.

Why: with an image encoder trained from scratch (no DINOv2 weights here, ``configs/mira-demo.json``)
the decoder's cross-attention learns where each triplane token should look only slowly; the projective
attention bias (``projective_bias.py``) tells it where, but the image still reaches the triplane only
through 12 x 12 patch tokens. The source camera is an input and the projection is exact, so the image
can be placed on the triplane directly, as pixel-aligned methods do (PixelNeRF, Yu et al. 2021, reads
image features at each query point's projection); here it is done once per cell, not per ray sample,
so the renderer is unchanged. For the plane facing the camera a cell's points project onto nearly one
pixel (its image-aligned feature); for the two others they trace an image row or column, which the
per-depth layout keeps in order. Both outputs start at zero, so a trained model without lifting grows
into one with it unchanged (``mira.training.growth``).
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mira.cameras import project_points
from mira.models.projective_bias import token_segments
from mira.models.transformer import NUM_PLANES


def cell_line_points(resolution: int, depth_samples: int, plane_axes: Sequence[Sequence[int]],
                     box_min: Sequence[float], box_max: Sequence[float]) -> Tensor:
    """(3 * N * N, depth_samples, 3) points along each triplane cell's line through the box (world units).

    Cells in the triplane's order (planes in ``plane_axes`` order, each N x N row-major, rows the plane's
    second axis, as ``token_segments``); along each line at the centres of ``depth_samples`` equal steps.
    """
    ends = token_segments(resolution, plane_axes, box_min, box_max)  # (3 N^2, 2, 3)
    fractions = (torch.arange(depth_samples, dtype=torch.float32) + 0.5) / depth_samples
    return ends[:, :1] + fractions[None, :, None] * (ends[:, 1:] - ends[:, :1])


class ImageLifting(nn.Module):
    """Pixel-aligned offsets for the decoder's tokens and output triplane (see the module docstring).

    Args:
        token_resolution: R, decoder tokens per plane side (the triplane has 2R cells per side).
        token_dim: D, width of the decoder's tokens.
        triplane_dim: C, channels per plane.
        encoder_dim: E, width of the image tokens.
        patch_size: the encoder's patch side p (pixels).
        plane_axes, box_min, box_max: the triplane's planes and box (``renderer`` config).
        channels: F, channels of the image feature map read along each line.
        depth_samples: P, points per cell line.
        hidden_dim: width of the per-cell MLP.
    """

    def __init__(self, token_resolution: int, token_dim: int, triplane_dim: int, encoder_dim: int, patch_size: int,
                 plane_axes: Sequence[Sequence[int]], box_min: Sequence[float], box_max: Sequence[float],
                 channels: int = 16, depth_samples: int = 16, hidden_dim: int = 64) -> None:
        super().__init__()
        self.token_resolution = int(token_resolution)
        self.cell_resolution = 2 * self.token_resolution
        self.patch_size = int(patch_size)
        self.channels = int(channels)
        self.depth_samples = int(depth_samples)
        self.stem = nn.Sequential(nn.Conv2d(3, channels, 3, stride=2, padding=1), nn.SiLU(),
                                  nn.Conv2d(channels, channels, 3, padding=1))
        self.patch_projection = nn.Linear(encoder_dim, channels)
        self.cell_mlp = nn.Sequential(nn.Linear(channels * depth_samples, hidden_dim), nn.SiLU())
        self.to_tokens = nn.Linear(hidden_dim, token_dim)
        self.to_cells = nn.Linear(hidden_dim, triplane_dim)
        for layer in (self.to_tokens, self.to_cells):  # start as no change (growth from a model without lifting)
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)
        points = cell_line_points(self.cell_resolution, depth_samples, plane_axes, box_min, box_max)
        self.register_buffer("line_points", points.reshape(1, -1, 3), persistent=False)

    def feature_map(self, images: Tensor, image_tokens: Tensor) -> Tensor:
        """(B, F, S/2, S/2) features of images (B, 3, S, S): the stem's + the patch tokens' (upsampled).

        ``image_tokens`` (B, T, E): leading (CLS) tokens, then the (S/p)^2 patches row-major.
        """
        fine = self.stem(images)
        rows, cols = images.shape[-2] // self.patch_size, images.shape[-1] // self.patch_size
        patches = image_tokens[:, image_tokens.shape[1] - rows * cols:]
        coarse = self.patch_projection(patches).transpose(1, 2).reshape(images.shape[0], self.channels, rows, cols)
        coarse = F.interpolate(coarse.to(fine.dtype), size=fine.shape[-2:], mode="bilinear", align_corners=False)
        return fine + coarse

    def read_lines(self, features: Tensor, source_c2w: Tensor, source_intrinsics: Tensor,
                   image_size: tuple[int, int]) -> Tensor:
        """(B, 3 * (2R)^2, P * F) the feature map (B, F, h, w) at each cell's P line points, in order along
        the line (zeros where a point projects outside the image)."""
        batch = features.shape[0]
        height, width = image_size
        points = self.line_points.expand(batch, -1, -1)
        uv, _ = project_points(points, source_c2w.float(), source_intrinsics.float(), width, height)  # box in front
        # pixels -> grid_sample's [-1, 1] (align_corners false); no host constant, so CUDA graphs can capture it
        grid = torch.stack([uv[..., 0] * (2.0 / width), uv[..., 1] * (2.0 / height)], dim=-1) - 1.0
        grid = grid.view(batch, -1, self.depth_samples, 2).to(features.dtype)
        sampled = F.grid_sample(features, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        return sampled.permute(0, 2, 3, 1).reshape(batch, grid.shape[1], self.depth_samples * self.channels)

    def forward(self, images: Tensor, image_tokens: Tensor, source_c2w: Tensor,
                source_intrinsics: Tensor) -> tuple[Tensor, Tensor]:
        """Lifted offsets for one batch.

        Args:
            images: (B, 3, S, S) the encoder's input images.
            image_tokens: (B, T, E) the encoder's output.
            source_c2w: (B, 4, 4) OpenCV camera-to-world of the source view.
            source_intrinsics: (B, 4) its normalised intrinsics.
        Returns:
            token offsets (B, 3 * R * R, D) and cell offsets (B, 3, C, 2R, 2R).
        """
        batch = images.shape[0]
        features = self.feature_map(images, image_tokens)
        lines = self.read_lines(features, source_c2w, source_intrinsics, tuple(images.shape[-2:]))
        hidden = self.cell_mlp(lines)  # (B, 3 N^2, hidden)
        n, r = self.cell_resolution, self.token_resolution
        cells = self.to_cells(hidden).view(batch, NUM_PLANES, n, n, -1).permute(0, 1, 4, 2, 3)
        grid = hidden.view(batch * NUM_PLANES, n, n, -1).permute(0, 3, 1, 2)
        pooled = F.avg_pool2d(grid, 2).permute(0, 2, 3, 1).reshape(batch, NUM_PLANES * r * r, -1)
        return self.to_tokens(pooled), cells.contiguous()
