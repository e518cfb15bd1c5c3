"""mmtok's VQ codebook: EMA, k-means init, revival, cross-process identity; LFQ/BSQ factorised entropy."""

import math

import pytest
import torch
from two_process import WORLD_SIZE, run_two_processes

from mmtok.health import CodebookMonitor
from mmtok.quantize import build_quantizer
from mmtok.quantize.lfq import factorised_entropy
from mmtok.quantize.vq import VectorQuantizer, kmeans


def toy_mixture(n, dim=4, centres=2048, seed=0):
    generator = torch.Generator().manual_seed(seed)
    means = torch.randn(centres, dim, generator=torch.Generator().manual_seed(99)) * 3
    pick = torch.randint(0, centres, (n,), generator=generator)
    return means[pick] + 0.05 * torch.randn(n, dim, generator=generator)


def _train_worker(rank, update, steps):
    import torch.distributed as dist

    q = VectorQuantizer(4, 256, update=update, dead_code_threshold=2.0).train()
    for step in range(steps):
        # Each process sees its own data (seeded per rank), as in data-parallel training.
        z = toy_mixture(512, seed=1000 * rank + step)
        out = q(z)
        if out.loss.requires_grad:  # learned codes; EMA codes have no trainable parameter here
            out.loss.backward()
    return dist.get_world_size(), {k: v.detach().clone() for k, v in q.state_dict().items()}


@pytest.mark.parametrize("update", ["ema", "learned"])
def test_two_processes_keep_identical_codebooks(update):
    (world0, state0), (world1, state1) = run_two_processes(_train_worker, update, 6)
    assert world0 == world1 == WORLD_SIZE
    for name in ("codebook", "cluster_size"):
        assert torch.equal(state0[name], state1[name]), f"{name} differs between processes"
    if update == "ema":
        assert torch.equal(state0["embed_sum"], state1["embed_sum"])
    assert bool(state0["initialised"])


def test_revival_recovers_a_collapsed_codebook():
    torch.manual_seed(0)
    q = VectorQuantizer(4, 1024, kmeans_init=False, decay=0.9)  # the default revival threshold
    # Collapse: every code but 10 sits far from the data, so only those 10 are ever chosen.
    with torch.no_grad():
        q.codebook.copy_(torch.randn(1024, 4) * 0.01 + 100.0)
        q.codebook[:10] = toy_mixture(10, seed=5)
        q.embed_sum.copy_(q.codebook)
    q.eval()
    before = CodebookMonitor(1024)
    with torch.no_grad():
        before.update(q(toy_mixture(8192, seed=1)).ids)
    assert before.compute()[0]["utilization"] <= 10 / 1024

    q.train()
    for step in range(30):
        q(toy_mixture(4096, seed=100 + step))
    q.eval()
    after = CodebookMonitor(1024)
    with torch.no_grad():
        after.update(q(toy_mixture(32768, seed=2)).ids)
    assert after.compute()[0]["utilization"] >= 0.9


def test_kmeans_init_places_codes_on_the_data():
    torch.manual_seed(0)
    data = toy_mixture(4000, centres=32)
    centres = kmeans(data, 32, iters=10)
    assert centres.shape == (32, 4)
    # Data points sit close to a centre: the centres found the clusters.
    dist_to_data = torch.cdist(data, centres).min(dim=1).values
    assert dist_to_data.median() < 0.5


def test_ema_moves_codes_to_cluster_means():
    torch.manual_seed(0)
    q = VectorQuantizer(2, 2, kmeans_init=False, decay=0.5, dead_code_threshold=0).train()
    with torch.no_grad():
        q.codebook.copy_(torch.tensor([[-1.0, 0.0], [1.0, 0.0]]))
        q.embed_sum.copy_(q.codebook)
    left = torch.tensor([[-3.0, 1.0]]).repeat(50, 1)
    right = torch.tensor([[3.0, -1.0]]).repeat(50, 1)
    for _ in range(30):
        q(torch.cat([left, right]))
    assert torch.allclose(q.codebook, torch.tensor([[-3.0, 1.0], [3.0, -1.0]]), atol=1e-3)


@pytest.mark.parametrize("metric", ["l2", "cosine"])
def test_factorised_codes_and_metrics_train(metric):
    torch.manual_seed(0)
    q = build_quantizer("vq", dim=32, codebook_size=64, codebook_dim=8, metric=metric, update="learned")
    assert q.codebook.shape == (64, 8)
    z = torch.randn(256, 32)
    out = q.train()(z)
    out.loss.backward()
    assert q.codebook.grad is not None and q.codebook.grad.abs().sum() > 0
    assert q.project_in.weight.grad is not None
    if metric == "cosine":
        assert torch.allclose(q.codebook.norm(dim=-1), torch.ones(64), atol=1e-5)


def test_rotation_trick_forward_value_is_the_code():
    torch.manual_seed(0)
    q = VectorQuantizer(8, 32, rotation_trick=True, kmeans_init=False).train()
    z = torch.randn(100, 8, requires_grad=True)
    codebook_before = q.codebook.clone()  # the EMA update moves the codebook after the forward
    out = q(z)
    codes = codebook_before[out.ids[:, 0]]
    assert torch.allclose(out.quantized, codes, atol=1e-5)
    out.quantized.sum().backward()
    # Rotated, not copied: the gradient differs from the straight-through all-ones gradient.
    assert not torch.allclose(z.grad, torch.ones_like(z))


def exact_entropies(logits):
    """Brute force over every code: per-sample entropy and the entropy of the batch-mean assignment."""
    bits = logits.shape[1]
    codes = torch.arange(2**bits)
    pattern = ((codes[:, None] >> torch.arange(bits - 1, -1, -1)) & 1).double()
    p_on = torch.sigmoid(logits.double())
    probs = (pattern[None] * p_on[:, None] + (1 - pattern[None]) * (1 - p_on[:, None])).prod(-1)  # (N, 2^bits)
    per_sample = -(probs * probs.log()).sum(-1).mean()
    mean = probs.mean(0)
    return per_sample, -(mean * mean.log()).sum()


def test_factorised_entropy_equals_exact_where_computable():
    torch.manual_seed(0)
    logits = torch.randn(64, 6) * 2
    exact_sample, exact_codebook = exact_entropies(logits)
    one_group = factorised_entropy(logits, [6])
    assert one_group[0].item() == pytest.approx(exact_sample.item(), rel=1e-5)
    assert one_group[1].item() == pytest.approx(exact_codebook.item(), rel=1e-5)
    grouped = factorised_entropy(logits, [2, 2, 2])
    # Per-sample entropy factorises exactly; the codebook term is the sum of marginals (an upper bound).
    assert grouped[0].item() == pytest.approx(exact_sample.item(), rel=1e-5)
    assert grouped[1].item() >= exact_codebook.item() - 1e-6


def test_factorised_codebook_entropy_is_exact_for_independent_groups():
    # A batch that is the cartesian product of two groups' patterns: the groups are independent.
    group_a = torch.randn(8, 3) * 2
    group_b = torch.randn(5, 3) * 2
    logits = torch.cat([group_a.repeat_interleave(5, 0), group_b.repeat(8, 1)], dim=1)
    _, exact_codebook = exact_entropies(logits)
    _, grouped = factorised_entropy(logits, [3, 3])
    assert grouped.item() == pytest.approx(exact_codebook.item(), rel=1e-5)


def test_large_lfq_uses_groups_and_stays_small():
    q = build_quantizer("bsq", dim=16, codebook_size=2**16)
    assert q.group_sizes == [8, 8]
    small = build_quantizer("lfq", dim=10, codebook_size=2**10)
    assert small.group_sizes == [10]
    out = q.train()(torch.randn(4096, 16))
    assert math.isfinite(out.loss.item())
    assert out.losses["codebook_entropy"] <= 2 * 8 * math.log(2) + 1e-4
