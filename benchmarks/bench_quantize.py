"""`mmtok bench` rows for the quantizers: the nearest-code search (alone and beside another busy process) and
one VQ training step at K = 2^18, against vector-quantize-pytorch. The cases themselves are quantize.py's."""

from __future__ import annotations

import torch
from bench_core import BenchContext, Row, another_busy_process, mib, times, verdict
from quantize import measure
from vector_quantize_pytorch import VectorQuantize

from mmtok.quantize import nearest_code

DIM = 8
SEARCH_CASES = {  # (N tokens, K codes)
    "smoke": [(1024, 4096)],
    "cpu": [(8192, 65536), (16384, 262144), (65536, 262144)],
    "cuda": [(8192, 65536), (65536, 65536), (65536, 262144)],
}
SHARED_CASE = {"smoke": (1024, 4096), "cpu": (8192, 65536), "cuda": (8192, 65536)}
VQ_STEP_CASE = {"smoke": (1024, 4096), "cpu": (65536, 2**18), "cuda": (65536, 2**18)}


def _cases(ctx: BenchContext, table: dict):
    return table["smoke" if ctx.smoke else ctx.device.type]


def _spec(ctx: BenchContext, section: str, n: int, codes: int, impl: str) -> dict:
    device = "cpu" if not ctx.on_cuda else str(ctx.device)
    return {
        "section": section,
        "impl": impl,
        "dim": DIM,
        "codes": codes,
        "n": n,
        "device": device,
        "repeats": ctx.repeats,
    }


def _measure_both(ctx: BenchContext, section: str, n: int, codes: int) -> tuple[dict, dict]:
    """quantize.py's measurement of the case for mmtok, then for the peer."""
    return tuple(measure(_spec(ctx, section, n, codes, impl), ctx.memory_budget_bytes) for impl in ("mmtok", "peer"))


def _cell(result: dict) -> str:
    if result.get("status") != "ok":
        return result.get("note", result.get("status", "?"))
    return f"{result['ms']:,.0f} ms, {mib(result['peak_bytes'])}"


def _ratio_cell(mmtok: dict, peer: dict) -> str:
    if mmtok.get("status") != "ok" or peer.get("status") != "ok":
        return ""
    speed = f"{times(peer['ms'], mmtok['ms'])} faster"
    if peer["peak_bytes"] < 2**20:  # below 1 MiB the RSS reading is noise
        return f"{speed}; both under 1 MiB"
    return f"{speed}, ≥ {peer['peak_bytes'] / max(mmtok['peak_bytes'], 2**20):,.0f}× less memory"


def _comparison_row(name: str, case: str, mmtok: dict, peer: dict, *, note: str, values: dict) -> Row:
    """A table line for one case measured for mmtok and the peer: time and memory of each, and their ratios."""
    return Row(name, case, _cell(mmtok), _cell(peer), _ratio_cell(mmtok, peer), note=note, values=values)


def exact_share(ctx: BenchContext, codes: int, rows: int = 2048) -> float:
    """Share of tokens where mmtok's id equals the peer's (the same codebook, fp32): 1.0 up to exact ties."""
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(rows, DIM, generator=generator).to(ctx.device)
    codebook = torch.randn(codes, DIM, generator=generator).to(ctx.device)
    peer = VectorQuantize(DIM, codebook_size=codes, kmeans_init=False).to(ctx.device).eval()
    peer._codebook.embed.data.copy_(codebook[None])
    with torch.no_grad():
        _, peer_ids, _ = peer(x[None])
    ids, _ = nearest_code(x, codebook)
    return (ids == peer_ids[0]).float().mean().item()


def search_rows(ctx: BenchContext) -> list[Row]:
    rows = []
    for n, codes in _cases(ctx, SEARCH_CASES):
        mmtok, peer = _measure_both(ctx, "search", n, codes)
        gemm_ms = 2 * n * codes * DIM / ctx.matmul_flops * 1e3
        same = exact_share(ctx, codes)
        row = _comparison_row(
            "search",
            f"{n:,} × {codes:,}, dim {DIM}",
            mmtok,
            peer,
            note=f"ids equal to the peer's on {same:.1%} of tokens; GEMM alone {gemm_ms:,.1f} ms",
            values={"n": n, "codes": codes, "mmtok": mmtok, "peer": peer, "gemm_ms": gemm_ms, "same_ids": same},
        )
        if ctx.on_cuda and (n, codes) == (65536, 65536) and mmtok.get("status") == "ok":
            row.target, row.verdict = "within 5× of the GEMM limit", verdict(mmtok["ms"] <= 5 * gemm_ms)
        rows.append(row)
    return rows


def search_shared_rows(ctx: BenchContext) -> list[Row]:
    n, codes = _cases(ctx, SHARED_CASE)
    quiet = measure(_spec(ctx, "search", n, codes, "mmtok"), ctx.memory_budget_bytes)
    with another_busy_process():
        mmtok, peer = _measure_both(ctx, "search", n, codes)
    row = _comparison_row(
        "search_shared",
        f"{n:,} × {codes:,}, dim {DIM}, another busy process running",
        mmtok,
        peer,
        note=f"mmtok alone: {_cell(quiet)}"
        + (
            f" ({times(mmtok['ms'], quiet['ms'])} slower beside it)"
            if quiet.get("status") == mmtok.get("status") == "ok"
            else ""
        ),
        values={"n": n, "codes": codes, "mmtok_quiet": quiet, "mmtok": mmtok, "peer": peer},
    )
    if not ctx.on_cuda and (n, codes) == (8192, 65536):
        both = mmtok.get("status") == peer.get("status") == "ok"
        speed = both and peer["ms"] >= 10 * mmtok["ms"]
        memory = both and peer["peak_bytes"] >= 50 * max(mmtok["peak_bytes"], 2**20)
        row.target = "≥ 10× faster and ≤ 1/50 of the peer's memory beside another process"
        row.verdict = verdict(speed and memory) if both else "not measured: the peer did not run"
    return [row]


def vq_step_rows(ctx: BenchContext) -> list[Row]:
    n, codes = _cases(ctx, VQ_STEP_CASE)
    mmtok, peer = _measure_both(ctx, "vq", n, codes)
    row = _comparison_row(
        "vq_step",
        f"VQ training step (forward, backward, EMA), {n:,} tokens, K = {codes:,}, dim {DIM}",
        mmtok,
        peer,
        note="peak memory above the inputs" + ("" if ctx.on_cuda else ": RSS of a fresh process per case"),
        values={"n": n, "codes": codes, "mmtok": mmtok, "peer": peer},
    )
    if ctx.on_cuda and codes == 2**18 and mmtok.get("status") == "ok":
        row.target, row.verdict = "≤ 8 GB", verdict(mmtok["peak_bytes"] <= 8e9)
    return [row]
