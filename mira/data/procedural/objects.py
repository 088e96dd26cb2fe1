"""A batch of procedural objects (:class:`ProceduralObjects`) and its two fields: the signed
distance (:func:`signed_distance`) and the surface colour (:func:`albedo`).

An object is up to P parts, each a primitive of :mod:`mira.data.procedural.sdf` with its own
rotation, centre, operation (union, smooth union, subtraction) and two-colour texture
(:mod:`mira.data.procedural.texture`). Part parameters are stored in the object's *raw* frame
(as drawn); ``scale`` and ``offset`` normalise it: ``x_normalised = scale * x_raw + offset``,
with the surface's bounding-box centre at the origin and its bounding sphere (about that
centre) of radius :data:`PROCEDURAL_RADIUS`. Both fields take normalised points, like every
other function of the package.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from torch import Tensor

from mira.data.procedural import acceleration
from mira.devices import to_device_async
from mira.data.procedural.sdf import (FAMILY_CAPPED_CONE, FAMILY_ELLIPSOID, FAMILY_ROUND_BOX, FAMILY_TORUS,
                                      OPERATIONS, PRIMITIVES, combine_step, primitive_sdf, to_local)
from mira.data.procedural.texture import TEXTURES, texture_weight

# Bounding-sphere radius of every normalised object (centre = bounding-box centre = origin).
PROCEDURAL_RADIUS = 0.9
# Most parts an object has; compiled functions see batches padded to it (one compilation).
MAX_PARTS = 6
# Part fields (dimension 1 is the part) and the value padding parts take.
_PART_PADDING = {"kind": 0, "family": 0, "active": False, "operation": 0, "smoothness": 1.0, "centre": 0.0,
                 "rotation": "identity", "params": 1.0, "colours": 0.0, "texture": 0, "texture_rotation": "identity",
                 "texture_period": 1.0, "texture_phase": 0.0, "noise_waves": 0.0}


def batch_index(index: int | slice | list[int], device: torch.device | str) -> slice | Tensor:
    """A batch selector that keeps the batch dimension: an int ``i`` becomes ``slice(i, i + 1)``, a list a
    long tensor on ``device``, a slice stays (for the ``select`` of batched procedural containers)."""
    if isinstance(index, int):
        return slice(index, index + 1) if index != -1 else slice(-1, None)
    if isinstance(index, slice):
        return index
    return torch.as_tensor(list(index), dtype=torch.long, device=device)


@dataclass
class ProceduralObjects:
    """B procedural objects, padded to P parts (``active`` marks the real ones; part 0 always is).

    Attributes (every tensor has leading dimension B):
        indices: (B,) long object index; with ``seed`` it determines the object.
        kind: (B, P) long index into :data:`~mira.data.procedural.sdf.PRIMITIVES`.
        family: (B, P) long SDF family (``FAMILY_*`` of :mod:`~mira.data.procedural.sdf`).
        active: (B, P) bool.
        operation: (B, P) long ``UNION`` / ``SMOOTH_UNION`` / ``SUBTRACTION``.
        smoothness: (B, P) smooth-union radius (raw units).
        centre: (B, P, 3) part centres (raw units).
        rotation: (B, P, 3, 3) part-to-world rotations (columns: the part's axes).
        params: (B, P, 4) family parameters (raw units).
        colours: (B, P, 2, 3) linear-RGB albedos ``a`` and ``b`` of the texture.
        texture: (B, P) long index into :data:`~mira.data.procedural.texture.TEXTURES`.
        texture_rotation: (B, P, 3, 3) orientation of the pattern (columns: pattern axes).
        texture_period: (B, P) pattern period (normalised units).
        texture_phase: (B, P, 3) pattern offsets (periods).
        noise_waves: (B, P, W, 4) noise wave vectors (cycles per normalised unit) and phases.
        scale: (B,) and offset: (B, 3): ``x_normalised = scale * x_raw + offset``.
        seed: the seed the objects were drawn with.
    """

    indices: Tensor
    kind: Tensor
    family: Tensor
    active: Tensor
    operation: Tensor
    smoothness: Tensor
    centre: Tensor
    rotation: Tensor
    params: Tensor
    colours: Tensor
    texture: Tensor
    texture_rotation: Tensor
    texture_period: Tensor
    texture_phase: Tensor
    noise_waves: Tensor
    scale: Tensor
    offset: Tensor
    seed: int = 0

    def _tensor_fields(self) -> dict[str, Tensor]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if isinstance(getattr(self, f.name), Tensor)}

    @property
    def device(self) -> torch.device:
        return self.centre.device

    @property
    def num_parts(self) -> int:
        """P, the padded number of parts."""
        return self.kind.shape[1]

    def to(self, device: torch.device | str) -> "ProceduralObjects":
        """The same objects on ``device`` (from the CPU to a GPU through pinned memory, without blocking)."""
        return dataclasses.replace(self, **{k: to_device_async(v, device) for k, v in self._tensor_fields().items()})

    def __len__(self) -> int:
        return int(self.indices.shape[0])

    def select(self, index: int | slice | list[int]) -> "ProceduralObjects":
        """A sub-batch (an int keeps the batch dimension: a batch of one)."""
        index = batch_index(index, self.device)
        return dataclasses.replace(self, **{k: v[index] for k, v in self._tensor_fields().items()})

    def padded(self, parts: int = MAX_PARTS) -> "ProceduralObjects":
        """The same objects with at least ``parts`` part slots (the new ones inactive)."""
        extra = parts - self.num_parts
        if extra <= 0:
            return self
        fields = {}
        for name, value in _PART_PADDING.items():
            tensor = getattr(self, name)
            pad_shape = (tensor.shape[0], extra, *tensor.shape[2:])
            if value == "identity":
                pad = torch.eye(3, dtype=tensor.dtype, device=tensor.device).expand(pad_shape)
            else:
                pad = torch.full(pad_shape, value, dtype=tensor.dtype, device=tensor.device)
            fields[name] = torch.cat([tensor, pad], dim=1)
        return dataclasses.replace(self, **fields)

    def with_normalisation(self, scale: Tensor, offset: Tensor) -> "ProceduralObjects":
        """The same parts with another normalisation ``(scale (B,), offset (B, 3))``."""
        return dataclasses.replace(self, scale=scale, offset=offset)

    def part_radius(self) -> Tensor:
        """(B, P) radius of a sphere about each part's centre that holds the part (raw units)."""
        p = self.params
        round_box = torch.sqrt(p[..., 0] ** 2 + p[..., 1] ** 2 + p[..., 2] ** 2)
        cone = torch.sqrt(torch.maximum(p[..., 0], p[..., 1]) ** 2 + p[..., 2] ** 2)
        torus = p[..., 0] + p[..., 1]
        ellipsoid = p[..., :3].amax(-1)
        radius = torch.where(self.family == FAMILY_ROUND_BOX, round_box, torch.zeros_like(round_box))
        radius = torch.where(self.family == FAMILY_CAPPED_CONE, cone, radius)
        radius = torch.where(self.family == FAMILY_TORUS, torus, radius)
        return torch.where(self.family == FAMILY_ELLIPSOID, ellipsoid, radius)

    def describe(self, index: int) -> dict:
        """A JSON-able description of object ``index`` (parts, operations, textures, normalisation)."""
        parts = []
        for part in range(self.num_parts):
            if not bool(self.active[index, part]):
                continue
            parts.append({
                "primitive": PRIMITIVES[int(self.kind[index, part])],
                "operation": OPERATIONS[int(self.operation[index, part])],
                "texture": TEXTURES[int(self.texture[index, part])],
                "colours_linear": self.colours[index, part].tolist(),
            })
        return {"seed": self.seed, "index": int(self.indices[index]), "parts": parts,
                "normalisation": {"scale": float(self.scale[index]), "offset": self.offset[index].tolist()}}


def _check_points(objects: ProceduralObjects, points: Tensor) -> None:
    if points.dim() != 3 or points.shape[-1] != 3 or points.shape[0] != len(objects):
        raise ValueError(f"points must be (B={len(objects)}, N, 3), got {tuple(points.shape)}")


def _part_distances(points: Tensor, centre: Tensor, rotation: Tensor, family: Tensor, params: Tensor,
                    scale: Tensor, offset: Tensor) -> Tensor:
    raw = (points - offset[:, None, :]) / scale[:, None, None]
    return primitive_sdf(to_local(raw, centre, rotation), family[:, None], params[:, None])


def part_distances(objects: ProceduralObjects, points: Tensor) -> Tensor:
    """Raw-frame signed distance of every part at every point: (B, N, 3) normalised -> (B, N, P)."""
    return _part_distances(points, objects.centre, objects.rotation, objects.family, objects.params,
                           objects.scale, objects.offset)


def distance_from_tensors(points: Tensor, centre: Tensor, rotation: Tensor, family: Tensor, params: Tensor,
                          operation: Tensor, smoothness: Tensor, active: Tensor, scale: Tensor,
                          offset: Tensor) -> Tensor:
    """:func:`signed_distance` on the object's tensors (a pure function: what ``torch.compile`` fuses)."""
    parts = _part_distances(points, centre, rotation, family, params, scale, offset)
    distance = parts[..., 0]
    for part in range(1, parts.shape[-1]):
        distance, _ = combine_step(distance, parts[..., part], operation[:, part:part + 1],
                                   smoothness[:, part:part + 1], active[:, part:part + 1])
    return distance * scale[:, None]


def signed_distance(objects: ProceduralObjects, points: Tensor) -> Tensor:
    """Signed distance (negative inside) of each object's surface, in normalised units.

    Exact for a single sphere, box, rounded box, capsule, cylinder, cone or torus. For
    combinations (and ellipsoids) it is a bound: outside the surface never longer than the
    true distance (what sphere tracing needs); inside, negative, but near smooth unions its
    magnitude may exceed the true depth.

    Args:
        objects: B objects.
        points: (B, N, 3) normalised world points (object b's points in row b).
    Returns:
        (B, N).
    """
    _check_points(objects, points)
    return acceleration.run(distance_from_tensors, points.device, points, *distance_tensors(objects))


def distance_tensors(objects: ProceduralObjects) -> tuple[Tensor, ...]:
    """The tensors :func:`distance_from_tensors` takes after the points."""
    return (objects.centre, objects.rotation, objects.family, objects.params, objects.operation,
            objects.smoothness, objects.active, objects.scale, objects.offset)


def _part_colours(points: Tensor, centre: Tensor, scale: Tensor, offset: Tensor, colours: Tensor,
                  texture: Tensor, texture_rotation: Tensor, texture_period: Tensor, texture_phase: Tensor,
                  noise_waves: Tensor, extent: Tensor) -> Tensor:
    centre = centre * scale[:, None, None] + offset[:, None, :]
    local = to_local(points, centre, texture_rotation)
    weight = texture_weight(local, texture, texture_period, texture_phase, noise_waves, extent)[..., None]
    colour_a, colour_b = colours[:, None, :, 0], colours[:, None, :, 1]
    return colour_a + weight * (colour_b - colour_a)


def _colour_tensors(objects: ProceduralObjects) -> tuple[Tensor, ...]:
    return (objects.colours, objects.texture, objects.texture_rotation, objects.texture_period,
            objects.texture_phase, objects.noise_waves, objects.part_radius() * objects.scale[:, None])


def part_colours(objects: ProceduralObjects, points: Tensor) -> Tensor:
    """Textured linear-RGB colour of every part at every point: (B, N, 3) -> (B, N, P, 3)."""
    return _part_colours(points, objects.centre, objects.scale, objects.offset, *_colour_tensors(objects))


def albedo_from_tensors(points: Tensor, centre: Tensor, rotation: Tensor, family: Tensor, params: Tensor,
                        operation: Tensor, smoothness: Tensor, active: Tensor, scale: Tensor, offset: Tensor,
                        colours: Tensor, texture: Tensor, texture_rotation: Tensor, texture_period: Tensor,
                        texture_phase: Tensor, noise_waves: Tensor, extent: Tensor) -> Tensor:
    """:func:`albedo` on the object's tensors (a pure function, compiled on CUDA)."""
    parts = _part_distances(points, centre, rotation, family, params, scale, offset)
    colours = _part_colours(points, centre, scale, offset, colours, texture, texture_rotation, texture_period,
                            texture_phase, noise_waves, extent)
    distance, colour = parts[..., 0], colours[..., 0, :]
    for part in range(1, parts.shape[-1]):
        distance, weight = combine_step(distance, parts[..., part], operation[:, part:part + 1],
                                        smoothness[:, part:part + 1], active[:, part:part + 1])
        colour = colour + weight[..., None] * (colours[..., part, :] - colour)
    return colour.clamp(0.0, 1.0)


def albedo(objects: ProceduralObjects, points: Tensor) -> Tensor:
    """Linear-RGB base colour at (near-)surface points: (B, N, 3) normalised -> (B, N, 3) in [0, 1].

    Where parts are combined the colour is the nearest part's (union), the cutting part's on a
    subtracted surface, and the smooth-min blend of both across a smooth union.
    """
    _check_points(objects, points)
    return acceleration.run(albedo_from_tensors, points.device, points, *distance_tensors(objects),
                            *_colour_tensors(objects))
