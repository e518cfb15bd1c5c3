"""A resumable, deterministic stream of training batches.

Resuming must give the very batches an uninterrupted run would have seen. So the sampler is an
endless, seeded permutation per epoch, sharded by process, whose position is one integer that the
checkpoint stores; and each item's random augmentation is seeded by its position in the stream,
not by whatever state a DataLoader worker happens to have. Files that fail to decode are reported
with the batch, so the main process can count them even when workers did the decoding.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.utils.data import DataLoader, Dataset, Sampler, default_collate


@dataclass(frozen=True)
class StreamKey:
    index: int  # item of the dataset
    seed: int  # seeds that item's augmentation


class ResumableSampler(Sampler):
    """Endless stream of StreamKeys: epoch e is a permutation seeded by (seed, e), split across ranks.

    `position` counts the keys this process has yielded; constructing with it skips exactly those.
    """

    def __init__(self, dataset_size: int, *, seed: int = 0, rank: int = 0, world_size: int = 1, position: int = 0):
        if dataset_size < 1:
            raise ValueError("cannot sample from an empty dataset")
        self.size, self.seed, self.rank, self.world_size = dataset_size, seed, rank, world_size
        self.start = position

    def __iter__(self):
        per_epoch = len(range(self.rank, self.size, self.world_size))
        if per_epoch == 0:
            raise ValueError(f"process {self.rank} of {self.world_size} gets no items from a dataset of {self.size}")
        epoch, offset = divmod(self.start, per_epoch)
        position = self.start
        while True:
            generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            order = torch.randperm(self.size, generator=generator)[self.rank :: self.world_size].tolist()
            for index in order[offset:]:
                yield StreamKey(index, (self.seed * 1_000_003 + position) * self.world_size + self.rank)
                position += 1
            epoch, offset = epoch + 1, 0

    def __len__(self) -> int:  # endless; DataLoader only needs this for len(loader)
        return 2**62


class SeededItems(Dataset):
    """Fetches `dataset[key.index]` with the torch RNG seeded by `key.seed` (and restored after)."""

    def __init__(self, dataset: Dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: StreamKey):
        failed_before = len(getattr(self.dataset, "failed_sources", ()))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(key.seed)
            item = self.dataset[key.index]
        failed = tuple(getattr(self.dataset, "failed_sources", ())[failed_before:])
        return item, failed


def collate_with_failures(items):
    """Stacks the items and unions the sources that failed to decode while fetching them."""
    batch = default_collate([item for item, _ in items])
    failed = sorted({source for _, sources in items for source in sources})
    return batch, failed


def build_loader(
    dataset: Dataset, *, batch_size: int, num_workers: int, seed: int, rank: int, world_size: int, position: int = 0
) -> DataLoader:
    sampler = ResumableSampler(len(dataset), seed=seed, rank=rank, world_size=world_size, position=position)
    return DataLoader(
        SeededItems(dataset),
        batch_size=batch_size,
        sampler=sampler,
        num_workers=num_workers,
        collate_fn=collate_with_failures,
        persistent_workers=num_workers > 0,
        drop_last=True,
    )
