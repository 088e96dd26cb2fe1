"""Rendering procedural objects by sphere tracing, batched in PyTorch (GPU or CPU).

Per view: rays through pixel (or sub-pixel) centres (``mira.cameras.rays_from_pixels``) are
clipped to the sphere of radius :data:`BOUND_RADIUS` that holds every normalised object; rays that
enter it are compacted per object and sphere traced for at most ``max_steps`` steps (a ray stops
when the SDF falls below a fraction of its sub-pixel's footprint; rays still marching are
compacted again every :func:`round_steps` steps); hit points are compacted and shaded
(:mod:`mira.data.procedural.shading`).

Anti-aliasing: a pixel's alpha is the fraction of its ``supersample`` x ``supersample`` rays that
hit (Blender's anti-aliased coverage) and its colour the sRGB OETF (Blender's "Standard" view
transform, clipped to [0, 1]) of the mean linear radiance of those rays: straight, not
premultiplied, alpha; colour 0 where alpha is 0. Large views are supersampled adaptively: one ray
per pixel first, the full set only where a 3 x 3 neighbourhood changes coverage or colour.
"""

from __future__ import annotations

import torch
from torch import Tensor

from mira.cameras import pixel_centers, rays_from_pixels
from mira.data.procedural import acceleration
from mira.data.procedural.colour import linear_to_srgb
from mira.data.procedural.compaction import compact, gather_rows, scatter_rows
from mira.data.procedural.lighting import Lighting, default_lighting
from mira.data.procedural.objects import (MAX_PARTS, PROCEDURAL_RADIUS, ProceduralObjects, albedo,
                                          distance_from_tensors, distance_tensors)
from mira.data.procedural.shading import shade

# Every normalised object lies inside this sphere (margin for the normalisation's estimate).
BOUND_RADIUS = PROCEDURAL_RADIUS + 0.03
# A ray hits when the SDF is below this fraction of its sub-pixel footprint at that depth ...
HIT_FOOTPRINT_FRACTION = 0.05
# ... and never below this (normalised units).
MIN_HIT_DISTANCE = 2e-4
# A ray still short of that after max_steps (grazing the surface) hits if this close, in hit distances.
UNCONVERGED_HIT_FACTOR = 2.0
# Work per chunk: object rows x rays x parts (bounds the memory of the batched SDF: eager on the CPU it
# holds several such tensors at once; compiled on CUDA it holds none, so chunks can be larger).
CHUNK_ELEMENTS = {"cpu": 1 << 24, "cuda": 1 << 27}
# Adaptive supersampling: a pixel gets supersample^2 rays when a neighbour differs by more
# than this in sRGB colour (or in coverage).
EDGE_COLOUR_THRESHOLD = 0.03
# Views with at least this many pixels are supersampled adaptively by default.
ADAPTIVE_MIN_PIXELS = 128 * 128
# Steps per round of marching; the rays still marching are compacted between rounds (a host sync
# and a sort: cheap next to eager steps on a CPU, dearer than a few wasted fused steps on a GPU).
ROUND_STEPS = {"cpu": 8, "cuda": 16}


def round_steps(device: torch.device) -> int:
    """Marching steps between two compactions on ``device``."""
    return ROUND_STEPS.get(device.type, ROUND_STEPS["cpu"])


def intersect_bound(origins: Tensor, directions: Tensor, radius: float = BOUND_RADIUS) -> tuple[Tensor, Tensor, Tensor]:
    """Entry and exit distances (B, M) of unit rays with the sphere of ``radius`` at the origin,
    and whether they meet it (B, M) bool; the entry is clamped at 0 for rays starting inside."""
    b = (origins * directions).sum(-1)
    c = (origins * origins).sum(-1) - radius * radius
    disc = b * b - c
    root = torch.sqrt(disc.clamp_min(0.0))
    near, far = (-b - root).clamp_min(0.0), -b + root
    return near, far, (disc > 0) & (far > 0)


def _march_step(origins: Tensor, directions: Tensor, t: Tensor, done: Tensor, hit: Tensor, far: Tensor,
                footprint: Tensor, *object_tensors: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """One sphere-tracing step of every ray (a pure function: one fused kernel on CUDA)."""
    distance = distance_from_tensors(origins + t[..., None] * directions, *object_tensors)
    tolerance = torch.clamp_min(HIT_FOOTPRINT_FRACTION * footprint * t, MIN_HIT_DISTANCE)
    converged = (distance < tolerance) & ~done
    hit = hit | converged
    done = done | converged
    t = torch.where(done, t, t + distance)
    return t, done | (t > far), hit, distance


def sphere_trace(objects: ProceduralObjects, origins: Tensor, directions: Tensor, near: Tensor, far: Tensor,
                 footprint: Tensor, max_steps: int) -> tuple[Tensor, Tensor]:
    """March each ray by the SDF from ``near`` until it hits or passes ``far``.

    Between rounds of :func:`round_steps` steps the rays still marching are compacted per
    object, so rays that have finished cost (almost) nothing.

    Args:
        origins, directions: (B, K, 3) unit rays (normalised world).
        near, far: (B, K) interval to search.
        footprint: (B, K) sub-pixel width per unit of distance (radians): hit tolerance scale.
        max_steps: SDF evaluations per ray at most.
    Returns:
        t (B, K) distance of the hit and hit (B, K) bool.
    """
    t = near.clone()
    done = near >= far
    hit = torch.zeros_like(done)
    distance = torch.full_like(t, float("inf"))
    object_tensors = distance_tensors(objects)
    steps_left = max_steps
    while steps_left > 0:
        running = ~done
        if not bool(running.any()):
            break
        index, valid = compact(running)
        o, d, sub_far, sub_footprint = (gather_rows(x, index) for x in (origins, directions, far, footprint))
        sub_t, sub_done, sub_hit = gather_rows(t, index), ~valid, torch.zeros_like(valid)
        sub_distance = gather_rows(distance, index)
        for _ in range(min(round_steps(origins.device), steps_left)):
            sub_t, sub_done, sub_hit, sub_distance = acceleration.run(
                _march_step, origins.device, o, d, sub_t, sub_done, sub_hit, sub_far, sub_footprint, *object_tensors)
            steps_left -= 1
        t = scatter_rows(t, index, valid, sub_t)
        done = scatter_rows(done, index, valid, sub_done)
        hit = scatter_rows(hit, index, valid, sub_hit)
        distance = scatter_rows(distance, index, valid, sub_distance)
    tolerance = torch.clamp_min(HIT_FOOTPRINT_FRACTION * footprint * t, MIN_HIT_DISTANCE)
    hit = hit | (~done & (distance < UNCONVERGED_HIT_FACTOR * tolerance))
    return t, hit


def render_rays(objects: ProceduralObjects, origins: Tensor, directions: Tensor, footprint: Tensor,
                lighting: Lighting, max_steps: int) -> tuple[Tensor, Tensor]:
    """Linear radiance (B, M, 3) (0 on misses) and hit (B, M) of world rays (B, M, 3).

    Args:
        footprint: (B, M) angular width of the ray's (sub-)pixel (radians): hit tolerance scale.
    """
    near, far, meets = intersect_bound(origins, directions)
    radiance = torch.zeros(*origins.shape[:2], 3, dtype=origins.dtype, device=origins.device)
    hit = torch.zeros_like(meets)
    if not bool(meets.any()):
        return radiance, hit
    index, valid = compact(meets)
    o, d = gather_rows(origins, index), gather_rows(directions, index)
    t, traced_hit = sphere_trace(objects, o, d, torch.where(valid, gather_rows(near, index), 1.0),
                                 torch.where(valid, gather_rows(far, index), 0.0), gather_rows(footprint, index),
                                 max_steps)
    traced_hit = traced_hit & valid
    if not bool(traced_hit.any()):
        return radiance, hit
    shaded, shaded_valid = compact(traced_hit)
    points = gather_rows(o + t[..., None] * d, shaded)
    views = -gather_rows(d, shaded)
    colour = shade(objects, points, views, lighting, albedo(objects, points), BOUND_RADIUS)
    ray_index = torch.gather(index, 1, shaded)
    radiance = scatter_rows(radiance, ray_index, shaded_valid, colour)
    hit = scatter_rows(hit, index, valid, traced_hit)
    return radiance, hit


def _check_inputs(objects: ProceduralObjects, c2w: Tensor, intrinsics: Tensor, height: int, width: int,
                  supersample: int, max_steps: int) -> None:
    batch = len(objects)
    if c2w.dim() != 4 or c2w.shape[0] != batch or c2w.shape[2:] != (4, 4):
        raise ValueError(f"c2w must be (B={batch}, V, 4, 4), got {tuple(c2w.shape)}")
    if intrinsics.shape != (*c2w.shape[:2], 4):
        raise ValueError(f"intrinsics must be (B, V, 4) = {(*c2w.shape[:2], 4)}, got {tuple(intrinsics.shape)}")
    if height < 1 or width < 1 or supersample < 1 or max_steps < 1:
        raise ValueError(f"need height, width, supersample, max_steps >= 1, got {height}, {width}, {supersample}, "
                         f"{max_steps}")


def _render_pixels(objects: ProceduralObjects, c2w: Tensor, intrinsics: Tensor, uv: Tensor, footprint: Tensor,
                   width: int, height: int, lighting: Lighting, max_steps: int) -> tuple[Tensor, Tensor]:
    """Radiance (B V, n, 3) and hit (B V, n) of rays through pixel coordinates ``uv`` ((n, 2) shared
    or (B V, n, 2) per view) of views c2w (B V, 4, 4); ``footprint`` (B V,) hit tolerance scale."""
    batch, rows = len(objects), c2w.shape[0]
    origins, directions = rays_from_pixels(c2w, intrinsics, uv, width, height)  # (B V, n, 3)
    count = origins.shape[1]
    origins, directions = origins.reshape(batch, -1, 3), directions.reshape(batch, -1, 3)
    footprint = footprint[:, None].expand(rows, count).reshape(batch, -1)
    radiance = torch.empty_like(origins)
    hit = torch.empty(origins.shape[:2], dtype=torch.bool, device=origins.device)
    elements = CHUNK_ELEMENTS.get(origins.device.type, CHUNK_ELEMENTS["cpu"])
    chunk = max(1, elements // (batch * objects.num_parts))
    for start in range(0, origins.shape[1], chunk):
        columns = slice(start, min(start + chunk, origins.shape[1]))
        radiance[:, columns], hit[:, columns] = render_rays(objects, origins[:, columns], directions[:, columns],
                                                            footprint[:, columns], lighting, max_steps)
    return radiance.reshape(rows, count, 3), hit.reshape(rows, count)


def edge_pixels(colour: Tensor, hit: Tensor, threshold: float = EDGE_COLOUR_THRESHOLD) -> Tensor:
    """Pixels whose 3 x 3 neighbourhood changes coverage or sRGB colour by more than ``threshold``.

    Args:
        colour: (R, H, W, 3) sRGB of one ray per pixel; hit: (R, H, W) bool.
    Returns:
        (R, H, W) bool.
    """
    values = torch.cat([colour * hit[..., None], hit[..., None].to(colour.dtype)], dim=-1).permute(0, 3, 1, 2)
    padded = torch.nn.functional.pad(values, (1, 1, 1, 1), mode="replicate")
    height, width = hit.shape[1:]
    flagged = torch.zeros_like(hit)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            neighbour = padded[:, :, 1 + dy:1 + dy + height, 1 + dx:1 + dx + width]
            change = (neighbour - values).abs()
            flagged |= (change[:, 3] > 0.5) | (change[:, :3].amax(1) > threshold)
    return flagged


def render_views(objects: ProceduralObjects, c2w: Tensor, intrinsics: Tensor, height: int, width: int, *,
                 lighting: Lighting | None = None, supersample: int = 2, max_steps: int = 64,
                 adaptive: bool | None = None) -> Tensor:
    """Render V views of each of B objects.

    Args:
        objects: B objects (on the device to render on).
        c2w: (B, V, 4, 4) OpenCV camera-to-world (MIRA convention, see ``mira/cameras.py``).
        intrinsics: (B, V, 4) normalised ``(fx/W, fy/H, cx/W, cy/H)``.
        height, width: image size in pixels.
        lighting: per-object lights; default :func:`default_lighting` (the Blender script's).
        supersample: rays per pixel along each axis (coverage and colour are their mean).
        max_steps: sphere-tracing steps per ray.
        adaptive: trace one ray per pixel first and ``supersample``^2 only where the 3 x 3
            neighbourhood changes coverage or colour (:func:`edge_pixels`); elsewhere the pixel
            is uniform and its centre ray stands for the mean (same images to ~75 dB). False:
            every pixel supersampled. None (default): adaptive from :data:`ADAPTIVE_MIN_PIXELS`
            pixels per view up (below, the second pass costs more than it saves).
    Returns:
        rgba (B, V, 4, H, W) float32 in [0, 1]: sRGB colour, straight alpha, colour 0 where alpha 0.
    """
    _check_inputs(objects, c2w, intrinsics, height, width, supersample, max_steps)
    batch, views = c2w.shape[:2]
    device = objects.device
    if acceleration.compile_enabled(device):
        objects = objects.padded(MAX_PARTS)  # one compilation for every batch
    if adaptive is None:
        adaptive = height * width >= ADAPTIVE_MIN_PIXELS
    lighting = default_lighting(batch, device) if lighting is None else lighting.to(device)
    c2w = c2w.to(device=device, dtype=torch.float32).reshape(batch * views, 4, 4)
    intrinsics = intrinsics.to(device=device, dtype=torch.float32).reshape(batch * views, 4)
    s = supersample
    # Angular size of a sub-pixel (radians) per view: 1 / (focal length in sub-pixels).
    footprint = 1.0 / (torch.minimum(intrinsics[:, 0] * width, intrinsics[:, 1] * height) * s)
    subpixels = (torch.arange(s, dtype=torch.float32, device=device) + 0.5) / s
    offsets = torch.stack(torch.meshgrid(subpixels, subpixels, indexing="xy"), dim=-1).reshape(-1, 2)  # (s^2, 2) u, v
    pixels = height * width
    if adaptive and s > 1:
        radiance, hit = _render_pixels(objects, c2w, intrinsics, pixel_centers(height, width, device=device),
                                       footprint, width, height, lighting, max_steps)
        flagged = edge_pixels(linear_to_srgb(radiance).reshape(-1, height, width, 3),
                              hit.reshape(-1, height, width)).reshape(-1, pixels)
        covered = hit.to(radiance.dtype)
        if bool(flagged.any()):
            index, valid = compact(flagged)  # (B V, F) pixel indices
            corner = torch.stack([index % width, index // width], dim=-1).to(torch.float32)  # (B V, F, 2)
            uv = (corner[:, :, None, :] + offsets).reshape(index.shape[0], -1, 2)
            sub_radiance, sub_hit = _render_pixels(objects, c2w, intrinsics, uv, footprint, width, height,
                                                   lighting, max_steps)
            sub_covered = sub_hit.to(radiance.dtype).reshape(*index.shape, s * s)
            coverage = sub_covered.mean(-1)
            mean = (sub_radiance.reshape(*index.shape, s * s, 3) * sub_covered[..., None]).sum(-2)
            mean = mean / sub_covered.sum(-1, keepdim=True).clamp_min(1.0)
            covered = scatter_rows(covered, index, valid, coverage)
            radiance = scatter_rows(radiance, index, valid, mean)
        alpha = covered.reshape(batch, views, height, width, 1)
        mean_radiance = radiance.reshape(batch, views, height, width, 3)
    else:
        uv = (pixel_centers(height, width, device=device)[:, None, :] - 0.5 + offsets).reshape(-1, 2)
        radiance, hit = _render_pixels(objects, c2w, intrinsics, uv, footprint, width, height, lighting, max_steps)
        covered = hit.to(radiance.dtype).reshape(batch, views, height, width, s * s, 1)
        alpha = covered.mean(-2)
        mean_radiance = (radiance.reshape(batch, views, height, width, s * s, 3) * covered).sum(-2)
        mean_radiance = mean_radiance / covered.sum(-2).clamp_min(1.0)
    colour = torch.where(alpha > 0, linear_to_srgb(mean_radiance), torch.zeros_like(mean_radiance))
    return torch.cat([colour, alpha], dim=-1).permute(0, 1, 4, 2, 3).contiguous()
