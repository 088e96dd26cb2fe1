"""Multi-view data: readers of our renders, zero123 ``views_release`` and NeRF-synthetic /
nerfstudio folders (:mod:`mira.data.formats`), whole-object loading (:func:`load_object_views`)
and the training dataset (:class:`MultiViewDataset`).

Dataset creation lives next to it: :mod:`mira.data.synthetic` (procedural objects),
:mod:`mira.data.objaverse_source` (downloads), :mod:`mira.data.render_jobs` (parallel Blender
renders, index.json); the command line is ``load_input_data.py``.
"""

from __future__ import annotations

import importlib
from typing import Any

# name -> the submodule that defines it; imported on first use (PyTorch is not needed to render a
# dataset, and load_input_data.py --help must answer at once).
_EXPORTS = {
    "RENDER_BOX_SIZE": "formats",
    "ZERO123_WORLD_SCALE": "formats",
    "DatasetFormatError": "formats",
    "ViewIndex": "formats",
    "detect_format": "formats",
    "read_view_index": "formats",
    "MultiViewDataset": "dataset",
    "ImageLoadError": "images",
    "composite": "images",
    "load_rgba": "images",
    "read_index": "index",
    "ObjectViews": "views",
    "load_object_views": "views",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    """``from mira.data import MultiViewDataset`` imports :mod:`mira.data.dataset` then."""
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"mira.data.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'mira.data' has no attribute {name!r}")
