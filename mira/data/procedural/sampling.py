"""Drawing random procedural objects (:func:`sample_objects`) and normalising them.

Object ``k`` depends only on ``(seed, indices[k])``: its parameters are drawn on the CPU by a
numpy generator seeded with ``SeedSequence([seed, index, attempt])``, whatever else is in the
batch and whatever the device. The normalisation is measured on the objects' device (a grid
of :data:`NORMALISATION_GRID`^3 SDF samples over the raw extent; grid points near the surface
are projected onto it by Newton steps, and the bounding box and bounding sphere are taken over
those surface points), so it agrees across devices to float rounding. A composite that comes
out empty or tiny (a subtraction ate it) is drawn again with ``attempt + 1``.

A composite is 1..6 parts. Part 0 sits near the origin; each later part is centred inside the
bounding sphere of an earlier (non-subtracted) part so that they overlap or touch, and joins by
union, smooth union or (never part 0) subtraction. Rotations are uniform on SO(3) or, half of
the time, one of the 24 axis-aligned rotations.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch import Tensor

from mira.data.procedural import acceleration
from mira.data.procedural.colour import sample_colour, shifted_colour
from mira.data.procedural.compaction import compact
from mira.data.procedural.objects import MAX_PARTS, PROCEDURAL_RADIUS, ProceduralObjects, signed_distance
from mira.data.procedural.sdf import PRIMITIVE_FAMILY, PRIMITIVES, SMOOTH_UNION, SUBTRACTION, UNION
from mira.data.procedural.texture import (MAX_NOISE_WAVELENGTH, MAX_TEXTURE_PERIOD, MIN_NOISE_WAVELENGTH,
                                          MIN_TEXTURE_PERIOD, NOISE_WAVES, TEXTURES)
from mira.devices import to_device_async

# ------------------------------------------------------------------ drawing (raw units)
PART_COUNT_PROBABILITIES = (0.10, 0.20, 0.25, 0.20, 0.15, 0.10)  # 1 .. MAX_PARTS parts
FIRST_PART_SIZE = (0.40, 0.70)
PART_SIZE = (0.20, 0.55)
CUTTER_SIZE_FACTOR = 0.8
ANISOTROPY = (0.55, 1.6)  # per-axis size factor, log-uniform
ROUNDING_FRACTION = (0.1, 0.5)  # rounded box: rounding / smallest half extent
CONE_TOP_FRACTION = (0.0, 0.6)  # cone: top radius / bottom radius
TORUS_MINOR_FRACTION = (0.2, 0.45)  # torus: minor / major radius
CAPSULE_RADIUS_FRACTION = 0.6
FIRST_PART_JITTER = 0.1
ATTACH_DISTANCE = (0.3, 0.9)  # new part's centre from its anchor, in anchor bounding radii
OPERATION_PROBABILITIES = {UNION: 0.5, SMOOTH_UNION: 0.3, SUBTRACTION: 0.2}
SMOOTHNESS = (0.05, 0.25)
AXIS_ALIGNED_PROBABILITY = 0.5
TEXTURE_PROBABILITIES = {"solid": 0.40, "stripes": 0.17, "checker": 0.13, "noise": 0.17, "gradient": 0.13}
SECOND_COLOUR_INDEPENDENT_PROBABILITY = 0.6

# ------------------------------------------------------------------ normalisation
NORMALISATION_GRID = 48
NEWTON_STEPS = 3
GRADIENT_STEP = 1e-4  # raw units, central differences of the projection
SURFACE_TOLERANCE = 1e-3  # raw units: a projected point must be this close to the surface
MIN_INSIDE_FRACTION = 2e-3  # of the grid: smaller composites are redrawn
MAX_ATTEMPTS = 32
OBJECTS_PER_CHUNK = 8  # objects normalised at once (bounds memory: chunk x grid^3 x P)


def _generator(seed: int, index: int, attempt: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, index, attempt]))


def _log_uniform(rng: np.random.Generator, bounds: tuple[float, float], size: int | None = None):
    return np.exp(rng.uniform(np.log(bounds[0]), np.log(bounds[1]), size=size))


def random_rotation(rng: np.random.Generator, axis_aligned_probability: float = AXIS_ALIGNED_PROBABILITY) -> np.ndarray:
    """(3, 3) rotation: one of the 24 axis-aligned ones, or uniform on SO(3) (unit quaternion)."""
    if rng.uniform() < axis_aligned_probability:
        matrix = np.eye(3)[rng.permutation(3)] * rng.choice([-1.0, 1.0], size=3)[:, None]
        if np.linalg.det(matrix) < 0:
            matrix[2] *= -1.0
        return matrix
    w, x, y, z = rng.normal(size=4)
    norm = np.sqrt(w * w + x * x + y * y + z * z)
    w, x, y, z = w / norm, x / norm, y / norm, z / norm
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
        [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
        [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
    ])


def primitive_params(kind: str, rng: np.random.Generator, size: float) -> np.ndarray:
    """Family parameters (4,) of a primitive of about ``size`` (raw units); see the table in sdf.py."""
    axes = size * _log_uniform(rng, ANISOTROPY, 3)
    if kind == "sphere":
        return np.array([size, size, size, size])
    if kind == "box":
        return np.array([*axes, 0.0])
    if kind == "rounded_box":
        return np.array([*axes, rng.uniform(*ROUNDING_FRACTION) * axes.min()])
    if kind == "cylinder":
        return np.array([axes[0], axes[0], axes[2], 0.0])
    if kind == "cone":
        return np.array([axes[0], rng.uniform(*CONE_TOP_FRACTION) * axes[0], axes[2], 0.0])
    if kind == "torus":
        return np.array([size, rng.uniform(*TORUS_MINOR_FRACTION) * size, 0.0, 0.0])
    if kind == "capsule":
        radius = CAPSULE_RADIUS_FRACTION * axes[0]
        return np.array([radius, radius, axes[2] + radius, radius])
    if kind == "ellipsoid":
        return np.array([*axes, 0.0])
    raise ValueError(f"unknown primitive '{kind}'; choose from {PRIMITIVES}")


def _bounding_radius(kind: str, params: np.ndarray) -> float:
    """Radius of a sphere about the part's centre that holds it (as ProceduralObjects.part_radius)."""
    if kind in ("cylinder", "cone"):
        return float(np.hypot(max(params[0], params[1]), params[2]))
    if kind == "torus":
        return float(params[0] + params[1])
    if kind == "ellipsoid":
        return float(params[:3].max())
    return float(np.linalg.norm(params[:3]))


def _texture(rng: np.random.Generator) -> dict:
    names = list(TEXTURE_PROBABILITIES)
    weights = np.array([TEXTURE_PROBABILITIES[n] for n in names])
    name = names[int(rng.choice(len(names), p=weights / weights.sum()))]
    colour_a = sample_colour(rng)
    if rng.uniform() < SECOND_COLOUR_INDEPENDENT_PROBABILITY:
        colour_b = sample_colour(rng)
    else:
        colour_b = shifted_colour(rng, colour_a)
    directions = rng.normal(size=(NOISE_WAVES, 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    wavelengths = rng.uniform(MIN_NOISE_WAVELENGTH, MAX_NOISE_WAVELENGTH, size=(NOISE_WAVES, 1))
    waves = np.concatenate([directions / wavelengths, rng.uniform(0.0, 1.0, size=(NOISE_WAVES, 1))], axis=1)
    return {
        "texture": TEXTURES.index(name),
        "colours": np.stack([colour_a, colour_b]),
        "texture_rotation": random_rotation(rng, axis_aligned_probability=0.5),
        "texture_period": rng.uniform(MIN_TEXTURE_PERIOD, MAX_TEXTURE_PERIOD),
        "texture_phase": rng.uniform(0.0, 1.0, size=3),
        "noise_waves": waves,
    }


def draw_object(seed: int, index: int, attempt: int = 0) -> dict[str, np.ndarray]:
    """Raw parameters of one object: a dict of (P, ...) float64 / int64 arrays (P = its parts)."""
    rng = _generator(seed, index, attempt)
    count = int(rng.choice(len(PART_COUNT_PROBABILITIES), p=np.asarray(PART_COUNT_PROBABILITIES))) + 1
    operations = list(OPERATION_PROBABILITIES)
    op_weights = np.array([OPERATION_PROBABILITIES[o] for o in operations])
    parts: list[dict] = []
    for part in range(count):
        kind = PRIMITIVES[int(rng.integers(len(PRIMITIVES)))]
        operation = UNION if part == 0 else operations[int(rng.choice(len(operations), p=op_weights))]
        size = rng.uniform(*(FIRST_PART_SIZE if part == 0 else PART_SIZE))
        if operation == SUBTRACTION:
            size *= CUTTER_SIZE_FACTOR
        params = primitive_params(kind, rng, size)
        rotation = random_rotation(rng)
        if part == 0:
            centre = rng.uniform(-FIRST_PART_JITTER, FIRST_PART_JITTER, size=3)
        else:
            anchors = [p for p in parts if p["operation"] != SUBTRACTION]
            anchor = anchors[int(rng.integers(len(anchors)))]
            direction = rng.normal(size=3)
            direction /= np.linalg.norm(direction)
            centre = anchor["centre"] + direction * anchor["radius"] * rng.uniform(*ATTACH_DISTANCE)
        parts.append({
            "kind": PRIMITIVES.index(kind), "family": PRIMITIVE_FAMILY[kind], "operation": operation,
            "smoothness": rng.uniform(*SMOOTHNESS), "centre": centre, "rotation": rotation, "params": params,
            "radius": _bounding_radius(kind, params), **_texture(rng),
        })
    return {key: np.stack([np.asarray(p[key]) for p in parts]) for key in parts[0] if key != "radius"}


_INTEGER_FIELDS = ("kind", "family", "operation", "texture")


def _stack(drawn: list[dict[str, np.ndarray]], indices: Sequence[int], seed: int) -> ProceduralObjects:
    """Pad per-object (P_k, ...) arrays to a batch (B, P, ...) of CPU tensors (scale 1, offset 0)."""
    count = max(len(d["kind"]) for d in drawn)
    fields: dict[str, Tensor] = {}
    for key in drawn[0]:
        padded = []
        for d in drawn:
            value = d[key]
            pad = np.zeros((count - len(value), *value.shape[1:]), dtype=value.dtype)
            if key in ("rotation", "texture_rotation"):
                pad = pad + np.eye(3)
            if key == "params":
                pad = pad + 1.0  # harmless shapes for padding parts (never combined)
            padded.append(np.concatenate([value, pad]))
        array = np.stack(padded)
        dtype = torch.long if key in _INTEGER_FIELDS else torch.float32
        fields[key] = torch.as_tensor(array).to(dtype)
    active = torch.zeros(len(drawn), count, dtype=torch.bool)
    for row, d in enumerate(drawn):
        active[row, : len(d["kind"])] = True
    batch = len(drawn)
    return ProceduralObjects(indices=torch.as_tensor(list(indices), dtype=torch.long), active=active,
                             scale=torch.ones(batch), offset=torch.zeros(batch, 3), seed=int(seed), **fields)


# ------------------------------------------------------------------ normalisation
def raw_extent(objects: ProceduralObjects) -> tuple[Tensor, Tensor]:
    """(B, 3) low and high corners of a box holding every raw surface (padded by smooth unions)."""
    radius = objects.part_radius()
    adds = objects.active & (objects.operation != SUBTRACTION)
    margin = (objects.smoothness * objects.active).amax(-1)[:, None] + 1e-3
    big = torch.finfo(radius.dtype).max
    low = torch.where(adds[..., None], objects.centre - radius[..., None], big).amin(1) - margin
    high = torch.where(adds[..., None], objects.centre + radius[..., None], -big).amax(1) + margin
    return low, high


def _grid(low: Tensor, high: Tensor, resolution: int) -> Tensor:
    """(B, R^3, 3) grid points spanning each object's box, corners included."""
    steps = torch.linspace(0.0, 1.0, resolution, device=low.device)
    fractions = torch.stack(torch.meshgrid(steps, steps, steps, indexing="ij"), dim=-1).reshape(-1, 3)
    return low[:, None] + fractions[None] * (high - low)[:, None]


def _gather_points(points: Tensor, index: Tensor) -> Tensor:
    return torch.gather(points, 1, index[..., None].expand(-1, -1, points.shape[-1]))


def _raw_distance(objects: ProceduralObjects, points: Tensor) -> Tensor:
    return signed_distance(objects, points)  # objects carry scale 1, offset 0 here


def _project_to_surface(objects: ProceduralObjects, points: Tensor) -> tuple[Tensor, Tensor]:
    """Newton steps ``p -= d grad / |grad|^2`` toward the surface; returns points and final |d|."""
    # One SDF evaluation per step at the points and their six central-difference neighbours
    # (7 N points), not seven: the same numbers in a seventh of the kernel launches.
    offsets = torch.eye(3, device=points.device) * GRADIENT_STEP
    stencil = torch.cat([torch.zeros(1, 3, device=points.device), offsets, -offsets])  # (7, 3)
    count = points.shape[1]
    for _ in range(NEWTON_STEPS):
        probes = (points[:, None] + stencil[None, :, None]).reshape(points.shape[0], 7 * count, 3)
        values = _raw_distance(objects, probes).reshape(points.shape[0], 7, count)
        distance = values[:, 0]
        gradient = ((values[:, 1:4] - values[:, 4:7]) / (2.0 * GRADIENT_STEP)).permute(0, 2, 1)
        squared = (gradient * gradient).sum(-1, keepdim=True).clamp_min(1e-12)
        points = points - distance[..., None] * gradient / squared
    return points, _raw_distance(objects, points).abs()


def measure_normalisation(objects: ProceduralObjects,
                          resolution: int = NORMALISATION_GRID) -> tuple[Tensor, Tensor, Tensor]:
    """Normalisation of raw objects (their own scale / offset are ignored).

    Returns:
        scale (B,), offset (B, 3) (``x_normalised = scale * x_raw + offset``) and ok (B,) bool:
        False where the composite is (nearly) empty and must be redrawn.
    """
    batch = len(objects)
    device = objects.device
    raw = objects.with_normalisation(torch.ones(batch, device=device), torch.zeros(batch, 3, device=device))
    if acceleration.compile_enabled(objects.device):
        raw = raw.padded(MAX_PARTS)
    scales, offsets, oks = [], [], []
    for start in range(0, batch, OBJECTS_PER_CHUNK):
        chunk = raw.select(slice(start, start + OBJECTS_PER_CHUNK))
        low, high = raw_extent(chunk)
        points = _grid(low, high, resolution)
        distance = _raw_distance(chunk, points)
        inside = (distance < 0).sum(1)
        step = (high - low) / (resolution - 1)
        cell = torch.sqrt((step * step).sum(-1))  # (b,) cell diagonal
        index, valid = compact(distance.abs() < cell[:, None])
        surface, residual = _project_to_surface(chunk, _gather_points(points, index))
        valid = valid & (residual < SURFACE_TOLERANCE)
        big = torch.finfo(surface.dtype).max
        low_s = torch.where(valid[..., None], surface, big).amin(1)
        high_s = torch.where(valid[..., None], surface, -big).amax(1)
        centre = 0.5 * (low_s + high_s)
        offset_points = surface - centre[:, None]
        reach = torch.sqrt((offset_points * offset_points).sum(-1))
        radius = torch.where(valid, reach, torch.zeros_like(reach)).amax(1)
        ok = (inside >= MIN_INSIDE_FRACTION * resolution ** 3) & valid.any(1) & (radius > 0)
        scale = PROCEDURAL_RADIUS / radius.clamp_min(1e-6)
        scales.append(scale)
        offsets.append(-scale[:, None] * centre)
        oks.append(ok)
    return torch.cat(scales), torch.cat(offsets), torch.cat(oks)


def sample_objects(indices: Sequence[int], seed: int, device: torch.device | str = "cpu") -> ProceduralObjects:
    """Random composites, normalised (bounding box centred at the origin, bounding sphere of
    radius :data:`PROCEDURAL_RADIUS`). Object k depends only on ``(seed, indices[k])``.

    Args:
        indices: non-negative object indices (B of them; repeats allowed).
        seed: non-negative dataset seed.
        device: where the returned tensors (and the normalisation's grid evaluation) live.
    """
    indices = [int(i) for i in indices]
    if seed < 0 or any(i < 0 for i in indices):
        raise ValueError(f"seed and indices must be non-negative, got seed {seed} and indices {indices}")
    if not indices:
        raise ValueError("sample_objects needs at least one index")
    attempts = [0] * len(indices)
    drawn = [draw_object(seed, i, 0) for i in indices]
    pending = list(range(len(indices)))
    scale = torch.ones(len(indices), device=device)
    offset = torch.zeros(len(indices), 3, device=device)
    first = None
    while pending:
        batch = _stack([drawn[k] for k in pending], [indices[k] for k in pending], seed).to(device)
        first = batch if first is None else first
        s, o, ok = measure_normalisation(batch)
        ok_list = ok.tolist()
        done = [row for row, good in enumerate(ok_list) if good]
        rows = to_device_async(torch.tensor(done, dtype=torch.long), device)
        targets = to_device_async(torch.tensor([pending[row] for row in done], dtype=torch.long), device)
        scale.index_copy_(0, targets, s[rows].to(scale.dtype))
        offset.index_copy_(0, targets, o[rows].to(offset.dtype))
        retry = []
        for row, k in enumerate(pending):
            if ok_list[row]:
                continue
            attempts[k] += 1
            if attempts[k] >= MAX_ATTEMPTS:
                raise RuntimeError(f"object {indices[k]} (seed {seed}): no usable composite in {MAX_ATTEMPTS} draws")
            drawn[k] = draw_object(seed, indices[k], attempts[k])
            retry.append(k)
        pending = retry
    if not any(attempts):  # nothing was redrawn: the first batch is already every object, on the device
        return first.with_normalisation(scale, offset)
    return _stack(drawn, indices, seed).to(device).with_normalisation(scale, offset)


def single_part_objects(kind: str, params: Sequence[float], colour: Sequence[float] = (0.5, 0.5, 0.5),
                        centre: Sequence[float] = (0.0, 0.0, 0.0), rotation: np.ndarray | None = None,
                        device: torch.device | str = "cpu") -> ProceduralObjects:
    """A batch of one object made of one solid-coloured primitive with the given family parameters
    (see :mod:`mira.data.procedural.sdf`), not normalised (scale 1, offset 0): for tests and
    calibration, where the analytic answer is known."""
    drawn = {
        "kind": np.array([PRIMITIVES.index(kind)]), "family": np.array([PRIMITIVE_FAMILY[kind]]),
        "operation": np.array([UNION]), "smoothness": np.array([0.1]), "centre": np.array([centre], dtype=float),
        "rotation": (np.eye(3) if rotation is None else np.asarray(rotation, dtype=float))[None],
        "params": np.array([params], dtype=float), "texture": np.array([TEXTURES.index("solid")]),
        "colours": np.array([[colour, colour]], dtype=float), "texture_rotation": np.eye(3)[None],
        "texture_period": np.array([MIN_TEXTURE_PERIOD]), "texture_phase": np.zeros((1, 3)),
        "noise_waves": np.zeros((1, NOISE_WAVES, 4)),
    }
    return _stack([drawn], [0], 0).to(device)
