"""nearest_code is exact against a float64 brute force, for l2 and cosine, at awkward sizes."""

import pytest
import torch
import torch.nn.functional as F

from mmtok.quantize import nearest_code, search


def brute_force(x, codebook, metric):
    x, codebook = x.double(), codebook.double()
    if metric == "cosine":
        x, codebook = F.normalize(x, dim=-1), F.normalize(codebook, dim=-1)
        dist = 1 - x @ codebook.T
    else:
        dist = torch.cdist(x, codebook).square()
    return dist


def assert_exact_up_to_ties(x, codebook, metric, ids, dist, tol):
    ref = brute_force(x, codebook, metric)
    best = ref.min(dim=1).values
    chosen = ref.gather(1, ids[:, None])[:, 0]
    # Either the same id, or an id whose true distance ties with the best one.
    assert ((chosen - best) <= tol * (1 + best.abs())).all()
    agree = (ids == ref.argmin(dim=1)).float().mean()
    assert agree > 0.99
    assert torch.allclose(dist.double(), best, atol=tol * 10, rtol=1e-4)


@pytest.mark.parametrize("metric", ["l2", "cosine"])
@pytest.mark.parametrize("n, k, d", [(1, 1, 3), (77, 203, 3), (1000, 4099, 8), (333, 777, 37)])
def test_exact_fp32(metric, n, k, d):
    generator = torch.Generator().manual_seed(n + k + d)
    x = torch.randn(n, d, generator=generator)
    codebook = torch.randn(k, d, generator=generator)
    ids, dist = nearest_code(x, codebook, metric=metric)
    assert ids.dtype == torch.int64 and ids.shape == (n,) and dist.dtype == torch.float32
    assert_exact_up_to_ties(x, codebook, metric, ids, dist, tol=1e-5)


@pytest.mark.parametrize("metric", ["l2", "cosine"])
def test_exact_bf16_is_searched_in_fp32(metric):
    generator = torch.Generator().manual_seed(3)
    x = torch.randn(500, 8, generator=generator).bfloat16()
    codebook = torch.randn(1500, 8, generator=generator).bfloat16()
    ids, dist = nearest_code(x, codebook, metric=metric)
    assert dist.dtype == torch.float32
    assert_exact_up_to_ties(x, codebook, metric, ids, dist, tol=1e-5)


def test_tiles_smaller_than_the_problem_give_the_same_answer(monkeypatch):
    generator = torch.Generator().manual_seed(4)
    x = torch.randn(3001, 5, generator=generator)
    codebook = torch.randn(5003, 5, generator=generator)
    whole_ids, whole_dist = nearest_code(x, codebook)
    # Force many row and code tiles (each tile holds at most 4096 floats).
    monkeypatch.setitem(search._TILE_BYTES, "cpu", 4096 * 4)
    tiled_ids, tiled_dist = nearest_code(x, codebook)
    assert torch.equal(whole_ids, tiled_ids)
    assert torch.allclose(whole_dist, tiled_dist)


def test_bad_inputs_are_clear_errors():
    with pytest.raises(ValueError, match="dim"):
        nearest_code(torch.randn(4, 3), torch.randn(5, 4))
    with pytest.raises(ValueError, match="metric"):
        nearest_code(torch.randn(4, 3), torch.randn(5, 3), metric="l1")
    with pytest.raises(ValueError, match="empty"):
        nearest_code(torch.randn(4, 3), torch.randn(0, 3))
    with pytest.raises(ValueError, match=r"\(N, D\)"):
        nearest_code(torch.randn(2, 4, 3), torch.randn(5, 3))


def test_cpu_row_blocks_in_worker_threads_give_the_same_answer_and_restore_the_threads():
    generator = torch.Generator().manual_seed(5)
    x = torch.randn(2 * search._CPU_BLOCK_ROWS + 37, 6, generator=generator, requires_grad=True)
    codebook = torch.randn(3000, 6, generator=generator)
    before = torch.get_num_threads()
    torch.set_num_threads(3)  # three workers, even on a runner with fewer cores
    try:
        blocked_ids, blocked_dist = search._blocked_cpu_search(x, codebook)
        threads_after = torch.get_num_threads()
    finally:
        torch.set_num_threads(before)
    single_ids, single_dist = search._tiled_torch_search(x.detach(), codebook)
    assert threads_after == 3
    assert torch.equal(blocked_ids, single_ids)
    assert torch.equal(blocked_dist, single_dist)
    assert not blocked_dist.requires_grad
    assert_exact_up_to_ties(x.detach(), codebook, "l2", blocked_ids, blocked_dist, tol=1e-4)


def test_cpu_row_blocks_work_under_inference_mode_as_encode_calls_them():
    generator = torch.Generator().manual_seed(6)
    x = torch.randn(3 * search._CPU_BLOCK_ROWS, 4, generator=generator)
    codebook = torch.randn(700, 4, generator=generator)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with torch.inference_mode():
            ids, dist = search._blocked_cpu_search(x, codebook)
    finally:
        torch.set_num_threads(before)
    assert torch.equal(ids, search._tiled_torch_search(x, codebook)[0])
