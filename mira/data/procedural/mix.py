"""Procedural training samples with renders from disk mixed in (``data.procedural_mix_fraction``).

The procedural stream is endless but comes from one renderer (sphere tracing); a dataset of Blender
renders (``load_input_data.py``: real meshes, or the procedural meshes rendered by Cycles) is small but
looks like the images users bring. :class:`RenderMixDataset` makes each training sample, independently
with probability ``procedural_mix_fraction``, an object of ``procedural_mix_dir``'s "train" split instead of
a procedural object. Both kinds go through the same source-view contract
(:func:`mira.data.source_view.prepare_training_source_view`) and have the same item layout, so one batch
holds both.

Which kind a sample is, and which render object and views it shows, are pure functions of ``(seed, epoch,
index)``, as the procedural stream is: a resumed run replays the same batches, and data worker processes
make the batches the training process would. Sample ``index`` of epoch ``e`` shows render object
``index mod N`` (N render objects) drawn with the key ``e * ceil(E / N) + index div N`` (E samples per
epoch), so the many samples of one object in an epoch each get their own views, crops and background.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from torch.utils.data import Dataset, get_worker_info

from mira.data.dataset import MultiViewDataset
from mira.data.procedural.dataset import ProceduralDataset
from mira.devices import to_device_async

# The keys both kinds of item have (a render item's view names are dropped: procedural items have none).
ITEM_KEYS = ("source_image", "source_c2w", "source_intrinsics", "target_images", "target_masks", "target_c2w",
             "target_intrinsics", "background", "world_to_canonical", "object_id")
_MIX_STREAM = 21


class RenderMixDataset(Dataset):
    """The procedural training stream with a share of render objects.

    Args:
        procedural: the "train" :class:`ProceduralDataset` (its length is this dataset's; it renders on its device).
        renders: a :class:`MultiViewDataset` of the renders to mix in (its "train" split).
        fraction: probability in (0, 1) that a sample is a render object.
        seed: the mix's seed (the run's ``train.seed``).

    Items: the layout of both datasets (``ITEM_KEYS``: ``source_image`` (3, S, S), ``target_images`` (K, 3, H, W),
    ``target_masks`` (K, 1, H, W), cameras, ``background`` (3,), ``world_to_canonical`` (4, 4), ``object_id``), on
    the procedural dataset's device in the training process and on the CPU in a data worker.
    """

    renders_on_device = True

    def __init__(self, procedural: ProceduralDataset, renders: MultiViewDataset, fraction: float, seed: int) -> None:
        if not 0.0 < fraction < 1.0:
            raise ValueError(f"the mix fraction must be in (0, 1), got {fraction}")
        if len(renders) == 0:
            raise ValueError(f"{renders.root} has no objects in its '{renders.split}' split to mix in; render some with "
                             f"load_input_data.py --output_path {renders.root}")
        self.procedural = procedural
        self.renders = renders
        self.fraction = float(fraction)
        self.seed = int(seed)
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.procedural)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)  # the render items take their epoch key from here (MultiViewDataset.draw)
        self.procedural.set_epoch(epoch)

    @property
    def num_skipped(self) -> int:
        """Image files of the renders skipped so far (corrupt or missing)."""
        return self.renders.num_skipped

    def is_render(self, index: int) -> bool:
        """Whether sample ``index`` of the current epoch is a render object."""
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, self.epoch, int(index), _MIX_STREAM]))
        return bool(rng.uniform() < self.fraction)

    def __getitem__(self, index: int) -> dict:
        return self.__getitems__([index])[0]

    def __getitems__(self, indices: Sequence[int]) -> list[dict]:
        """The samples ``indices`` in order: the procedural ones rendered together in one call, the render ones
        read from disk."""
        indices = [int(i) for i in indices]
        for index in indices:
            if not 0 <= index < len(self):
                raise IndexError(f"index {index} out of range for {len(self)} samples")
        from_renders = [self.is_render(i) for i in indices]
        procedural = [i for i, render in zip(indices, from_renders) if not render]
        procedural_items = iter(self.procedural.__getitems__(procedural) if procedural else [])
        return [self._render_item(i) if render else next(procedural_items) for i, render in zip(indices, from_renders)]

    def _render_item(self, index: int) -> dict:
        count = len(self.renders)
        key = self.epoch * math.ceil(len(self) / count) + index // count
        item = self.renders.draw(index % count, key)
        item = {name: item[name] for name in ITEM_KEYS}
        if get_worker_info() is None:  # the training process: next to the procedural items, on their device
            item = {name: to_device_async(value, self.procedural.device) if name != "object_id" else value
                    for name, value in item.items()}
        return item
