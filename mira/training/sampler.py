"""A distributed sampler that can start mid-epoch, so a resumed run skips consumed batches, and the
epoch-tagged indices that let data workers persist across epochs."""

from __future__ import annotations

import itertools
from typing import Iterator

from torch.utils.data import Dataset, DistributedSampler


class ResumableDistributedSampler(DistributedSampler):
    """:class:`~torch.utils.data.DistributedSampler` (seeded shuffle per epoch, one shard per
    rank) that yields its shard from position ``start_index`` on.

    The permutation depends only on ``(seed, epoch)``, so skipping the first ``n`` indices
    of an epoch reproduces exactly the samples an uninterrupted run would still draw,
    without loading the skipped ones. ``set_epoch`` resets the start to 0.
    """

    def __init__(self, dataset: Dataset, num_replicas: int, rank: int, shuffle: bool = True,
                 seed: int = 0, drop_last: bool = True, tag_epoch: bool = False) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed,
                         drop_last=drop_last)
        self.start_index = 0
        # Yield epoch * len(dataset) + index (read by EpochIndexedDataset) instead of index.
        self.tag_epoch = tag_epoch

    def set_epoch(self, epoch: int) -> None:
        super().set_epoch(epoch)
        self.start_index = 0

    def set_start_index(self, start_index: int) -> None:
        """Skip the first ``start_index`` samples of this rank's shard for the current epoch."""
        if not 0 <= start_index <= self.num_samples:
            raise ValueError(f"start_index {start_index} outside this rank's shard of {self.num_samples} samples")
        self.start_index = start_index

    def __iter__(self) -> Iterator[int]:
        indices = list(super().__iter__())[self.start_index:]
        if self.tag_epoch:
            offset = self.epoch * len(self.dataset)
            indices = [offset + index for index in indices]
        return iter(indices)

    def __len__(self) -> int:
        return self.num_samples - self.start_index


class EpochIndexedDataset(Dataset):
    """A dataset whose items depend on the epoch (``set_epoch``), read through epoch-tagged indices.

    Index ``k`` means item ``k % n`` of epoch ``k // n`` (``n = len(dataset)``), as
    :class:`ResumableDistributedSampler` with ``tag_epoch`` yields them. The epoch then travels with each
    index into the data workers, so they can persist across epochs (``persistent_workers``: no re-spawn,
    caches kept) while every item is exactly the one a fresh worker with ``set_epoch`` would load.
    """

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset
        self.epoch: int | None = None

    def __len__(self) -> int:
        return len(self.dataset)

    def _at_epoch(self, epoch: int) -> None:
        if epoch != self.epoch:
            self.dataset.set_epoch(epoch)
            self.epoch = epoch

    def __getitem__(self, index: int):
        epoch, item = divmod(int(index), len(self.dataset))
        self._at_epoch(epoch)
        return self.dataset[item]

    def __getitems__(self, indices: list[int]) -> list:
        """Items of ``indices`` in order; a dataset that makes whole batches (``__getitems__``) gets each
        epoch's run of indices in one call."""
        if not hasattr(self.dataset, "__getitems__"):
            return [self[index] for index in indices]
        items: list = []
        tagged = (divmod(int(index), len(self.dataset)) for index in indices)
        for epoch, run in itertools.groupby(tagged, key=lambda pair: pair[0]):
            self._at_epoch(epoch)
            items.extend(self.dataset.__getitems__([item for _, item in run]))
        return items
