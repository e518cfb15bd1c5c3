"""Exact nearest-code search whose extra memory never grows as N x K.

vector-quantize-pytorch materialises the full (N, K) distance matrix (and several buffers of that
size), which at 65k tokens x 65k codes is 16 GiB per fp32 buffer. Here rows of `x` are compared
with tiles of the codebook and only a running (min, argmin) per row is kept: a fused Triton kernel
on CUDA, a tiled torch loop everywhere else. No library offers this search with an exact argmin
and bounded memory, hence it is written here.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import torch

from mmtok.quantize.search_triton import TRITON_AVAILABLE, triton_nearest_code

METRICS = ("l2", "cosine")

# Bytes of one (rows x codes) fp32 distance tile in the torch path. On CPU a cache-sized tile is
# ~3x faster than a 32 MiB one at dim 8 (measured, N=16k, K=65k), where the pass is memory-bound.
_TILE_BYTES = {"cpu": 1 * 2**20, "cuda": 256 * 2**20}
# On CPU, blocks of this many rows go to worker threads that each run single-threaded kernels.
# A multi-threaded kernel per tile meets a thread barrier per tile (~4,000 per call at 8k x 65k),
# and when another process holds a core each barrier waits for it: measured on 2 cores at
# 8,192 x 65,536, dim 8, beside a busy 2-thread torch process, 1.7-2.4 s with intra-op threads
# against 0.84 s with the blocks (0.58 s -> 0.44 s on quiet cores).
_CPU_BLOCK_ROWS = 512


def nearest_code(
    x: torch.Tensor,
    codebook: torch.Tensor,
    *,
    metric: str = "l2",
    backend: str = "auto",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Returns (ids int64 (N,), distances fp32 (N,)) of the nearest code to each row of x.

    x: (N, D); codebook: (K, D). `metric="l2"` gives squared euclidean distances;
    `metric="cosine"` compares directions and gives 1 - cosine similarity.
    Inputs in bf16/fp16 are searched with fp32 accumulation. `backend` is "auto", "triton" or "torch".
    """
    _check_inputs(x, codebook, metric, backend)
    # Under autocast the matmul would run in bf16 and flip near-tie ids: the search is always fp32.
    with torch.no_grad(), torch.autocast(device_type=x.device.type, enabled=False):
        if metric == "cosine":
            x = torch.nn.functional.normalize(x.float(), dim=-1)
            codebook = torch.nn.functional.normalize(codebook.float(), dim=-1)
        use_triton = backend == "triton" or (backend == "auto" and x.is_cuda and TRITON_AVAILABLE)
        if use_triton:
            ids, dist = triton_nearest_code(x, codebook)
        elif x.device.type == "cpu":
            ids, dist = _blocked_cpu_search(x, codebook)
        else:
            ids, dist = _tiled_torch_search(x, codebook)
        if metric == "cosine":
            # |a - b|^2 = 2 - 2 cos(a, b) for unit vectors.
            dist = dist * 0.5
        return ids, dist


def _check_inputs(x: torch.Tensor, codebook: torch.Tensor, metric: str, backend: str) -> None:
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; expected one of {METRICS}")
    if backend not in ("auto", "triton", "torch"):
        raise ValueError(f"unknown backend {backend!r}; expected 'auto', 'triton' or 'torch'")
    if x.ndim != 2 or codebook.ndim != 2:
        raise ValueError(
            f"nearest_code expects x (N, D) and codebook (K, D), got {tuple(x.shape)} and {tuple(codebook.shape)}"
        )
    if x.shape[1] != codebook.shape[1]:
        raise ValueError(f"x has dim {x.shape[1]} but the codebook has dim {codebook.shape[1]}")
    if codebook.shape[0] == 0:
        raise ValueError("the codebook is empty")
    if x.device != codebook.device:
        raise ValueError(f"x is on {x.device} but the codebook is on {codebook.device}")


def _blocked_cpu_search(x: torch.Tensor, codebook: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The tiled search over row blocks, one worker thread per intra-op thread, no barriers between them.

    Workers take blocks as they free up, so a worker whose core is busy elsewhere simply does fewer.
    torch's intra-op thread count is process-wide: it is 1 while the workers run, then restored.
    """
    threads, n = torch.get_num_threads(), x.shape[0]
    if threads == 1 or n < 2 * _CPU_BLOCK_ROWS:
        return _tiled_torch_search(x, codebook)
    ids = torch.empty(n, dtype=torch.long)
    dist = torch.empty(n, dtype=torch.float32)

    inference = torch.is_inference_mode_enabled()

    def search_block(start: int) -> None:
        torch.set_num_threads(1)  # also sets this worker thread's BLAS threads, which are per thread
        # Grad and inference mode are per thread: a worker takes the caller's inference mode (writing into
        # the inference tensors `ids` and `dist` needs it) and never records gradients.
        with torch.inference_mode(inference), torch.no_grad():
            stop = start + _CPU_BLOCK_ROWS
            ids[start:stop], dist[start:stop] = _tiled_torch_search(x[start:stop], codebook)

    torch.set_num_threads(1)
    try:
        with ThreadPoolExecutor(threads, thread_name_prefix="mmtok-search") as pool:
            list(pool.map(search_block, range(0, n, _CPU_BLOCK_ROWS)))
    finally:
        torch.set_num_threads(threads)
    return ids, dist


def _tiled_torch_search(x: torch.Tensor, codebook: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    n, k = x.shape[0], codebook.shape[0]
    codebook = codebook.float()
    code_sq = codebook.square().sum(dim=1)
    tile_elems = _TILE_BYTES.get(x.device.type, _TILE_BYTES["cpu"]) // 4
    tile_codes = min(k, max(1024, tile_elems // max(1, min(n, 4096))))
    tile_rows = max(1, min(n, tile_elems // tile_codes))

    ids = torch.empty(n, dtype=torch.long, device=x.device)
    dist = torch.empty(n, dtype=torch.float32, device=x.device)
    for row in range(0, n, tile_rows):
        rows = x[row : row + tile_rows].float()
        best = torch.full((rows.shape[0],), float("inf"), device=x.device)
        best_id = torch.zeros(rows.shape[0], dtype=torch.long, device=x.device)
        for start in range(0, k, tile_codes):
            # |c|^2 - 2 x.c: the |x|^2 term does not change the argmin and is added once at the end.
            tile = torch.addmm(
                code_sq[start : start + tile_codes], rows, codebook[start : start + tile_codes].T, alpha=-2.0
            )
            tile_min, tile_arg = tile.min(dim=1)
            better = tile_min < best
            best = torch.where(better, tile_min, best)
            best_id = torch.where(better, tile_arg + start, best_id)
        ids[row : row + tile_rows] = best_id
        dist[row : row + tile_rows] = (best + rows.square().sum(dim=1)).clamp_min_(0.0)
    return ids, dist
