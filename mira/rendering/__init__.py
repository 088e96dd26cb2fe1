"""NeRF triplane renderer: ray sampling, triplane lookup, field MLP, compositing.

``TriplaneRenderer(cfg.renderer, triplane_dim=C)`` is the entry point (see SPEC / docs/ARCHITECTURE.md).
"""

from mira.rendering.compositing import composite
from mira.rendering.field import TriplaneField
from mira.rendering.ray_sampler import importance_samples, intersect_box, interval_edges, merge_samples, stratified_samples
from mira.rendering.renderer import TriplaneRenderer
from mira.rendering.triplane import normalize_points, sample_triplane

__all__ = [
    "TriplaneRenderer",
    "TriplaneField",
    "composite",
    "importance_samples",
    "intersect_box",
    "interval_edges",
    "merge_samples",
    "normalize_points",
    "sample_triplane",
    "stratified_samples",
]
