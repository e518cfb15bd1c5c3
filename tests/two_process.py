"""Runs a function in 2 CPU processes joined by a gloo process group and returns each rank's result."""

from __future__ import annotations

import os
import tempfile

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

WORLD_SIZE = 2


def _worker(rank: int, fn, args, init_file: str, out_dir: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD_SIZE)
    try:
        assert dist.get_world_size() == WORLD_SIZE
        torch.manual_seed(1234 + rank)  # different data per process, as in real data-parallel training
        result = fn(rank, *args)
        torch.save(result, os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def run_two_processes(fn, *args) -> list:
    """fn(rank, *args) must be a module-level function; its return value must be torch.save-able."""
    with tempfile.TemporaryDirectory() as tmp:
        init_file = os.path.join(tmp, "init")
        mp.start_processes(_worker, args=(fn, args, init_file, tmp), nprocs=WORLD_SIZE, start_method="spawn")
        return [torch.load(os.path.join(tmp, f"rank{r}.pt"), weights_only=False) for r in range(WORLD_SIZE)]
