"""What every `mmtok bench` row shares: the run's context, one table line, throughput and FLOP counting."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import torch
from quantize import time_op
from torch.utils.flop_counter import FlopCounterMode

# Dense bf16 tensor-core peaks (FLOP/s) from the vendors' data sheets, for MFU; fp32 uses the
# measured matmul rate instead. Matched against torch.cuda.get_device_name().
BF16_PEAK = {"H200": 989e12, "H100": 989e12, "A100": 312e12, "L40S": 362e12, "L4": 121e12, "A10G": 70e12}


@dataclass
class BenchContext:
    device: torch.device
    smoke: bool
    repeats: int
    compile: bool
    workdir: Path  # scratch space for generated inputs, models and jobs
    memory_budget_bytes: int  # CPU: the peer is skipped where its buffers would exceed this
    matmul_flops: float  # measured fp32 matmul FLOP/s on this device: the CPU's arithmetic ceiling

    @property
    def on_cuda(self) -> bool:
        return self.device.type == "cuda"

    def peak_flops(self, precision: str) -> tuple[float | None, str]:
        """The peak for MFU and its name: a known GPU's data-sheet bf16 peak, or else the measured fp32 matmul rate."""
        if precision == "bf16" and self.on_cuda:
            name = torch.cuda.get_device_name(self.device)
            return next((peak for key, peak in BF16_PEAK.items() if key in name), None), "data-sheet bf16 peak"
        return self.matmul_flops, "measured fp32 matmul rate"


@dataclass
class Row:
    """One line of the table; `values` keeps the raw numbers for the JSON."""

    row: str  # the row's name, as --only takes it
    case: str
    mmtok: str
    peer: str = ""
    ratio: str = ""
    note: str = ""
    target: str = ""  # the target this line is judged against, and its verdict
    verdict: str = ""
    values: dict = field(default_factory=dict)


def verdict(met: bool) -> str:
    return "met" if met else "NOT met"


def median_seconds(op: Callable[[], object], device: torch.device, repeats: int) -> float:
    """Median wall seconds of `op` over `repeats` runs after one untimed warm-up run."""
    return time_op(op, device, repeats) / 1e3


def counted_flops(op: Callable[[], object]) -> int:
    """FLOPs of one call (matmuls and convolutions, as torch.utils.flop_counter counts them)."""
    counter = FlopCounterMode(display=False)
    with counter:
        op()
    return counter.get_total_flops()


def autocast(device: torch.device, precision: str):
    if precision == "fp32":
        return nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)


def rate(amount: float, seconds: float) -> str:
    per_s = amount / seconds
    return f"{per_s:,.0f}" if per_s >= 100 else f"{per_s:,.1f}" if per_s >= 10 else f"{per_s:.2f}"


def times(numerator: float, denominator: float) -> str:
    return f"{numerator / denominator:.2f}×" if denominator > 0 else "—"


def mib(n_bytes: int) -> str:
    return "< 1 MiB" if n_bytes < 2**20 else f"{n_bytes / 2**20:,.0f} MiB"


BUSY_LOOP = """
import time, torch
a = torch.randn(512, 512)
end = time.time() + {seconds}
while time.time() < end:
    a = torch.tanh(a @ a * 0.01)
"""


@contextmanager
def another_busy_process(seconds: float = 1800) -> Iterator[None]:
    """A second torch process doing small matmuls on every core (torch's default threads) while the block runs:
    what a DataLoader worker, another job in the container or a second rank does to a CPU."""
    busy = subprocess.Popen([sys.executable, "-c", BUSY_LOOP.format(seconds=seconds)])
    try:
        time.sleep(2.0)  # past its imports: busy when the measurement starts
        yield
    finally:
        busy.kill()
        busy.wait()
