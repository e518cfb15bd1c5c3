"""Intra-op threads per process: never more than this process's share of the CPUs it may use.

torch starts as many threads as the host has cores, whatever the container's CPU quota or the
number of processes started beside it. More threads than cores is not a little slower but 10-60x
slower on CPU (threads wait at every kernel's barrier for a core another one holds), so every
multi-process entry point (train, tokenize) calls `limit_threads_per_process` once at start.
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path

import torch

logger = logging.getLogger("mmtok")


def cgroup_cpu_limit(root: Path = Path("/sys/fs/cgroup")) -> float | None:
    """The CPU quota of this process's cgroup in cores (v2 `cpu.max`, or v1 CFS quota), None when unlimited."""
    try:
        quota, period = (root / "cpu.max").read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        quota = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period = int((root / "cpu" / "cpu.cfs_period_us").read_text())
        return None if quota <= 0 else quota / period
    except (OSError, ValueError):
        return None


def available_cpus() -> int:
    """CPUs this process may run on: its affinity mask, capped by the cgroup quota (rounded up)."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    quota = cgroup_cpu_limit()
    return max(1, min(cpus, math.ceil(quota))) if quota else cpus


def processes_on_this_machine() -> int:
    """Processes started together on this machine, as torchrun / accelerate launch announce them."""
    for name in ("LOCAL_WORLD_SIZE", "MPI_LOCALNRANKS", "OMPI_COMM_WORLD_LOCAL_SIZE"):
        if os.environ.get(name, "").isdigit():
            return max(1, int(os.environ[name]))
    return 1


def limit_threads_per_process() -> int:
    """Lowers torch's intra-op threads to this process's share of the CPUs; never raises them
    (an OMP_NUM_THREADS below the share is the user's or the launcher's choice). Returns the count."""
    cpus, processes = available_cpus(), processes_on_this_machine()
    share = max(1, cpus // processes)
    threads = torch.get_num_threads()
    if threads > share:
        torch.set_num_threads(share)
        logger.info(
            "%d intra-op threads for this process (was %d): %d CPUs shared by %d processes",
            share, threads, cpus, processes,
        )  # fmt: skip
        return share
    return threads
