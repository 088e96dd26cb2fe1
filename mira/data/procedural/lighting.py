"""Per-object lighting, fixed in the world frame: the lights of ``blender_scripts/dataset_rendering.py``.

The script lights every object with a uniform environment (Cycles world background: colour x
strength) and sun lamps (irradiance ``strength`` W/m^2 of colour ``colour`` from a direction,
with an angular diameter). Defaults (``setup_lighting``): a white environment of strength 0.7 and
one sun of 0.9 W/m^2 from azimuth 45 deg, elevation 60 deg, 10 deg wide. ``--random_lighting``:
environment strength U(0.3, 0.9) tinted by ``1 - U(0, 0.15)`` per channel, then 1..3 suns, each
with colour ``1 - U(0, 0.2)``, azimuth U(0, 360), elevation U(10, 85), strength U(0.5, 2.5) and
angle U(2, 30) degrees.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Sequence

import numpy as np
import torch
from torch import Tensor

from mira.cameras import spherical_to_cartesian
from mira.data.procedural.objects import batch_index
from mira.devices import to_device_async

DEFAULT_ENVIRONMENT_STRENGTH = 0.7
DEFAULT_SUN_STRENGTH = 0.9
DEFAULT_SUN_AZIMUTH_DEG = 45.0
DEFAULT_SUN_ELEVATION_DEG = 60.0
DEFAULT_SUN_ANGLE_DEG = 10.0
# --random_lighting ranges of the Blender script.
RANDOM_ENVIRONMENT_STRENGTH = (0.3, 0.9)
RANDOM_ENVIRONMENT_TINT = 0.15
RANDOM_SUN_COUNT = (1, 3)
RANDOM_SUN_TINT = 0.2
RANDOM_SUN_ELEVATION_DEG = (10.0, 85.0)
RANDOM_SUN_STRENGTH = (0.5, 2.5)
RANDOM_SUN_ANGLE_DEG = (2.0, 30.0)
MAX_SUNS = RANDOM_SUN_COUNT[1]
# Stream of the lighting generator, apart from the objects' (see sample_objects).
LIGHTING_STREAM = 1


@dataclass
class Lighting:
    """Lights of B objects, in the world frame (S suns per object, unused ones of zero irradiance).

    Attributes:
        environment: (B, 3) linear-RGB radiance of the uniform environment (colour x strength).
        sun_direction: (B, S, 3) unit vectors from the object towards each sun.
        sun_irradiance: (B, S, 3) linear-RGB irradiance of each sun (colour x strength, W/m^2).
        sun_angle: (B, S) angular diameter of each sun (radians): the width of its soft shadows.
    """

    environment: Tensor
    sun_direction: Tensor
    sun_irradiance: Tensor
    sun_angle: Tensor

    def to(self, device: torch.device | str) -> "Lighting":
        return replace(self, environment=self.environment.to(device), sun_direction=self.sun_direction.to(device),
                       sun_irradiance=self.sun_irradiance.to(device), sun_angle=self.sun_angle.to(device))

    def __len__(self) -> int:
        return int(self.environment.shape[0])

    def select(self, index: int | slice | list[int]) -> "Lighting":
        index = batch_index(index, self.environment.device)
        return Lighting(self.environment[index], self.sun_direction[index], self.sun_irradiance[index],
                        self.sun_angle[index])

    def describe(self, index: int) -> dict:
        """JSON-able description of object ``index``'s lights (as the Blender script's metadata)."""
        suns = []
        for s in range(self.sun_direction.shape[1]):
            irradiance = self.sun_irradiance[index, s]
            strength = float(irradiance.max())
            if strength <= 0:
                continue
            azimuth, elevation = _direction_angles(self.sun_direction[index, s])
            suns.append({"type": "SUN", "azimuth_deg": azimuth, "elevation_deg": elevation, "strength": strength,
                         "colour": (irradiance / strength).tolist(),
                         "angle_deg": math.degrees(float(self.sun_angle[index, s]))})
        environment = self.environment[index]
        strength = float(environment.max())
        return {"environment_strength": strength,
                "environment_colour": (environment / max(strength, 1e-12)).tolist(), "lights": suns}


def _direction_angles(direction: Tensor) -> tuple[float, float]:
    x, y, z = (float(v) for v in direction)
    return math.degrees(math.atan2(y, x)), math.degrees(math.asin(max(-1.0, min(1.0, z))))


def sun_direction(azimuth_deg: float, elevation_deg: float) -> Tensor:
    """(3,) unit vector towards a sun at (azimuth, elevation), as the Blender script places it."""
    return spherical_to_cartesian(torch.tensor(azimuth_deg, dtype=torch.float64),
                                  torch.tensor(elevation_deg, dtype=torch.float64),
                                  torch.tensor(1.0, dtype=torch.float64)).float()


def default_lighting(batch: int, device: torch.device | str = "cpu") -> Lighting:
    """The Blender script's default lights for ``batch`` objects: white environment 0.7 + one
    0.9 W/m^2 sun from azimuth 45, elevation 60, 10 deg wide."""
    direction = sun_direction(DEFAULT_SUN_AZIMUTH_DEG, DEFAULT_SUN_ELEVATION_DEG)
    return Lighting(
        environment=torch.full((batch, 3), DEFAULT_ENVIRONMENT_STRENGTH, device=device),
        sun_direction=to_device_async(direction, device).expand(batch, 1, 3).clone(),
        sun_irradiance=torch.full((batch, 1, 3), DEFAULT_SUN_STRENGTH, device=device),
        sun_angle=torch.full((batch, 1), math.radians(DEFAULT_SUN_ANGLE_DEG), device=device),
    )


def random_lighting(indices: Sequence[int], seed: int, device: torch.device | str = "cpu") -> Lighting:
    """Random lights like the Blender script's ``--random_lighting``; object k's depend only on
    ``(seed, indices[k])`` (padded to :data:`MAX_SUNS` suns)."""
    environment, directions, irradiance, angles = [], [], [], []
    for index in indices:
        rng = np.random.default_rng(np.random.SeedSequence([int(seed), int(index), LIGHTING_STREAM]))
        strength = rng.uniform(*RANDOM_ENVIRONMENT_STRENGTH)
        tint = 1.0 - rng.uniform(0.0, RANDOM_ENVIRONMENT_TINT, size=3)
        environment.append(tint * strength)
        sun_dirs, sun_irr, sun_ang = np.zeros((MAX_SUNS, 3)), np.zeros((MAX_SUNS, 3)), np.zeros(MAX_SUNS)
        sun_dirs[:, 2] = 1.0
        for sun in range(int(rng.integers(RANDOM_SUN_COUNT[0], RANDOM_SUN_COUNT[1] + 1))):
            colour = 1.0 - rng.uniform(0.0, RANDOM_SUN_TINT, size=3)
            azimuth = math.radians(rng.uniform(0.0, 360.0))
            elevation = math.radians(rng.uniform(*RANDOM_SUN_ELEVATION_DEG))
            sun_dirs[sun] = [math.cos(elevation) * math.cos(azimuth), math.cos(elevation) * math.sin(azimuth),
                             math.sin(elevation)]
            sun_irr[sun] = colour * rng.uniform(*RANDOM_SUN_STRENGTH)
            sun_ang[sun] = math.radians(rng.uniform(*RANDOM_SUN_ANGLE_DEG))
        directions.append(sun_dirs)
        irradiance.append(sun_irr)
        angles.append(sun_ang)

    def tensor(values: list) -> Tensor:
        return to_device_async(torch.as_tensor(np.stack(values), dtype=torch.float32), device)

    return Lighting(tensor(environment), tensor(directions), tensor(irradiance), tensor(angles))
