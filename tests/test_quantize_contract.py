"""Every quantizer kind honours the one contract of mmtok.quantize."""

import math

import pytest
import torch

from mmtok.quantize import KINDS, QuantizerOutput, build_quantizer

DIM = 16
CONFIGS = {
    "vq": dict(codebook_size=64),
    "rvq": dict(codebook_size=32, num_codebooks=3),
    "fsq": dict(levels=[8, 5, 5, 5]),
    "rfsq": dict(levels=[4, 4, 4], num_codebooks=2),
    "lfq": dict(codebook_size=2**10),
    "bsq": dict(codebook_size=2**14),
    "simvq": dict(codebook_size=64),
    "rsimvq": dict(codebook_size=64, num_codebooks=2),
    "vq-reference": dict(codebook_size=64),
}
SHAPES = [(6, DIM), (2, 5, DIM), (2, 3, 4, DIM)]


def test_every_kind_has_a_config():
    assert set(CONFIGS) == set(KINDS)


@pytest.mark.parametrize("groups", [1, 2])
@pytest.mark.parametrize("kind", sorted(CONFIGS))
def test_contract(kind, groups):
    torch.manual_seed(0)
    q = build_quantizer(kind, dim=DIM, groups=groups, **CONFIGS[kind])
    assert q.dim == DIM
    sizes = q.codebook_sizes
    assert len(sizes) == q.num_codebooks
    for shape in SHAPES:
        z = torch.randn(*shape, requires_grad=True)
        q.train()
        out = q(z)
        assert isinstance(out, QuantizerOutput)
        assert out.quantized.shape == z.shape
        assert out.loss.ndim == 0 and torch.isfinite(out.loss)
        assert all(v.ndim == 0 for v in out.losses.values())
        (out.quantized.square().sum() + out.loss).backward()
        assert z.grad is not None and z.grad.abs().sum() > 0, "no straight-through gradient reached the input"

        q.eval()
        with torch.no_grad():
            out = q(z)
            decoded = q.decode_ids(out.ids)
        assert out.ids.dtype == torch.int64
        assert out.ids.shape == (*shape[:-1], q.num_codebooks)
        for c, size in enumerate(sizes):
            assert out.ids[..., c].min() >= 0 and out.ids[..., c].max() < size
        assert torch.equal(decoded, out.quantized), "decode_ids must reproduce the eval output exactly"


def test_eval_is_deterministic_and_ids_follow_the_input():
    q = build_quantizer("vq", dim=DIM, codebook_size=64).eval()
    z = torch.randn(50, DIM)
    with torch.no_grad():
        a, b = q(z).ids, q(z).ids
        shifted = q(z + 100).ids
    assert torch.equal(a, b)
    assert not torch.equal(a, shifted)


def test_fsq_codebook_size_and_id_range():
    q = build_quantizer("fsq", dim=4, levels=[8, 5, 5, 5]).eval()
    assert q.codebook_size == 8 * 5 * 5 * 5
    with torch.no_grad():
        ids = q(torch.randn(100_000, 4) * 1.5).ids
    # With spread inputs every level combination is reachable: every id is reached.
    assert ids.unique().numel() == q.codebook_size


def test_fsq_large_product_keeps_int64_ids():
    levels = [16] * 10  # 2^40 codes: beyond the library's int32 ids
    q = build_quantizer("fsq", dim=10, levels=levels).eval()
    assert q.codebook_size == 2**40
    with torch.no_grad():
        out = q(torch.randn(100, 10) * 3)
    assert out.ids.max() > 2**31
    assert torch.equal(q.decode_ids(out.ids), out.quantized)


def test_residual_prefix_ids_and_decode():
    torch.manual_seed(0)
    q = build_quantizer("rvq", dim=8, codebook_size=16, num_codebooks=4)
    q.train()
    q(torch.randn(512, 8))  # k-means init
    q.eval()
    z = torch.randn(3, 10, 8)
    with torch.no_grad():
        full = q(z)
        prefix = q(z, num_codebooks=2)
        coarse = q.decode_ids(full.ids[..., :2])
    assert prefix.ids.shape == (3, 10, 2)
    assert torch.equal(prefix.ids, full.ids[..., :2])
    assert torch.allclose(coarse, prefix.quantized, atol=1e-6)
    # More codebooks reconstruct better.
    assert (full.quantized - z).square().mean() < (coarse - z).square().mean()


def test_quantizer_dropout_drops_whole_examples():
    torch.manual_seed(0)
    q = build_quantizer("rvq", dim=8, codebook_size=16, num_codebooks=4, quantizer_dropout=1.0).train()
    out = q(torch.randn(16, 10, 8))
    depth = (out.ids >= 0).sum(-1)  # (16, 10)
    assert (depth == depth[:, :1]).all(), "rows of one example must share their depth"
    assert depth.min() >= 1 and depth.max() <= 4 and depth.unique().numel() > 1
    # ids are a prefix: once dropped, every later codebook is dropped too.
    kept = out.ids >= 0
    assert (kept[..., 1:] <= kept[..., :-1]).all()


@pytest.mark.parametrize(
    "kind, cfg, message",
    [
        ("nope", {}, "unknown quantizer kind"),
        ("fsq", {"levels": [2**16] * 4 + [2**8]}, "overflows int64"),
        ("fsq", {"levels": [1, 5]}, "integers >= 2"),
        ("vq", {"codebook_size": 8, "colour": 3}, "colour"),
        ("lfq", {"codebook_size": 1000}, "power of two"),
        ("vq", {"codebook_size": 8, "groups": 3}, "divide dim"),
    ],
)
def test_bad_configuration_is_a_clear_error(kind, cfg, message):
    with pytest.raises(ValueError, match=message):
        build_quantizer(kind, dim=16, **cfg)


def test_wrong_last_dim_is_a_clear_error():
    q = build_quantizer("fsq", dim=16)
    with pytest.raises(ValueError, match=r"\(\.\.\., 16\)"):
        q(torch.randn(4, 15))


def test_decode_rejects_out_of_range_ids():
    q = build_quantizer("vq", dim=4, codebook_size=8)
    with pytest.raises(ValueError, match="out of range"):
        q.decode_ids(torch.tensor([[8]]))
    with pytest.raises(ValueError, match="shape"):
        q.decode_ids(torch.tensor([[1, 2]]))


def test_fsq_overflow_message_names_the_product():
    levels = [2**32, 2**32]
    with pytest.raises(ValueError) as info:
        build_quantizer("fsq", dim=2, levels=levels)
    assert str(math.prod(levels)) in str(info.value)
