"""Tests for the fused Triton nearest-code search, run on CPU via the Triton interpreter."""

import os

# Must be set before triton is imported so kernels run in the interpreter (no GPU here).
os.environ["TRITON_INTERPRET"] = "1"

import importlib.util
import sys

import pytest
import torch

pytest.importorskip("triton")

from mmtok.quantize import search_triton as st  # noqa: E402
from mmtok.quantize.search_triton import triton_nearest_code  # noqa: E402


def _reference(x: torch.Tensor, c: torch.Tensor):
    """Exact float64 squared distances from the (possibly low-precision) input values."""
    xd, cd = x.double(), c.double()
    d2 = torch.cdist(xd, cd, compute_mode="donot_use_mm_for_euclid_dist") ** 2
    return d2


def _tolerance(x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    # fp32 error of ||x||^2 - 2x.c + ||c||^2 scales with the norms, not with the distance.
    x_sq = (x.double() ** 2).sum(1)
    c_sq_max = (c.double() ** 2).sum(1).max()
    return 1e-5 * (x_sq + c_sq_max) + 1e-6


def _check(x, c, ids, dist):
    n, k = x.shape[0], c.shape[0]
    assert ids.shape == (n,) and ids.dtype == torch.int64
    assert dist.shape == (n,) and dist.dtype == torch.float32
    assert int(ids.min()) >= 0 and int(ids.max()) < k
    assert bool((dist >= 0).all())

    d2 = _reference(x, c)
    ref_min, ref_ids = d2.min(dim=1)
    tol = _tolerance(x, c)

    err = (dist.double() - ref_min).abs()
    assert bool((err <= tol).all()), f"max distance error {err.max().item():.3e}"

    # An id may differ from the reference only if its true distance is within tol of the
    # minimum (a near-tie that fp32 rounding can legitimately flip).
    chosen = d2.gather(1, ids[:, None]).squeeze(1)
    mismatch = ids != ref_ids
    gap = chosen - ref_min
    assert bool((gap[mismatch] <= tol[mismatch]).all()), "id differs from reference beyond a near-tie"
    # Random data has hardly any near-ties; guard against a systematically wrong argmin.
    assert mismatch.float().mean().item() <= 0.05


def _make(n, k, d, x_dtype, c_dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g).to(x_dtype)
    c = torch.randn(k, d, generator=g).to(c_dtype)
    return x, c


@pytest.mark.parametrize("d", [3, 8, 37])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_matches_bruteforce_odd_sizes(d, dtype):
    x, c = _make(77, 203, d, dtype, dtype, seed=d)
    ids, dist = triton_nearest_code(x, c)
    _check(x, c, ids, dist)


@pytest.mark.parametrize(
    "x_dtype,c_dtype",
    [(torch.float16, torch.float16), (torch.float32, torch.bfloat16), (torch.bfloat16, torch.float16)],
)
def test_other_and_mixed_dtypes(x_dtype, c_dtype):
    x, c = _make(45, 70, 19, x_dtype, c_dtype, seed=1)
    ids, dist = triton_nearest_code(x, c)
    _check(x, c, ids, dist)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_several_tiles_both_dims(dtype):
    # More than one row tile and several codebook tiles, with ragged last tiles.
    x, c = _make(301, 333, 64, dtype, dtype, seed=2)
    ids, dist = triton_nearest_code(x, c)
    _check(x, c, ids, dist)


@pytest.mark.parametrize(
    "d,dtype",
    [(200, torch.bfloat16), (256, torch.float32), (256, torch.float16), (300, torch.float32), (300, torch.float16)],
)
def test_large_d_default_config(d, dtype):
    # D=200 bf16: one resident 256-wide tile; D=300: chunked D loop.
    x, c = _make(21, 90, d, dtype, dtype, seed=3)
    ids, dist = triton_nearest_code(x, c)
    _check(x, c, ids, dist)


# fp16 takes the native 16-bit tl.dot branch under the interpreter (bf16 is routed
# through fp32 there, see _prepare), so it covers that branch of the kernel.
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_forced_d_chunks(dtype):
    # Exercise the chunked-D path with a ragged final chunk at a small size (37 = 16 + 16 + 5).
    x, c = _make(50, 81, 37, dtype, dtype, seed=4)
    x_, c_, c_sq, dot_fp32 = st._prepare(x, c, None)
    cfg = st._TileConfig(block_n=16, block_k=32, block_d=16, num_warps=4, num_stages=2)
    ids, dist = st._launch(x_, c_, c_sq, cfg, dot_fp32)
    _check(x, c, ids, dist)


def test_config_covers_all_d():
    for d in [1, 3, 16, 17, 64, 65, 128, 129, 256, 257, 1024]:
        for dot_fp32 in (True, False):
            cfg = st._pick_config(d, dot_fp32)
            assert min(cfg.block_n, cfg.block_k, cfg.block_d) >= 16
            assert cfg.block_d & (cfg.block_d - 1) == 0


def test_precomputed_norms_and_noncontiguous():
    x, c = _make(40, 55, 24, torch.float32, torch.float32, seed=5)
    ids0, dist0 = triton_nearest_code(x, c)
    ids1, dist1 = triton_nearest_code(x, c, (c.double() ** 2).sum(1))
    assert torch.equal(ids0, ids1)
    torch.testing.assert_close(dist0, dist1, rtol=1e-6, atol=1e-5)

    # Transposed views have stride(1) != 1.
    xt = x.t().contiguous().t()
    ct = c.t().contiguous().t()
    assert xt.stride(1) != 1 and ct.stride(1) != 1
    ids2, dist2 = triton_nearest_code(xt, ct)
    assert torch.equal(ids0, ids2)
    torch.testing.assert_close(dist0, dist2)


def test_tiny_and_exact_ties():
    c = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0]])
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]])
    ids, dist = triton_nearest_code(x, c)
    # Duplicated codes tie exactly: lowest index wins.
    assert ids.tolist() == [0, 1, 0]
    torch.testing.assert_close(dist, torch.tensor([0.0, 0.0, 0.5]))

    ids, dist = triton_nearest_code(torch.tensor([[2.0, 3.0]]), torch.tensor([[0.0, 0.0]]))
    assert ids.tolist() == [0]
    torch.testing.assert_close(dist, torch.tensor([13.0]))


def test_exact_match_distance_clamped_nonnegative():
    x, c = _make(30, 64, 33, torch.float32, torch.float32, seed=6)
    x = c[torch.arange(30) * 2] * 100.0  # large norms -> cancellation in the expansion
    c = c * 100.0
    ids, dist = triton_nearest_code(x, c)
    assert ids.tolist() == (torch.arange(30) * 2).tolist()
    assert bool((dist >= 0).all())
    assert dist.max().item() <= 1e-5 * 2 * (c.double() ** 2).sum(1).max().item()


def test_validation_errors():
    x = torch.randn(4, 8)
    c = torch.randn(5, 8)
    with pytest.raises(ValueError, match="2-D"):
        triton_nearest_code(x[0], c)
    with pytest.raises(ValueError, match="2-D"):
        triton_nearest_code(x, c[None])
    with pytest.raises(ValueError, match="feature dims"):
        triton_nearest_code(x, torch.randn(5, 7))
    with pytest.raises(ValueError, match="non-empty"):
        triton_nearest_code(torch.randn(0, 8), c)
    with pytest.raises(ValueError, match="non-empty"):
        triton_nearest_code(x, torch.randn(0, 8))
    with pytest.raises(ValueError, match="dtype"):
        triton_nearest_code(x.double(), c)
    with pytest.raises(ValueError, match="codebook_sq_norms"):
        triton_nearest_code(x, c, torch.ones(4))
    with pytest.raises(ValueError, match="on meta"):
        triton_nearest_code(x, c.to("meta"))


def test_cpu_without_interpreter_raises(monkeypatch):
    monkeypatch.setattr(st, "_interpret_mode", lambda: False)
    with pytest.raises(RuntimeError, match="GPU"):
        triton_nearest_code(torch.randn(4, 8), torch.randn(5, 8))


def test_import_without_triton(monkeypatch):
    # Block triton imports and load a fresh copy of the module under another name.
    for name in [m for m in sys.modules if m == "triton" or m.startswith("triton.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "triton", None)
    monkeypatch.setitem(sys.modules, "triton.language", None)
    spec = importlib.util.spec_from_file_location("_search_triton_no_triton", st.__file__)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.TRITON_AVAILABLE is False
    with pytest.raises(RuntimeError, match="triton"):
        mod.triton_nearest_code(torch.randn(4, 8), torch.randn(5, 8))
