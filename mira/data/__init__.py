"""Multi-view data: readers of our renders, zero123 ``views_release`` and NeRF-synthetic /
nerfstudio folders (:mod:`mira.data.formats`), whole-object loading (:func:`load_object_views`)
and the training dataset (:class:`MultiViewDataset`).

Dataset creation lives next to it: :mod:`mira.data.synthetic` (procedural objects),
:mod:`mira.data.objaverse_source` (downloads), :mod:`mira.data.render_jobs` (parallel Blender
renders, index.json); the command line is ``load_input_data.py``.
"""

from mira.data.formats import (RENDER_BOX_SIZE, ZERO123_WORLD_SCALE, DatasetFormatError, ViewIndex,
                               detect_format, read_view_index)
from mira.data.dataset import MultiViewDataset
from mira.data.images import ImageLoadError, composite, load_rgba
from mira.data.index import read_index
from mira.data.views import ObjectViews, load_object_views

__all__ = [
    "RENDER_BOX_SIZE",
    "ZERO123_WORLD_SCALE",
    "DatasetFormatError",
    "ImageLoadError",
    "MultiViewDataset",
    "ObjectViews",
    "ViewIndex",
    "composite",
    "detect_format",
    "load_object_views",
    "load_rgba",
    "read_index",
    "read_view_index",
]
