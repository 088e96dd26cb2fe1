"""A distributed sampler that can start mid-epoch, so a resumed run skips consumed batches."""

from __future__ import annotations

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
                 seed: int = 0, drop_last: bool = True) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed,
                         drop_last=drop_last)
        self.start_index = 0

    def set_epoch(self, epoch: int) -> None:
        super().set_epoch(epoch)
        self.start_index = 0

    def set_start_index(self, start_index: int) -> None:
        """Skip the first ``start_index`` samples of this rank's shard for the current epoch."""
        if not 0 <= start_index <= self.num_samples:
            raise ValueError(f"start_index {start_index} outside this rank's shard of {self.num_samples} samples")
        self.start_index = start_index

    def __iter__(self) -> Iterator[int]:
        indices = list(super().__iter__())
        return iter(indices[self.start_index:])

    def __len__(self) -> int:
        return self.num_samples - self.start_index
