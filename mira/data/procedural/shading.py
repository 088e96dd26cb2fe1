"""Shading of surface points the way Cycles shades the Blender script's material and lights.

The script's vertex-colour material is a Principled BSDF (roughness 0.8, dielectric IOR 1.5,
so F0 = 0.04) on the albedo; its lights are a uniform environment and sun lamps
(:mod:`mira.data.procedural.lighting`). For that material Cycles returns, per point with normal
n, view direction v and albedo a (all linear RGB)::

    L = E_env [a (1 - Es(n.v)) AO_d + Es(n.v) AO_s]                  uniform environment
      + sum_suns S_i V_i max(0, n.l_i) [a (1 - Es(n.v)) / pi + f_s(n, v, l_i)]

with ``Es`` the directional albedo of the GGX specular layer (the diffuse base below it gets
what the layer does not reflect), ``f_s`` the GGX specular BRDF, ``V_i`` the sun's soft shadow
(SDF marched towards the sun, penumbra from the sun's angular size) and AO_d / AO_s the
environment's visibility, estimated from SDF samples along the normal, brightened by the light
that bounces inside crevices (Jimenez et al. 2016, multi-bounce fit). A uniform environment of
strength E gives an unoccluded diffuse surface radiance ``a E``, a sun of irradiance S gives
``a S cos / pi``: Cycles' conventions.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch
from torch import Tensor

from mira.data.procedural import acceleration
from mira.data.procedural.compaction import compact, gather_rows, scatter_rows
from mira.data.procedural.lighting import Lighting
from mira.data.procedural.objects import ProceduralObjects, distance_from_tensors, distance_tensors, signed_distance

# Material of the Blender script (Principled BSDF on vertex colours).
ROUGHNESS = 0.8
IOR = 1.5  # Principled BSDF default: F0 = 0.04
# Energy multiple scattering between microfacets adds to the single-scattering GGX lobe
# (Cycles uses multiscatter GGX); measured against Cycles renders of a black sphere.
MULTISCATTER_GAIN = 1.05
# The specular layer's directional albedo is tabulated at this many view cosines, each
# integrated on a quadrature grid of this many polar angles (twice as many azimuths).
ALBEDO_TABLE_SIZE = 33
ALBEDO_QUADRATURE = 96
# Normals: tetrahedral differences of the SDF at this distance (normalised units).
NORMAL_EPSILON = 1e-3
_TETRAHEDRON = ((1.0, -1.0, -1.0), (-1.0, -1.0, 1.0), (-1.0, 1.0, -1.0), (1.0, 1.0, 1.0))
# Ambient occlusion: SDF samples at these distances along the normal.
AO_DISTANCES = (0.02, 0.05, 0.1, 0.17, 0.26)
AO_DECAY = 0.75  # weight of each further sample relative to the previous one
AO_STRENGTH = 1.0
# Sun shadows: marched from the surface (offset along the normal) towards each sun.
SHADOW_STEPS = 24
SHADOW_ROUND_STEPS = (8, 12)  # CPU, CUDA: shadow rays still marching are compacted between rounds
SHADOW_BIAS = 2e-3
SHADOW_START = 1e-2
SHADOW_MIN_STEP = 5e-3
SHADOW_MAX_STEP = 0.25
# Lowest cosine used for the view angle (grazing views).
MIN_COSINE = 1e-4


def _dot(a: Tensor, b: Tensor) -> Tensor:
    return (a * b).sum(-1)


def _normalise(v: Tensor) -> Tensor:
    return v / torch.sqrt((v * v).sum(-1, keepdim=True)).clamp_min(1e-12)


def surface_normals(objects: ProceduralObjects, points: Tensor, epsilon: float = NORMAL_EPSILON) -> Tensor:
    """Outward unit normals from the SDF gradient (tetrahedral 4-tap differences).

    Args:
        points: (B, K, 3) normalised points near the surface.
    Returns:
        (B, K, 3).
    """
    taps = torch.tensor(_TETRAHEDRON, dtype=points.dtype, device=points.device)  # (4, 3)
    samples = (points[:, None] + epsilon * taps[None, :, None]).reshape(points.shape[0], -1, 3)
    values = signed_distance(objects, samples).reshape(points.shape[0], 4, -1)  # (B, 4, K)
    gradient = (values[..., None] * taps[None, :, None]).sum(1)
    return _normalise(gradient)


def ambient_occlusion(objects: ProceduralObjects, points: Tensor, normals: Tensor) -> Tensor:
    """Fraction (B, K) in [0, 1] of the environment a point sees, from SDF samples along the normal
    (a point in the open sees 1; a sample closer to other surfaces than to this one occludes)."""
    distances = torch.tensor(AO_DISTANCES, dtype=points.dtype, device=points.device)  # (J,)
    samples = (points[:, None] + distances[None, :, None, None] * normals[:, None]).reshape(points.shape[0], -1, 3)
    values = signed_distance(objects, samples).reshape(points.shape[0], len(AO_DISTANCES), -1)  # (B, J, K)
    weights = AO_DECAY ** torch.arange(len(AO_DISTANCES), dtype=points.dtype, device=points.device)
    occlusion = ((distances[:, None] - values).clamp_min(0.0) / distances[:, None] * weights[None, :, None]).sum(1)
    return (1.0 - AO_STRENGTH * occlusion / weights.sum()).clamp(0.0, 1.0)


def multi_bounce(visibility: Tensor, albedo: Tensor) -> Tensor:
    """Jimenez et al. 2016: visibility (B, K) -> effective (B, K, 3) including inter-reflections."""
    x = visibility[..., None]
    a = 2.0404 * albedo - 0.3324
    b = -4.7951 * albedo + 0.6417
    c = 2.7552 * albedo + 0.6903
    return torch.maximum(x, ((x * a + b) * x + c) * x)


def _exit_distance(origins: Tensor, directions: Tensor, radius: float) -> Tensor:
    """Distance (...) along unit ``directions`` from ``origins`` (inside) to the sphere of ``radius``."""
    b = _dot(origins, directions)
    c = _dot(origins, origins) - radius * radius
    return -b + torch.sqrt((b * b - c).clamp_min(0.0))


def _shadow_step(origins: Tensor, directions: Tensor, t: Tensor, penumbra: Tensor, far: Tensor, width: Tensor,
                 *object_tensors: Tensor) -> tuple[Tensor, Tensor]:
    """One soft-shadow step (a pure function, one fused kernel on CUDA): ``penumbra`` is the
    smallest SDF-to-distance ratio met so far, in units of the sun's angular radius."""
    distance = distance_from_tensors(origins + t[..., None] * directions, *object_tensors)
    running = (t < far) & (penumbra > -1.0)
    penumbra = torch.where(running, torch.minimum(penumbra, distance / (width * t)), penumbra)
    return torch.where(running, t + distance.clamp(SHADOW_MIN_STEP, SHADOW_MAX_STEP), t), penumbra


def sun_visibility(objects: ProceduralObjects, points: Tensor, normals: Tensor, lighting: Lighting,
                   bound_radius: float, steps: int = SHADOW_STEPS) -> Tensor:
    """Soft shadow factor (B, K, S) in [0, 1] of every sun at every point: the SDF marched towards
    the sun; the penumbra follows the sun's angular radius (iq's soft shadows, with the
    occluder's signed penetration, so half-covered suns give 1/2). Marching goes in rounds of
    :data:`SHADOW_ROUND_STEPS` steps, compacting the rays still inside the bounding sphere."""
    batch, count = points.shape[:2]
    suns = lighting.sun_direction.shape[1]
    directions = lighting.sun_direction[:, :, None, :].expand(batch, suns, count, 3)
    origins = (points + SHADOW_BIAS * normals)[:, None].expand(batch, suns, count, 3)
    width = torch.tan(0.5 * lighting.sun_angle).clamp_min(1e-3)[:, :, None]  # (B, S, 1)
    far = _exit_distance(origins, directions, bound_radius)
    # Suns of zero irradiance (padding) and points facing away from a sun need no shadow.
    needed = ((lighting.sun_irradiance.amax(-1)[:, :, None] > 0)
              & ((normals[:, None] * directions).sum(-1) > 0))
    origins, directions = origins.reshape(batch, -1, 3), directions.reshape(batch, -1, 3)
    width, far = width.expand(batch, suns, count).reshape(batch, -1), far.reshape(batch, -1)
    t = torch.full_like(far, SHADOW_START)
    penumbra = torch.ones_like(far)
    far = torch.where(needed.reshape(batch, -1), far, torch.zeros_like(far))
    object_tensors = distance_tensors(objects)
    steps_left = steps
    while steps_left > 0:
        running = (t < far) & (penumbra > -1.0)
        if not bool(running.any()):
            break
        index, valid = compact(running)
        sub_far = torch.where(valid, gather_rows(far, index), torch.zeros_like(valid, dtype=far.dtype))
        o, d, sub_width = gather_rows(origins, index), gather_rows(directions, index), gather_rows(width, index)
        sub_t, sub_penumbra = gather_rows(t, index), gather_rows(penumbra, index)
        for _ in range(min(SHADOW_ROUND_STEPS[points.device.type == "cuda"], steps_left)):
            sub_t, sub_penumbra = acceleration.run(_shadow_step, points.device, o, d, sub_t, sub_penumbra, sub_far,
                                                   sub_width, *object_tensors)
            steps_left -= 1
        t = scatter_rows(t, index, valid, sub_t)
        penumbra = scatter_rows(penumbra, index, valid, sub_penumbra)
    res = penumbra.clamp(-1.0, 1.0)
    visibility = 0.25 * (1.0 + res) * (1.0 + res) * (2.0 - res)  # smoothstep over the sun's disc
    return visibility.reshape(batch, suns, count).transpose(1, 2)


def fresnel_dielectric(cosine: Tensor | np.ndarray, ior: float = IOR):
    """Unpolarised Fresnel reflectance of a dielectric (outside, relative index ``ior``) at the
    cosine between the incident direction and the micro-normal (torch or numpy, elementwise)."""
    g = (ior * ior - 1.0 + cosine * cosine) ** 0.5
    a = (g - cosine) / (g + cosine)
    b = (cosine * (g + cosine) - 1.0) / (cosine * (g - cosine) + 1.0)
    return 0.5 * a * a * (1.0 + b * b)


def _smith_lambda(cosine: np.ndarray, alpha: float) -> np.ndarray:
    tan2 = (1.0 - cosine * cosine) / np.maximum(cosine * cosine, 1e-12)
    return 0.5 * (np.sqrt(1.0 + alpha * alpha * tan2) - 1.0)


@functools.lru_cache(maxsize=None)
def specular_albedo_table(samples: int = ALBEDO_TABLE_SIZE, quadrature: int = ALBEDO_QUADRATURE) -> tuple[float, ...]:
    """Directional albedo of the specular layer at ``samples`` view cosines ``i / (samples - 1)``:
    the GGX BRDF (alpha = roughness^2, height-correlated Smith shadowing, dielectric Fresnel)
    integrated over the hemisphere of light directions by midpoint quadrature."""
    alpha = ROUGHNESS ** 2
    theta = (np.arange(quadrature) + 0.5) / quadrature * (0.5 * np.pi)
    phi = (np.arange(2 * quadrature) + 0.5) / (2 * quadrature) * (2.0 * np.pi)
    theta, phi = np.meshgrid(theta, phi, indexing="ij")
    light = np.stack([np.sin(theta) * np.cos(phi), np.sin(theta) * np.sin(phi), np.cos(theta)], axis=-1)
    solid_angle = np.sin(theta) * (0.5 * np.pi / quadrature) * (np.pi / quadrature)
    values = []
    for cos_view in np.linspace(0.0, 1.0, samples).clip(MIN_COSINE, 1.0):
        view = np.array([np.sqrt(1.0 - cos_view * cos_view), 0.0, cos_view])
        half = light + view
        half /= np.linalg.norm(half, axis=-1, keepdims=True)
        cos_h, cos_l = half[..., 2], light[..., 2]
        distribution = alpha * alpha / (np.pi * (cos_h * cos_h * (alpha * alpha - 1.0) + 1.0) ** 2)
        shadowing = 1.0 / (1.0 + _smith_lambda(np.array(cos_view), alpha) + _smith_lambda(cos_l, alpha))
        fresnel = fresnel_dielectric((half * view).sum(-1))
        brdf = distribution * shadowing * fresnel / (4.0 * cos_view * cos_l)
        values.append(float((brdf * cos_l * solid_angle).sum()) * MULTISCATTER_GAIN)
    return tuple(values)


def specular_albedo(cos_view: Tensor, table: Tensor | None = None) -> Tensor:
    """Directional albedo (...) of the specular layer at view cosines (...) in [0, 1]: the
    energy the diffuse base below it does not get, and the share of a uniform environment it
    reflects (linear interpolation in :func:`specular_albedo_table`, or in ``table`` (T,), its
    values as a tensor on the device)."""
    if table is None:
        table = torch.tensor(specular_albedo_table(), dtype=cos_view.dtype, device=cos_view.device)
    position = cos_view.clamp(0.0, 1.0) * (table.numel() - 1)
    low = position.floor().clamp(max=table.numel() - 2)
    fraction = position - low
    low = low.long()
    return table[low] * (1.0 - fraction) + table[low + 1] * fraction


def specular_brdf(normals: Tensor, views: Tensor, lights: Tensor) -> Tensor:
    """GGX specular BRDF (height-correlated Smith, dielectric Fresnel): (..., 3) x3 -> (...)."""
    alpha2 = ROUGHNESS ** 4
    half = _normalise(views + lights)
    cos_h = _dot(normals, half).clamp(0.0, 1.0)
    cos_v = _dot(normals, views).abs().clamp(MIN_COSINE, 1.0)
    cos_l = _dot(normals, lights).clamp(0.0, 1.0)
    denominator = cos_h * cos_h * (alpha2 - 1.0) + 1.0
    distribution = alpha2 / (math.pi * denominator * denominator)
    visibility = 0.5 / (cos_l * torch.sqrt(cos_v * cos_v * (1.0 - alpha2) + alpha2)
                        + cos_v * torch.sqrt(cos_l * cos_l * (1.0 - alpha2) + alpha2)).clamp_min(1e-12)
    fresnel = fresnel_dielectric(_dot(views, half).clamp(MIN_COSINE, 1.0))
    return distribution * visibility * fresnel * MULTISCATTER_GAIN


def radiance(normals: Tensor, views: Tensor, albedo: Tensor, visibility: Tensor, shadows: Tensor,
             environment: Tensor, sun_direction: Tensor, sun_irradiance: Tensor, albedo_table: Tensor) -> Tensor:
    """The shading formula of the module docstring (a pure function, compiled on CUDA).

    Args:
        normals, views, albedo: (B, K, 3); visibility: (B, K) environment visibility;
        shadows: (B, K, S) sun visibility; environment: (B, 3); sun_direction, sun_irradiance: (B, S, 3);
        albedo_table: (T,) :func:`specular_albedo_table` as a tensor.
    Returns:
        (B, K, 3) linear radiance.
    """
    # Points seen from behind their normal (grazing hits on thin parts) are shaded as seen from the front.
    cos_view = _dot(normals, views).abs().clamp(MIN_COSINE, 1.0)
    layer = specular_albedo(cos_view, albedo_table)[..., None]  # (B, K, 1)
    base = albedo * (1.0 - layer)
    ambient = environment[:, None, :] * (base * multi_bounce(visibility, albedo) + layer * visibility[..., None])
    lights = sun_direction[:, None, :, :]  # (B, 1, S, 3)
    cos_light = _dot(normals[:, :, None], lights).clamp_min(0.0)  # (B, K, S)
    specular = specular_brdf(normals[:, :, None], views[:, :, None], lights)  # (B, K, S)
    irradiance = sun_irradiance[:, None] * (shadows * cos_light)[..., None]  # (B, K, S, 3)
    return ambient + (irradiance * (base[:, :, None] / math.pi + specular[..., None])).sum(2)


def shade(objects: ProceduralObjects, points: Tensor, views: Tensor, lighting: Lighting, albedo: Tensor,
          bound_radius: float) -> Tensor:
    """Linear radiance (B, K, 3) of surface points.

    Args:
        points: (B, K, 3) normalised surface points.
        views: (B, K, 3) unit vectors from the points towards the camera.
        albedo: (B, K, 3) linear RGB.
        bound_radius: radius of the sphere that holds the objects (shadow rays stop there).
    """
    normals = surface_normals(objects, points)
    visibility = ambient_occlusion(objects, points, normals)
    shadows = sun_visibility(objects, points, normals, lighting, bound_radius)  # (B, K, S)
    table = torch.tensor(specular_albedo_table(), dtype=points.dtype, device=points.device)
    return acceleration.run(radiance, points.device, normals, views, albedo, visibility, shadows,
                            lighting.environment, lighting.sun_direction, lighting.sun_irradiance, table)
