"""Signed distance functions of the primitives and the operations that combine them.

Every primitive lives in its own *local* frame (centred at the origin, its axis of symmetry
along local +Z) and is described by four numbers. Eight named primitives map onto four SDF
*families*, so a batch evaluates four closed forms per (point, part) whatever the mix:

==============  ===============  ===========================================================
primitive       family           parameters ``(p0, p1, p2, p3)``
==============  ===============  ===========================================================
sphere          round box        ``(r, r, r, r)``: a box of zero size rounded by ``r``
box             round box        half extents ``(hx, hy, hz)``, rounding 0
rounded box     round box        outer half extents ``(hx, hy, hz)``, rounding ``rho``
capsule         round box        ``(r, r, h + r, r)``: a segment of half length ``h``, radius r
cylinder        capped cone      bottom radius = top radius ``r``, half height ``h``
cone            capped cone      bottom radius ``r1`` (at -h), top radius ``r2`` (at +h), ``h``
torus           torus            major radius ``R`` (in the local XY plane), minor radius ``r``
ellipsoid       ellipsoid        radii ``(rx, ry, rz)``
==============  ===============  ===========================================================

Round box, capped cone and torus distances are exact (Inigo Quilez's closed forms); the
ellipsoid uses iq's ``k0 (k0 - 1) / k1`` bound outside and near the surface, and deep inside
the conservative ``(k0 - 1) min(r)`` so that a subtracted ellipsoid never claims a surface at
its centre. Combinations (union = min, smooth union = polynomial smooth-min, subtraction =
max(d, -d_i)) are bounds: outside the surface never longer than the true distance, which is
all sphere tracing needs (inside, a smooth union may claim a little more depth than there is).

Everything here is elementwise torch (no matrix products, no norms with library-dependent
summation), so an object's distances are bitwise the same in any batch it is evaluated in.
"""

from __future__ import annotations

import torch
from torch import Tensor

PRIMITIVES = ("sphere", "box", "rounded_box", "cylinder", "cone", "torus", "capsule", "ellipsoid")
FAMILY_ROUND_BOX, FAMILY_CAPPED_CONE, FAMILY_TORUS, FAMILY_ELLIPSOID = 0, 1, 2, 3
PRIMITIVE_FAMILY = {
    "sphere": FAMILY_ROUND_BOX,
    "box": FAMILY_ROUND_BOX,
    "rounded_box": FAMILY_ROUND_BOX,
    "capsule": FAMILY_ROUND_BOX,
    "cylinder": FAMILY_CAPPED_CONE,
    "cone": FAMILY_CAPPED_CONE,
    "torus": FAMILY_TORUS,
    "ellipsoid": FAMILY_ELLIPSOID,
}
# How a part joins the parts before it (part 0 is always a union with nothing).
UNION, SMOOTH_UNION, SUBTRACTION = 0, 1, 2
OPERATIONS = ("union", "smooth_union", "subtraction")
# Guards against division by zero (world units); far below any primitive size.
_TINY = 1e-9


def _length3(x: Tensor, y: Tensor, z: Tensor) -> Tensor:
    return torch.sqrt(x * x + y * y + z * z)


def _length2(x: Tensor, y: Tensor) -> Tensor:
    return torch.sqrt(x * x + y * y)


def round_box_sdf(p: Tensor, params: Tensor) -> Tensor:
    """Exact SDF of a box with half extents ``params[..., :3]`` rounded by ``params[..., 3]``.

    Args:
        p: (..., 3) local points.
        params: (..., 4) broadcastable to ``p``.
    Returns:
        (...) signed distances.
    """
    rounding = params[..., 3]
    qx = p[..., 0].abs() - (params[..., 0] - rounding)
    qy = p[..., 1].abs() - (params[..., 1] - rounding)
    qz = p[..., 2].abs() - (params[..., 2] - rounding)
    outside = _length3(qx.clamp_min(0.0), qy.clamp_min(0.0), qz.clamp_min(0.0))
    inside = torch.maximum(qx, torch.maximum(qy, qz)).clamp_max(0.0)
    return outside + inside - rounding


def capped_cone_sdf(p: Tensor, params: Tensor) -> Tensor:
    """Exact SDF of a capped cone along local Z: bottom radius ``params[..., 0]`` at
    ``z = -h``, top radius ``params[..., 1]`` at ``z = +h``, ``h = params[..., 2]`` (a
    cylinder when both radii agree). (..., 3), (..., 4) -> (...)."""
    r1, r2, h = params[..., 0], params[..., 1], params[..., 2]
    qx = _length2(p[..., 0], p[..., 1])
    qy = p[..., 2]
    # distance to the caps
    cap_radius = torch.where(qy < 0.0, r1, r2)
    ca_x = qx - torch.minimum(qx, cap_radius)
    ca_y = qy.abs() - h
    # distance to the slanted side: segment from (r2, h) to (r1, -h)
    k2x, k2y = r2 - r1, 2.0 * h
    t = (((r2 - qx) * k2x + (h - qy) * k2y) / (k2x * k2x + k2y * k2y).clamp_min(_TINY)).clamp(0.0, 1.0)
    cb_x = qx - r2 + k2x * t
    cb_y = qy - h + k2y * t
    sign = torch.where((cb_x < 0.0) & (ca_y < 0.0), -1.0, 1.0)
    return sign * torch.sqrt(torch.minimum(ca_x * ca_x + ca_y * ca_y, cb_x * cb_x + cb_y * cb_y))


def torus_sdf(p: Tensor, params: Tensor) -> Tensor:
    """Exact SDF of a torus around local Z: major radius ``params[..., 0]``, minor
    ``params[..., 1]``. (..., 3), (..., 4) -> (...)."""
    ring = _length2(p[..., 0], p[..., 1]) - params[..., 0]
    return _length2(ring, p[..., 2]) - params[..., 1]


def ellipsoid_sdf(p: Tensor, params: Tensor) -> Tensor:
    """Ellipsoid with radii ``params[..., :3]``: iq's bound ``k0 (k0 - 1) / k1`` (unit gradient on
    the surface), never shallower inside than the conservative ``(k0 - 1) min(r)``.
    (..., 3), (..., 4) -> (...)."""
    rx, ry, rz = params[..., 0], params[..., 1], params[..., 2]
    x, y, z = p[..., 0], p[..., 1], p[..., 2]
    k0 = _length3(x / rx, y / ry, z / rz)
    k1 = _length3(x / (rx * rx), y / (ry * ry), z / (rz * rz)).clamp_min(_TINY)
    bound = k0 * (k0 - 1.0) / k1
    conservative = (k0 - 1.0) * torch.minimum(rx, torch.minimum(ry, rz))
    return torch.where(k0 < 1.0, torch.minimum(bound, conservative), bound)


def primitive_sdf(p: Tensor, family: Tensor, params: Tensor) -> Tensor:
    """SDF of each part's primitive at local points.

    Args:
        p: (..., 3) points in the part's local frame.
        family: (...) long family index (``FAMILY_*``), broadcastable to ``p[..., 0]``.
        params: (..., 4) family parameters, broadcastable to ``p``.
    Returns:
        (...) signed distances (negative inside).
    """
    distance = round_box_sdf(p, params)
    distance = torch.where(family == FAMILY_CAPPED_CONE, capped_cone_sdf(p, params), distance)
    distance = torch.where(family == FAMILY_TORUS, torus_sdf(p, params), distance)
    return torch.where(family == FAMILY_ELLIPSOID, ellipsoid_sdf(p, params), distance)


def to_local(points: Tensor, centre: Tensor, rotation: Tensor) -> Tensor:
    """World points into each part's frame: ``rotation^T (x - centre)``, written elementwise.

    Args:
        points: (B, N, 3).
        centre: (B, P, 3).
        rotation: (B, P, 3, 3) part-to-world rotations (columns = the part's axes in world).
    Returns:
        (B, N, P, 3) local points.
    """
    offset = points[:, :, None, :] - centre[:, None, :, :]  # (B, N, P, 3)
    axes = rotation[:, None]  # (B, 1, P, 3, 3)
    return (offset[..., 0:1] * axes[..., 0, :] + offset[..., 1:2] * axes[..., 1, :]
            + offset[..., 2:3] * axes[..., 2, :])


def smooth_min_weight(a: Tensor, b: Tensor, k: Tensor) -> Tensor:
    """Weight of ``a`` in the polynomial smooth minimum of ``a`` and ``b`` with radius ``k``:
    1 where ``a`` is smaller by more than ``k``, 0 where larger by more than ``k``."""
    return (0.5 + 0.5 * (b - a) / k.clamp_min(_TINY)).clamp(0.0, 1.0)


def combine_step(distance: Tensor, part: Tensor, operation: Tensor, smoothness: Tensor,
                 active: Tensor) -> tuple[Tensor, Tensor]:
    """Join one more part onto the running distance.

    Args:
        distance: (B, N) distance of the parts so far.
        part: (B, N) distance of the next part.
        operation, smoothness, active: (B, 1) the part's ``UNION`` / ``SMOOTH_UNION`` /
            ``SUBTRACTION``, smooth-min radius and whether it exists.
    Returns:
        The new distance (B, N) and the weight (B, N) in [0, 1] of the *new part* in the
        colour there (1: the new part's colour, 0: keep the old).
    """
    union = torch.minimum(distance, part)
    keep = smooth_min_weight(distance, part, smoothness)  # weight of the old distance
    smooth = keep * distance + (1.0 - keep) * part - smoothness * keep * (1.0 - keep)
    subtraction = torch.maximum(distance, -part)
    new = torch.where(operation == UNION, union, torch.where(operation == SMOOTH_UNION, smooth, subtraction))
    weight = torch.where(operation == UNION, (part < distance).to(distance.dtype),
                         torch.where(operation == SMOOTH_UNION, 1.0 - keep, (-part > distance).to(distance.dtype)))
    return torch.where(active, new, distance), torch.where(active, weight, torch.zeros_like(weight))
