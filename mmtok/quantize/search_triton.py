"""Fused exact nearest-code search (squared L2) as a Triton kernel.

The brute-force search ``argmin_k ||x_i - c_k||^2`` materialises an N x K
distance matrix, which for large batches and codebooks dominates memory and
bandwidth.  The kernel here streams the codebook through on-chip tiles and
keeps only a running (min, argmin) per row, so extra memory is O(N + K).

Distances use the expansion ``||x||^2 - 2 x.c + ||c||^2``.  Only the last two
terms depend on the code, so the running minimum is taken over
``||c||^2 - 2 x.c`` and ``||x||^2`` is added once at the end.  Dot products are
accumulated in fp32; fp32 operands use IEEE (non-TF32) products so the ids match
a brute-force fp32 search apart from near-ties.

``triton`` is imported defensively: importing this module never fails, and
:data:`TRITON_AVAILABLE` says whether the kernel can be used.
"""

import os
from contextlib import nullcontext as _nullcontext
from dataclasses import dataclass

import torch

try:  # triton is optional: CPU-only installs must still import this module
    import triton
    import triton.language as tl

    TRITON_AVAILABLE = True
except Exception:  # pragma: no cover - depends on the environment
    triton = None
    tl = None
    TRITON_AVAILABLE = False

__all__ = ["TRITON_AVAILABLE", "triton_nearest_code"]

_SUPPORTED_DTYPES = (torch.float32, torch.bfloat16, torch.float16)


if TRITON_AVAILABLE:
    # Plain function; it is wrapped with ``triton.jit`` lazily (see
    # ``_get_kernel``) because ``triton.jit`` decides between compiled and
    # interpreted mode at decoration time, and TRITON_INTERPRET may be set
    # after this module was imported.
    def _nearest_code_kernel(
        x_ptr,
        c_ptr,
        csq_ptr,
        out_ids_ptr,
        out_dist_ptr,
        N,
        K,
        D,
        stride_xn,
        stride_xd,
        stride_ck,
        stride_cd,
        BLOCK_N: tl.constexpr,
        BLOCK_K: tl.constexpr,
        BLOCK_D: tl.constexpr,
        NUM_D_CHUNKS: tl.constexpr,
        DOT_FP32: tl.constexpr,
    ):
        pid = tl.program_id(0)
        rows = pid * BLOCK_N + tl.arange(0, BLOCK_N)
        row_mask = rows < N
        # int64 offsets: N * D can exceed 2**31 for large batches.
        x_rows = x_ptr + rows.to(tl.int64)[:, None] * stride_xn
        offs_d = tl.arange(0, BLOCK_D)
        offs_k = tl.arange(0, BLOCK_K)

        if NUM_D_CHUNKS == 1:
            # Whole (padded) D fits in one tile: load the x tile once and keep
            # it resident for the entire codebook sweep.
            d_mask = offs_d < D
            x_tile = tl.load(
                x_rows + offs_d[None, :] * stride_xd,
                mask=row_mask[:, None] & d_mask[None, :],
                other=0.0,
            )
            x_f32 = x_tile.to(tl.float32)
            x_sq = tl.sum(x_f32 * x_f32, axis=1)
            if DOT_FP32:
                x_tile = x_f32
        else:
            x_sq = tl.zeros([BLOCK_N], dtype=tl.float32)
            for dc in range(NUM_D_CHUNKS):
                d = dc * BLOCK_D + offs_d
                xc = tl.load(
                    x_rows + d[None, :] * stride_xd,
                    mask=row_mask[:, None] & (d < D)[None, :],
                    other=0.0,
                ).to(tl.float32)
                x_sq += tl.sum(xc * xc, axis=1)

        best = tl.full([BLOCK_N], float("inf"), dtype=tl.float32)
        best_idx = tl.zeros([BLOCK_N], dtype=tl.int32)

        for k0 in range(0, K, BLOCK_K):
            cols = k0 + offs_k
            col_mask = cols < K
            c_rows = c_ptr + cols.to(tl.int64)[:, None] * stride_ck

            if NUM_D_CHUNKS == 1:
                c_tile = tl.load(
                    c_rows + offs_d[None, :] * stride_cd,
                    mask=col_mask[:, None] & d_mask[None, :],
                    other=0.0,
                )
                if DOT_FP32:
                    dots = tl.dot(x_tile, tl.trans(c_tile.to(tl.float32)), input_precision="ieee")
                else:
                    # 16-bit products are exact in fp32; accumulation is fp32.
                    dots = tl.dot(x_tile, tl.trans(c_tile))
            else:
                # Large D: accumulate the dot products over D chunks.  The x
                # chunks are re-read per codebook tile but stay in L1/L2.
                dots = tl.zeros([BLOCK_N, BLOCK_K], dtype=tl.float32)
                for dc in range(NUM_D_CHUNKS):
                    d = dc * BLOCK_D + offs_d
                    d_ok = d < D
                    xc = tl.load(
                        x_rows + d[None, :] * stride_xd,
                        mask=row_mask[:, None] & d_ok[None, :],
                        other=0.0,
                    )
                    cc = tl.load(
                        c_rows + d[None, :] * stride_cd,
                        mask=col_mask[:, None] & d_ok[None, :],
                        other=0.0,
                    )
                    if DOT_FP32:
                        dots = tl.dot(
                            xc.to(tl.float32),
                            tl.trans(cc.to(tl.float32)),
                            acc=dots,
                            input_precision="ieee",
                        )
                    else:
                        dots = tl.dot(xc, tl.trans(cc), acc=dots)

            # Padding codes get +inf so they can never win the argmin.
            c_sq = tl.load(csq_ptr + cols, mask=col_mask, other=float("inf"))
            score = c_sq[None, :] - 2.0 * dots
            tile_min, tile_arg = tl.min(score, axis=1, return_indices=True)
            # Strict '<' keeps the earlier tile on exact ties -> lowest index.
            better = tile_min < best
            best = tl.where(better, tile_min, best)
            best_idx = tl.where(better, tile_arg + k0, best_idx)

        # Cancellation in the expansion can give tiny negatives; clamp.
        dist = tl.maximum(best + x_sq, 0.0)
        tl.store(out_ids_ptr + rows, best_idx.to(tl.int64), mask=row_mask)
        tl.store(out_dist_ptr + rows, dist, mask=row_mask)


_KERNELS: dict = {}


def _interpret_mode() -> bool:
    try:
        return bool(triton.knobs.runtime.interpret)
    except Exception:  # older triton without knobs
        return os.environ.get("TRITON_INTERPRET", "0").lower() in ("1", "true", "on", "yes")


def _get_kernel():
    mode = _interpret_mode()
    kernel = _KERNELS.get(mode)
    if kernel is None:
        kernel = triton.jit(_nearest_code_kernel)
        _KERNELS[mode] = kernel
    return kernel


@dataclass(frozen=True)
class _TileConfig:
    block_n: int
    block_k: int
    block_d: int
    num_warps: int
    num_stages: int


def _next_pow2(v: int) -> int:
    return 1 << max(v - 1, 0).bit_length()


def _pick_config(d: int, dot_fp32: bool) -> _TileConfig:
    """Fixed heuristic tiles (no autotune: deterministic and cheap to launch).

    tl.dot needs every tile dimension >= 16, so D is padded to a power of two
    >= 16.  Small D keeps the whole padded row of x resident for the entire
    codebook sweep; larger D is streamed in 32-wide chunks.  The thresholds
    were picked from sm_90 compiles (ptxas register / spill counts), keeping
    every configuration spill-free; they were not timed on hardware.
    """
    d_pad = max(16, _next_pow2(d))
    if dot_fp32:
        # IEEE fp32 dots run on CUDA cores (FMA), which is register hungry:
        # a single resident chunk only up to D=64, 8 warps to spread the
        # 64x64 accumulator.
        if d_pad <= 64:
            return _TileConfig(block_n=64, block_k=64, block_d=d_pad, num_warps=8, num_stages=2)
        return _TileConfig(block_n=64, block_k=64, block_d=32, num_warps=8, num_stages=2)
    # 16-bit operands use tensor cores (wgmma on sm_90).
    if d_pad <= 128:
        # Tall row tile amortises each codebook tile over more rows.
        return _TileConfig(block_n=128, block_k=64, block_d=d_pad, num_warps=8, num_stages=3)
    if d_pad <= 256:
        # Resident 64x256 x tile (32 KiB) beats re-reading x chunks per tile.
        return _TileConfig(block_n=64, block_k=64, block_d=d_pad, num_warps=8, num_stages=2)
    return _TileConfig(block_n=128, block_k=64, block_d=32, num_warps=8, num_stages=2)


def _validate(x: torch.Tensor, codebook: torch.Tensor, codebook_sq_norms: torch.Tensor | None) -> None:
    if not isinstance(x, torch.Tensor) or not isinstance(codebook, torch.Tensor):
        raise ValueError("x and codebook must be torch.Tensors")
    if x.dim() != 2:
        raise ValueError(f"x must be 2-D (N, D); got shape {tuple(x.shape)}")
    if codebook.dim() != 2:
        raise ValueError(f"codebook must be 2-D (K, D); got shape {tuple(codebook.shape)}")
    if x.shape[1] != codebook.shape[1]:
        raise ValueError(f"feature dims differ: x has D={x.shape[1]}, codebook has D={codebook.shape[1]}")
    if x.numel() == 0:
        raise ValueError(f"x must be non-empty; got shape {tuple(x.shape)}")
    if codebook.numel() == 0:
        raise ValueError(f"codebook must be non-empty; got shape {tuple(codebook.shape)}")
    if x.device != codebook.device:
        raise ValueError(f"x is on {x.device} but codebook is on {codebook.device}")
    for name, t in (("x", x), ("codebook", codebook)):
        if t.dtype not in _SUPPORTED_DTYPES:
            raise ValueError(f"{name} dtype {t.dtype} not supported; use float32, bfloat16 or float16")
    if codebook_sq_norms is not None:
        if not isinstance(codebook_sq_norms, torch.Tensor):
            raise ValueError("codebook_sq_norms must be a torch.Tensor or None")
        if codebook_sq_norms.shape != (codebook.shape[0],):
            raise ValueError(
                f"codebook_sq_norms must have shape ({codebook.shape[0]},); got {tuple(codebook_sq_norms.shape)}"
            )
        if codebook_sq_norms.device != codebook.device:
            raise ValueError(f"codebook_sq_norms is on {codebook_sq_norms.device} but codebook is on {codebook.device}")


def _launch(
    x: torch.Tensor,
    codebook: torch.Tensor,
    c_sq: torch.Tensor,
    cfg: _TileConfig,
    dot_fp32: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    n, d = x.shape
    k = codebook.shape[0]
    ids = torch.empty(n, dtype=torch.int64, device=x.device)
    dist = torch.empty(n, dtype=torch.float32, device=x.device)
    grid = (triton.cdiv(n, cfg.block_n),)
    # Triton launches on the current CUDA device; make it x's device.
    with torch.cuda.device(x.device) if x.device.type == "cuda" else _nullcontext():
        _launch_kernel(x, codebook, c_sq, ids, dist, n, k, d, cfg, dot_fp32, grid)
    return ids, dist


def _launch_kernel(x, codebook, c_sq, ids, dist, n, k, d, cfg, dot_fp32, grid) -> None:
    _get_kernel()[grid](
        x,
        codebook,
        c_sq,
        ids,
        dist,
        n,
        k,
        d,
        x.stride(0),
        x.stride(1),
        codebook.stride(0),
        codebook.stride(1),
        BLOCK_N=cfg.block_n,
        BLOCK_K=cfg.block_k,
        BLOCK_D=cfg.block_d,
        NUM_D_CHUNKS=triton.cdiv(d, cfg.block_d),
        DOT_FP32=dot_fp32,
        num_warps=cfg.num_warps,
        num_stages=cfg.num_stages,
    )


def _prepare(
    x: torch.Tensor, codebook: torch.Tensor, codebook_sq_norms: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, bool]:
    if not TRITON_AVAILABLE:
        raise RuntimeError(
            "triton_nearest_code requires the 'triton' package, which could not be imported; "
            "install triton or use the PyTorch nearest-code search instead"
        )
    _validate(x, codebook, codebook_sq_norms)
    if x.device.type == "cpu" and not _interpret_mode():
        raise RuntimeError("triton_nearest_code needs GPU tensors (CPU tensors only work with TRITON_INTERPRET=1)")
    # Unit stride along D gives coalesced, vectorisable loads.
    x = x if x.stride(1) == 1 else x.contiguous()
    codebook = codebook if codebook.stride(1) == 1 else codebook.contiguous()
    if codebook_sq_norms is None:
        c32 = codebook.float()
        c_sq = (c32 * c32).sum(dim=1)
    else:
        c_sq = codebook_sq_norms.detach().to(torch.float32).contiguous()
    # Tensor-core path only when both operands share a 16-bit dtype; any fp32
    # or mixed-dtype input is upcast to fp32 inside the kernel.
    dot_fp32 = not (x.dtype == codebook.dtype and x.dtype in (torch.bfloat16, torch.float16))
    if x.dtype == torch.bfloat16 and _interpret_mode():
        # The Triton interpreter keeps bf16 as raw uint16 bits and its tl.dot
        # multiplies the bit patterns (unsupported there, triton-lang/triton
        # #11584); bf16 -> fp32 casts are supported and exact, so go via fp32.
        dot_fp32 = True
    return x, codebook, c_sq, dot_fp32


@torch.no_grad()
def triton_nearest_code(
    x: torch.Tensor,
    codebook: torch.Tensor,
    codebook_sq_norms: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact nearest codebook entry under squared L2, without an N x K matrix.

    Args:
        x: (N, D) queries.
        codebook: (K, D) codes, same device as ``x``.  Dtypes may be float32,
            bfloat16 or float16 and may differ from ``x``; accumulation is fp32.
        codebook_sq_norms: optional precomputed ``||c_k||^2`` of shape (K,);
            computed in fp32 when omitted.

    Returns:
        ``(ids, distances)``: int64 (N,) argmin indices and fp32 (N,) values of
        ``min_k ||x_i - c_k||^2`` clamped at >= 0.  Exact ties resolve to the
        lowest index.  Not differentiable (ids are discrete; recompute
        distances from the gathered codes if gradients are needed).
    """
    x, codebook, c_sq, dot_fp32 = _prepare(x, codebook, codebook_sq_norms)
    cfg = _pick_config(x.shape[1], dot_fp32)
    return _launch(x, codebook, c_sq, cfg, dot_fp32)
