"""Colours of procedural parts: sRGB transfer functions and perceptual colour sampling.

Albedos are *linear* RGB (what Blender's shaders use). Blender's PLY importer reads vertex
colour bytes as sRGB and converts them to linear (``import_colors='SRGB'``, its default,
checked with bpy 5.0.1: byte 128 becomes 0.2159 = sRGB^-1(128/255)), and its "Standard"
view transform writes the sRGB OETF of linear radiance (checked: radiance 0.002 / 0.2 / 0.7
gives bytes 6.6 / 123.7 / 217.5, the piecewise sRGB curve, not a 2.2 gamma). So a mesh whose
vertex bytes are ``round(255 linear_to_srgb(albedo))`` renders in Blender with ``albedo``.

Colours are drawn in OKLCh (Ottosson's perceptual lightness / chroma / hue) from named
classes, so that saturated and pastel colours, greys, whites and near-blacks all occur.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

# sRGB transfer function (IEC 61966-2-1).
SRGB_LINEAR_LIMIT = 0.0031308
SRGB_ENCODED_LIMIT = 0.04045
SRGB_SLOPE = 12.92
SRGB_GAMMA = 2.4
SRGB_OFFSET = 0.055

# OKLab -> linear sRGB (Ottosson 2020).
_OKLAB_TO_LMS = np.array([[1.0, 0.3963377774, 0.2158037573],
                          [1.0, -0.1055613458, -0.0638541728],
                          [1.0, -0.0894841775, -1.2914855480]])
_LMS_TO_LINEAR_SRGB = np.array([[4.0767416621, -3.3077115913, 0.2309699292],
                                [-1.2684380046, 2.6097574011, -0.3413193965],
                                [-0.0041960863, -0.7034186147, 1.7076147010]])

# Colour classes: probability, OKLab lightness range, chroma range (absolute, or for
# "saturated" a fraction of the most chroma the sRGB gamut allows at that lightness and hue).
COLOUR_CLASSES = {
    "saturated": (0.33, (0.50, 0.85), (0.75, 1.0)),
    "pastel": (0.15, (0.82, 0.95), (0.03, 0.09)),
    "muted": (0.12, (0.35, 0.72), (0.02, 0.08)),
    "grey": (0.12, (0.35, 0.85), (0.0, 0.01)),
    "white": (0.16, (0.94, 1.0), (0.0, 0.008)),
    "near_black": (0.12, (0.12, 0.30), (0.0, 0.03)),
}
# Bisection steps when pulling a colour's chroma into the sRGB gamut.
_GAMUT_STEPS = 24


def linear_to_srgb(linear: Tensor) -> Tensor:
    """sRGB OETF (Blender's "Standard" view transform) of linear values, clipped to [0, 1]."""
    x = linear.clamp(0.0, 1.0)
    curve = (1.0 + SRGB_OFFSET) * x.clamp_min(SRGB_LINEAR_LIMIT) ** (1.0 / SRGB_GAMMA) - SRGB_OFFSET
    return torch.where(x <= SRGB_LINEAR_LIMIT, x * SRGB_SLOPE, curve)


def srgb_to_linear(encoded: Tensor) -> Tensor:
    """Inverse of :func:`linear_to_srgb` on [0, 1]."""
    x = encoded.clamp(0.0, 1.0)
    curve = ((x.clamp_min(SRGB_ENCODED_LIMIT) + SRGB_OFFSET) / (1.0 + SRGB_OFFSET)) ** SRGB_GAMMA
    return torch.where(x <= SRGB_ENCODED_LIMIT, x / SRGB_SLOPE, curve)


def oklch_to_linear_srgb(lightness: float, chroma: float, hue: float) -> np.ndarray:
    """Linear sRGB (3,) of an OKLCh colour (hue in radians); may lie outside [0, 1]."""
    return _oklab_to_linear_srgb(lightness, chroma, np.cos(hue), np.sin(hue))


def _oklab_to_linear_srgb(lightness: float, chroma: float, cos_hue: float, sin_hue: float) -> np.ndarray:
    lab = np.array([lightness, chroma * cos_hue, chroma * sin_hue])
    return _LMS_TO_LINEAR_SRGB @ (_OKLAB_TO_LMS @ lab) ** 3


# The two matrices as nested tuples of floats, for the bisection's scalar arithmetic.
_OKLAB_TO_LMS_ROWS = tuple(tuple(float(v) for v in row) for row in _OKLAB_TO_LMS)
_LMS_TO_LINEAR_SRGB_ROWS = tuple(tuple(float(v) for v in row) for row in _LMS_TO_LINEAR_SRGB)


def _in_gamut_scalar(lightness: float, a: float, b: float) -> bool:
    """Whether OKLab (lightness, a, b) maps inside linear sRGB [0, 1]^3: :func:`_oklab_to_linear_srgb`'s
    products and sums in the same order, on Python floats (numpy on 3-vectors cost ~10 us per call, and
    this runs ``_GAMUT_STEPS`` times per colour in the training process's data thread)."""
    l_, m_, s_ = ((row[0] * lightness + row[1] * a + row[2] * b) ** 3 for row in _OKLAB_TO_LMS_ROWS)
    for row in _LMS_TO_LINEAR_SRGB_ROWS:
        value = row[0] * l_ + row[1] * m_ + row[2] * s_
        if value < 0.0 or value > 1.0:
            return False
    return True


def max_chroma(lightness: float, hue: float, upper: float = 0.4) -> float:
    """Largest OKLCh chroma at this lightness and hue that stays inside the sRGB gamut (bisection)."""
    cos_hue, sin_hue = float(np.cos(hue)), float(np.sin(hue))  # numpy's, as oklch_to_linear_srgb
    low, high = 0.0, upper
    for _ in range(_GAMUT_STEPS):
        middle = 0.5 * (low + high)
        if _in_gamut_scalar(lightness, middle * cos_hue, middle * sin_hue):
            low = middle
        else:
            high = middle
    return low


def sample_colour(rng: np.random.Generator, colour_class: str | None = None) -> np.ndarray:
    """One linear-RGB albedo (3,) in [0, 1] from a random (or the given) colour class."""
    names = list(COLOUR_CLASSES)
    if colour_class is None:
        weights = np.array([COLOUR_CLASSES[n][0] for n in names])
        colour_class = names[int(rng.choice(len(names), p=weights / weights.sum()))]
    _, (l_low, l_high), (c_low, c_high) = COLOUR_CLASSES[colour_class]
    lightness = float(rng.uniform(l_low, l_high))
    hue = float(rng.uniform(0.0, 2.0 * np.pi))
    fraction = float(rng.uniform(c_low, c_high))
    limit = max_chroma(lightness, hue)
    chroma = fraction * limit if colour_class == "saturated" else min(fraction, limit)
    return np.clip(oklch_to_linear_srgb(lightness, chroma, hue), 0.0, 1.0)


def shifted_colour(rng: np.random.Generator, colour: np.ndarray) -> np.ndarray:
    """A second colour for a two-colour texture: the same colour lighter or darker (linear RGB)."""
    factor = float(rng.choice([rng.uniform(0.25, 0.6), rng.uniform(1.6, 3.0)]))
    shifted = colour * factor
    if factor > 1.0:
        shifted = shifted + (factor - 1.0) * 0.05  # lift near-blacks too
    return np.clip(shifted, 0.0, 1.0)
