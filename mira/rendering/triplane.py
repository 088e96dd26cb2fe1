"""Triplane feature lookup.

Layout (SPEC): triplanes are ``(B, 3, C, R, R)``; plane 0 = XY, plane 1 = XZ, plane 2 = YZ.
A world point ``p`` maps to ``q = 2 (p - box_min) / (box_max - box_min) - 1`` in ``[-1, 1]^3``;
plane XY is sampled at grid ``(q_x, q_y)`` (grid x indexes the plane's last dim W, grid y its H
dim), XZ at ``(q_x, q_z)``, YZ at ``(q_y, q_z)``; bilinear, ``align_corners=False``, zero padding.
``plane_axes`` "xy_xz_zy" (``renderer.plane_axes``; OpenLRM / EG3D) reads the third plane
transposed: grid ``(q_z, q_y)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from mira.rendering.triplane_kernels import fused_sample_triplane, fused_sampling_available

# For each plane, the two world axes (x=0, y=1, z=2) that become its grid (x, y).
PLANE_AXES = ((0, 1), (0, 2), (1, 2))
# renderer.plane_axes -> the axes of each plane.
PLANE_AXES_BY_NAME = {"xy_xz_yz": PLANE_AXES, "xy_xz_zy": ((0, 1), (0, 2), (2, 1))}
AGGREGATIONS = ("concat", "sum", "mean")


def normalize_points(points: Tensor, box_min: Tensor, box_max: Tensor) -> Tensor:
    """World points (..., 3) -> box-normalised coordinates (..., 3), the box mapped to [-1, 1]^3."""
    box_min = box_min.to(points)
    box_max = box_max.to(points)
    return 2.0 * (points - box_min) / (box_max - box_min) - 1.0


def aggregated_dim(triplane_dim: int, aggregation: str) -> int:
    """Feature size after aggregating the three planes of ``triplane_dim`` channels."""
    if aggregation not in AGGREGATIONS:
        raise ValueError(f"mira/rendering/triplane.py: aggregation must be one of {AGGREGATIONS}, got '{aggregation}'")
    return 3 * triplane_dim if aggregation == "concat" else triplane_dim


def sample_triplane(
    triplanes: Tensor,
    points: Tensor,
    box_min: Tensor,
    box_max: Tensor,
    aggregation: str = "concat",
    plane_axes: str = "xy_xz_yz",
    fused: bool = False,
) -> Tensor:
    """Bilinear features of world points from the three planes.

    Args:
        triplanes: (B, 3, C, R, R).
        points: (B, P, 3) world points.
        box_min, box_max: (3,) the box the triplane spans.
        aggregation: "concat" (plane order XY, XZ, YZ), "sum" or "mean".
        plane_axes: "xy_xz_yz" or "xy_xz_zy" (:data:`PLANE_AXES_BY_NAME`).
        fused: on CUDA, use the channels-last Triton kernels of :mod:`mira.rendering.triplane_kernels`
            (same values; gradients to the triplanes only, so not when ``points`` require grad). Under
            autocast the features come out in the autocast dtype, else as below.
    Returns:
        (B, P, 3C) for "concat", else (B, P, C). Points outside the box read zeros.
    """
    if triplanes.dim() != 5 or triplanes.shape[1] != 3:
        raise ValueError(f"mira/rendering/triplane.py: triplanes must be (B, 3, C, R, R), got {tuple(triplanes.shape)}")
    if points.dim() != 3 or points.shape[-1] != 3 or points.shape[0] != triplanes.shape[0]:
        raise ValueError(
            f"mira/rendering/triplane.py: points must be (B, P, 3) with B={triplanes.shape[0]}, got {tuple(points.shape)}"
        )
    if aggregation not in AGGREGATIONS:
        raise ValueError(f"mira/rendering/triplane.py: aggregation must be one of {AGGREGATIONS}, got '{aggregation}'")
    batch, _, channels, height, width = triplanes.shape
    num_points = points.shape[1]
    dtype = torch.promote_types(triplanes.dtype, points.dtype)
    q = normalize_points(points.to(dtype), box_min, box_max)
    if plane_axes not in PLANE_AXES_BY_NAME:
        raise ValueError(f"mira/rendering/triplane.py: plane_axes must be one of {sorted(PLANE_AXES_BY_NAME)}, got '{plane_axes}'")
    if fused and fused_sampling_available(triplanes) and not points.requires_grad:
        out_dtype = torch.get_autocast_dtype("cuda") if torch.is_autocast_enabled("cuda") else dtype
        summed = aggregation in ("sum", "mean")  # the kernel adds the planes itself: 3x narrower output
        features = fused_sample_triplane(triplanes, q, PLANE_AXES_BY_NAME[plane_axes], out_dtype, sum_planes=summed)
        if aggregation == "mean":
            return features / 3.0
        return features
    grid = torch.stack([q[..., list(axes)] for axes in PLANE_AXES_BY_NAME[plane_axes]], dim=1)  # (B, 3, P, 2)
    grid = grid.reshape(batch * 3, 1, num_points, 2)
    planes = triplanes.to(dtype).reshape(batch * 3, channels, height, width)
    features = F.grid_sample(planes, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    features = features.reshape(batch, 3, channels, num_points)
    if aggregation in ("sum", "mean"):  # add the planes before the (B, P, C) transpose: no 3C-wide copy
        summed = features.sum(dim=1).transpose(1, 2)
        return summed / 3.0 if aggregation == "mean" else summed
    return features.permute(0, 3, 1, 2).reshape(batch, num_points, 3 * channels)  # (B, P, 3C), planes in order
