#!/usr/bin/env python
"""mmtok's quantizers against vector-quantize-pytorch (the peer): speed and peak memory, as ratios.

    python benchmarks/quantize.py                          # all sections, sizes chosen for the device
    python benchmarks/quantize.py --only search --json search.json

1. search: `mmtok.quantize.nearest_code` vs the peer's `VectorQuantize` eval forward, which builds
   the full N x K distance matrix; also the time the arithmetic alone (2*N*K*D flops at the
   measured fp32 matmul rate) would take.
2. vq: one training step (forward, backward, EMA update) of mmtok's `VectorQuantizer` vs the peer's
   `VectorQuantize`.
3. lfq: a training-mode forward of mmtok's LFQ/BSQ vs the peer's `LFQ` at 2^16 codes.

Both sides get the same inputs and the same codebook (one seed). Output is Markdown, ready to paste
into the README, and ends with a 'targets' section.
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

import torch
import vector_quantize_pytorch
from vector_quantize_pytorch import LFQ, VectorQuantize

from mmtok.quantize import build_quantizer, nearest_code
from mmtok.quantize.vq import VectorQuantizer

GRID = [(8, 2**14), (8, 2**16), (8, 2**18), (256, 2**16)]  # (dim, codebook size), search and vq
LFQ_KINDS = ("lfq", "bsq")
LFQ_DIM, LFQ_CODES = 16, 2**16
# Tokens per device: (search, training sections). CPU sizes keep the whole run to a few minutes.
DEFAULT_N = {"cuda": (65536, 65536), "cpu": (16384, 1024)}
# At its peak the peer holds about this many (N, K) fp32-sized buffers (distances and their
# intermediates, an int64 one-hot; in training also the soft assignments and what autograd keeps),
# as measured on CPU: used to skip it there before it exhausts host memory.
PEER_BUFFERS = {"search": 4, "vq": 6, "lfq": 6}
MIB, GIB, GB = 2**20, 2**30, 10**9  # tables in MiB; targets in decimal GB, as they are stated


# -- the two helpers every measurement goes through ----------------------------------------------
def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_op(op: Callable[[], object], device: torch.device, repeats: int, warmup: bool = True) -> float:
    """Median wall time of `op` in ms, after one untimed warm-up run (lazy init, kernel compiles)."""
    if warmup:
        op()
    times = []
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        op()
        sync(device)
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def peak_memory(op: Callable[[], object], device: torch.device) -> int:
    """Bytes `op` adds at its peak on top of what already exists (inputs, modules, weights).

    CUDA: the caching allocator's own peak counter. CPU: there is no allocator counter, so we read
    the process's high-water resident set size (ru_maxrss, KiB on Linux) before and after. That
    high-water mark never goes down, so the op must be the first large thing the process does:
    each CPU case therefore runs in a fresh child process (see `measure`), right after imports and
    input creation. Memory freed earlier and kept by malloc can be reused without raising the RSS,
    so small ops may read a few MiB low; the N x K buffers this benchmark is about are far larger.
    """
    if device.type == "cuda":
        sync(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        op()
        sync(device)
        return torch.cuda.max_memory_allocated(device) - base
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    op()
    return (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) * 1024


# -- one builder per measurement: returns the zero-argument op to time --------------------------
def build_search(impl: str, dim: int, codes: int, n: int, device: torch.device) -> Callable[[], object]:
    x = torch.randn(n, dim, device=device)
    codebook = torch.randn(codes, dim, device=device)
    if impl == "mmtok":
        return lambda: nearest_code(x, codebook)
    peer = VectorQuantize(dim, codebook_size=codes, kmeans_init=False).to(device).eval()
    peer._codebook.embed.data.copy_(codebook[None])  # search the same codes as mmtok
    return lambda: peer(x[None])


def build_vq_step(impl: str, dim: int, codes: int, n: int, device: torch.device) -> Callable[[], object]:
    x = torch.randn(n, dim, device=device, requires_grad=True)
    codebook = torch.randn(codes, dim, device=device)
    if impl == "mmtok":
        quantizer = VectorQuantizer(dim, codes, kmeans_init=False).to(device).train()
        quantizer.codebook.copy_(codebook)
        quantizer.embed_sum.copy_(codebook)

        def forward():
            out = quantizer(x)
            return out.quantized, out.loss

    else:
        quantizer = VectorQuantize(dim, codes, kmeans_init=False).to(device).train()
        quantizer._codebook.embed.data.copy_(codebook[None])
        quantizer._codebook.embed_avg.copy_(codebook[None])

        def forward():
            quantized, _, aux = quantizer(x[None])
            return quantized, aux

    def step():
        x.grad = None
        quantized, aux = forward()
        (quantized.square().mean() + aux.sum()).backward()  # the EMA update ran inside forward

    return step


def build_lfq_forward(impl: str, kind: str, n: int, device: torch.device) -> Callable[[], object]:
    x = torch.randn(n, LFQ_DIM, device=device, requires_grad=True)  # autograd keeps what training keeps
    if impl == "mmtok":
        quantizer = build_quantizer(kind, dim=LFQ_DIM, codebook_size=LFQ_CODES).to(device).train()
        return lambda: quantizer(x)
    quantizer = LFQ(dim=LFQ_DIM, codebook_size=LFQ_CODES, spherical=kind == "bsq").to(device).train()
    return lambda: quantizer(x[None])


def build_case(spec: dict) -> Callable[[], object]:
    device = torch.device(spec["device"])
    if spec["section"] == "search":
        return build_search(spec["impl"], spec["dim"], spec["codes"], spec["n"], device)
    if spec["section"] == "vq":
        return build_vq_step(spec["impl"], spec["dim"], spec["codes"], spec["n"], device)
    return build_lfq_forward(spec["impl"], spec["kind"], spec["n"], device)


# -- running one case ----------------------------------------------------------------------------
def is_oom(error: BaseException) -> bool:
    message = str(error).lower()
    return isinstance(error, torch.OutOfMemoryError) or "out of memory" in message or "can't allocate memory" in message


def run_case(spec: dict) -> dict:
    """Builds the case (same seed, so the same inputs in every process) and measures it."""
    device = torch.device(spec["device"])
    torch.manual_seed(0)
    try:
        op = build_case(spec)
        peak = peak_memory(op, device)  # first run: on CPU it must come before anything else
        ms = time_op(op, device, spec["repeats"], warmup=False)  # the peak run was the warm-up
        return {"status": "ok", "ms": ms, "peak_bytes": peak}
    except (torch.OutOfMemoryError, RuntimeError) as error:
        if not is_oom(error):
            raise
        return {"status": "oom", "note": "out of memory"}


def peer_bytes_estimate(spec: dict) -> int:
    return spec["n"] * spec["codes"] * 4 * PEER_BUFFERS[spec["section"]]


def measure(spec: dict, budget_bytes: int) -> dict:
    label = " ".join(f"{key}={spec[key]}" for key in ("section", "impl", "kind", "dim", "codes", "n") if key in spec)
    print(f"measuring {label}", file=sys.stderr, flush=True)
    if spec["device"] != "cpu":
        # On CUDA the allocator's peak counter is per-op, so every case runs in this process;
        # the previous case's tensors (and an out-of-memory peer's) are released before the next.
        result = run_case(spec)
        gc.collect()
        torch.cuda.empty_cache()
        return result
    if spec["impl"] == "peer" and peer_bytes_estimate(spec) > budget_bytes:
        need = peer_bytes_estimate(spec) / GIB
        return {
            "status": "skipped",
            "note": f"skipped (would need {need:.1f} GiB)",
            "need_bytes": peer_bytes_estimate(spec),
        }
    # A fresh process per CPU case, so ru_maxrss measures this op alone (see peak_memory).
    child = subprocess.run(
        [sys.executable, __file__, "--measure-one", json.dumps(spec)], capture_output=True, text=True
    )
    if child.returncode != 0:
        last = (child.stderr.strip().splitlines() or ["no output"])[-1]
        killed = child.returncode < 0
        return {"status": "failed", "note": "killed (out of memory?)" if killed else f"failed: {last[:80]}"}
    return json.loads(child.stdout.strip().splitlines()[-1])


def matmul_rate(device: torch.device, repeats: int) -> float:
    """fp32 FLOP/s of one large square matmul: the arithmetic ceiling for the search."""
    size = 8192 if device.type == "cuda" else 2048
    a, b = torch.randn(size, size, device=device), torch.randn(size, size, device=device)
    ms = time_op(lambda: a @ b, device, repeats)
    return 2 * size**3 / (ms / 1e3)


# -- sections ----------------------------------------------------------------------------------
def run_sections(args, device: torch.device, rate: float) -> dict[str, list[dict]]:
    budget = int(args.memory_budget_gib * GIB)
    base = {"device": device.type if device.type == "cpu" else str(device), "repeats": args.repeats}
    results: dict[str, list[dict]] = {}
    if args.only in (None, "search"):
        results["search"] = []
        for dim, codes in GRID:
            spec = {**base, "section": "search", "dim": dim, "codes": codes, "n": args.n}
            row = {"dim": dim, "codes": codes, "n": args.n, "arithmetic_ms": 2 * args.n * codes * dim / rate * 1e3}
            row.update({impl: measure({**spec, "impl": impl}, budget) for impl in ("mmtok", "peer")})
            results["search"].append(row)
    if args.only in (None, "vq"):
        results["vq"] = []
        for dim, codes in GRID:
            spec = {**base, "section": "vq", "dim": dim, "codes": codes, "n": args.n_train}
            row = {"dim": dim, "codes": codes, "n": args.n_train}
            row.update({impl: measure({**spec, "impl": impl}, budget) for impl in ("mmtok", "peer")})
            results["vq"].append(row)
    if args.only in (None, "lfq"):
        results["lfq"] = []
        for kind in LFQ_KINDS:
            spec = {**base, "section": "lfq", "kind": kind, "dim": LFQ_DIM, "codes": LFQ_CODES, "n": args.n_train}
            row = {"kind": kind, "dim": LFQ_DIM, "codes": LFQ_CODES, "n": args.n_train}
            row.update({impl: measure({**spec, "impl": impl}, budget) for impl in ("mmtok", "peer")})
            results["lfq"].append(row)
    return results


# -- Markdown -----------------------------------------------------------------------------------
def ok(result: dict) -> bool:
    return result.get("status") == "ok"


def fmt_ms(result: dict) -> str:
    return f"{result['ms']:.1f}" if ok(result) else result.get("note", result.get("status", "?"))


def fmt_mib(result: dict) -> str:
    return f"{result['peak_bytes'] / MIB:.1f}" if ok(result) else "—"


def ratio(numerator: float, denominator: float) -> str:
    return f"{numerator / denominator:.1f}×" if denominator > 0 else "—"


def comparison_cells(row: dict) -> list[str]:
    mmtok, peer = row["mmtok"], row["peer"]
    both = ok(mmtok) and ok(peer)
    return [
        fmt_ms(mmtok),
        fmt_ms(peer),
        ratio(peer["ms"], mmtok["ms"]) if both else "—",
        fmt_mib(mmtok),
        fmt_mib(peer),
        memory_ratio_cell(mmtok, peer) if both else "—",
    ]


def memory_ratio_cell(mmtok: dict, peer: dict) -> str:
    # Below ~1 MiB the RSS reading is noise (malloc reuses memory freed during setup).
    if mmtok["peak_bytes"] < MIB:
        return "— (mmtok < 1 MiB)"
    return ratio(peer["peak_bytes"], mmtok["peak_bytes"])


def table(headers: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(cells) + " |" for cells in rows]
    return "\n".join(lines)


COMPARE = [
    "mmtok ms",
    "peer ms",
    "speed ratio (peer/mmtok)",
    "mmtok peak MiB",
    "peer peak MiB",
    "memory ratio (peer/mmtok)",
]


def render(results: dict, header: dict) -> str:
    memory = (
        "CUDA max_memory_allocated above the inputs"
        if header["device_type"] == "cuda"
        else "peak RSS increase, one fresh process per case"
    )
    out = [
        "## mmtok vs vector-quantize-pytorch",
        "",
        f"- device: {header['device_name']}",
        f"- torch {header['torch']}, vector-quantize-pytorch {header['peer']}",
        f"- N: {header['n']:,} tokens (search), {header['n_train']:,} tokens (VQ step, LFQ/BSQ)",
        f"- fp32 matmul rate: {header['matmul_tflops']:.3f} TFLOP/s",
        f"- timings: median of {header['repeats']} runs after a warm-up; peak memory: {memory}",
    ]
    if "search" in results:
        rows = [
            [
                str(r["dim"]),
                f"{r['codes']:,}",
                *comparison_cells(r),
                f"{r['arithmetic_ms']:.2f}",
                ratio(r["mmtok"]["ms"], r["arithmetic_ms"]) if ok(r["mmtok"]) else "—",
            ]
            for r in results["search"]
        ]
        out += [
            "",
            f"### Nearest-code search, N = {header['n']:,} (peer: `VectorQuantize` eval forward)",
            "",
            table(["dim", "K", *COMPARE, "arithmetic-only ms", "mmtok / arithmetic"], rows),
        ]
    if "vq" in results:
        rows = [[str(r["dim"]), f"{r['codes']:,}", *comparison_cells(r)] for r in results["vq"]]
        out += [
            "",
            f"### VQ training step (forward + backward + EMA), N = {header['n_train']:,}",
            "",
            table(["dim", "K", *COMPARE], rows),
        ]
    if "lfq" in results:
        rows = [[r["kind"], str(r["dim"]), f"{r['codes']:,}", *comparison_cells(r)] for r in results["lfq"]]
        out += [
            "",
            f"### LFQ/BSQ training forward, N = {header['n_train']:,} (peer: `LFQ`)",
            "",
            table(["kind", "dim", "codes", *COMPARE], rows),
        ]
    return "\n".join(out)


# -- targets ------------------------------------------------------------------------------------
def find(rows: list[dict], **match) -> dict | None:
    return next((row for row in rows if all(row.get(key) == value for key, value in match.items())), None)


def evaluate_targets(results: dict, header: dict) -> list[tuple[str, str, str]]:
    """(target, measured, verdict) for every target; those of the other device say so."""
    on_cuda = header["device_type"] == "cuda"
    targets = []

    def add(name: str, device_type: str, row: dict | None, need_n: int, judge: Callable[[dict], tuple[str, str]]):
        if header["device_type"] != device_type:
            targets.append((name, "—", f"not checked: a {device_type.upper()} target"))
        elif row is None or row["n"] != need_n:
            targets.append((name, "—", f"not measured: needs this row at N = {need_n:,}"))
        elif not ok(row["mmtok"]):
            targets.append((name, "—", f"not met: mmtok {row['mmtok'].get('note')}"))
        else:
            targets.append((name, *judge(row)))

    def verdict(met: bool) -> str:
        return "**met**" if met else "**not met**"

    def peer_missing(row: dict) -> str:
        return f"not measured: peer {row['peer'].get('note', row['peer'].get('status'))}"

    def speed(threshold: float):
        def judge(row):
            if not ok(row["peer"]):
                return f"mmtok {row['mmtok']['ms']:.1f} ms", peer_missing(row)
            got = row["peer"]["ms"] / row["mmtok"]["ms"]
            return f"{got:.1f}× (mmtok {row['mmtok']['ms']:.1f} ms, peer {row['peer']['ms']:.1f} ms)", verdict(
                got >= threshold
            )

        return judge

    def memory_ratio(row):
        mmtok_bytes = row["mmtok"]["peak_bytes"]
        if row["peer"].get("status") == "oom" and on_cuda:
            # The peer needed more than the whole GPU: its ratio is at least capacity / mmtok peak.
            bound = header["device_memory_bytes"] / max(mmtok_bytes, 1)
            return f"≥ {bound:.0f}× (peer out of memory on {header['device_memory_bytes'] / GIB:.0f} GiB)", verdict(
                bound >= 50
            )
        if not ok(row["peer"]):
            return f"mmtok {mmtok_bytes / MIB:.1f} MiB", peer_missing(row)
        got = row["peer"]["peak_bytes"] / max(mmtok_bytes, 1)
        return (
            f"{got:.0f}× (mmtok {mmtok_bytes / MIB:.1f} MiB, peer {row['peer']['peak_bytes'] / MIB:.1f} MiB)",
            verdict(got >= 50),
        )

    def arithmetic(row):
        got = row["mmtok"]["ms"] / row["arithmetic_ms"]
        return f"{got:.1f}× (mmtok {row['mmtok']['ms']:.1f} ms, arithmetic {row['arithmetic_ms']:.1f} ms)", verdict(
            got <= 5
        )

    def below(limit_gb: float, strict: bool):
        def judge(row):
            got = row["mmtok"]["peak_bytes"] / GB
            met = got < limit_gb if strict else got <= limit_gb
            return f"{got:.3f} GB", verdict(met)

        return judge

    search, vq, lfq = results.get("search", []), results.get("vq", []), results.get("lfq", [])
    search_cuda = find(search, dim=8, codes=2**16)
    add("CUDA search N=K=65,536, dim 8: ≥ 20× faster than the peer", "cuda", search_cuda, 65536, speed(20))
    add("CUDA search N=K=65,536, dim 8: ≤ 1/50 of the peer's peak memory", "cuda", search_cuda, 65536, memory_ratio)
    add("CUDA search N=K=65,536, dim 8: within 5× of arithmetic-only time", "cuda", search_cuda, 65536, arithmetic)
    add(
        "CUDA VQ training step K=2^18, dim 8, N=65,536: ≤ 8 GB",
        "cuda",
        find(vq, dim=8, codes=2**18),
        65536,
        below(8, False),
    )
    for kind in LFQ_KINDS:
        add(
            f"CUDA {kind.upper()} training forward, 2^16 codes, N=65,536: < 2 GB",
            "cuda",
            find(lfq, kind=kind),
            65536,
            below(2, True),
        )
    search_cpu = find(search, dim=8, codes=2**16)
    add("CPU search N=16,384, K=65,536, dim 8: peak RSS < 1 GB", "cpu", search_cpu, 16384, below(1, True))
    add("CPU search N=16,384, K=65,536, dim 8: faster than the peer", "cpu", search_cpu, 16384, speed(1))
    return targets


# -- entry point --------------------------------------------------------------------------------
def device_header(device: torch.device, args, rate: float) -> dict:
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        memory = torch.cuda.get_device_properties(device).total_memory
    else:
        name = f"CPU: {platform.processor() or platform.machine()} ({cpu_model()}), {torch.get_num_threads()} threads"
        memory = None
    return {
        "device_type": device.type,
        "device_name": name,
        "device_memory_bytes": memory,
        "torch": torch.__version__,
        "peer": vector_quantize_pytorch_version(),
        "n": args.n,
        "n_train": args.n_train,
        "repeats": args.repeats,
        "matmul_tflops": rate / 1e12,
        "memory_budget_gib": args.memory_budget_gib,
    }


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as info:
            return next(line.split(":", 1)[1].strip() for line in info if line.startswith("model name"))
    except (OSError, StopIteration):
        return "unknown model"


def vector_quantize_pytorch_version() -> str:
    from importlib.metadata import version

    return version(vector_quantize_pytorch.__name__.replace("_", "-"))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--n", type=int, help="tokens for the search (default 65,536 on CUDA, 16,384 on CPU)")
    parser.add_argument(
        "--n-train", type=int, help="tokens for the VQ step and LFQ/BSQ (default 65,536 on CUDA, 1,024 on CPU)"
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", choices=("search", "vq", "lfq"))
    parser.add_argument(
        "--memory-budget-gib",
        type=float,
        default=8.0,
        help="on CPU, skip the peer where its N x K fp32 buffers (4 to 6 of them) would exceed this",
    )
    parser.add_argument("--json", metavar="PATH", help="also save the results here")
    parser.add_argument("--measure-one", help=argparse.SUPPRESS)  # child process: one CPU case
    args = parser.parse_args()
    device_type = torch.device(args.device).type
    default_n, default_n_train = DEFAULT_N["cuda" if device_type == "cuda" else "cpu"]
    args.n = args.n or default_n
    args.n_train = args.n_train or default_n_train
    return args


def main() -> None:
    args = parse_args()
    if args.measure_one:
        print(json.dumps(run_case(json.loads(args.measure_one))))
        return
    device = torch.device(args.device)
    rate = matmul_rate(device, args.repeats)
    header = device_header(device, args, rate)
    results = run_sections(args, device, rate)
    targets = evaluate_targets(results, header)
    print(render(results, header))
    print("\n### Targets\n")
    print(table(["target", "measured", "verdict"], [list(t) for t in targets]))
    if args.json:
        with open(args.json, "w") as file:
            json.dump({"header": header, "results": results, "targets": targets}, file, indent=2)


if __name__ == "__main__":
    main()
