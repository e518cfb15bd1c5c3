"""`num_codebooks=n` gives the prefix of the full ids for every residual quantizer kind, and a clear
error for every other kind (issue 19)."""

import copy

import pytest
import torch
from train_helpers import TINY_AUDIO_MODEL

from mmtok.models import build_tokenizer
from mmtok.quantize import build_quantizer

DIM = 8
RESIDUAL = {
    "rvq": ("rvq", dict(codebook_size=16, num_codebooks=3)),
    "rfsq": ("rfsq", dict(levels=[4, 4, 4], num_codebooks=3)),
    "rfsq-per-codebook": ("rfsq", dict(levels=[4, 4, 4], num_codebooks=3, projection_per_codebook=True)),
    "rsimvq": ("rsimvq", dict(codebook_size=32, num_codebooks=3)),
}
SINGLE = {
    "vq": dict(codebook_size=16),
    "fsq": dict(levels=[5, 5, 5]),
    "lfq": dict(codebook_size=2**6),
    "bsq": dict(codebook_size=2**6),
    "simvq": dict(codebook_size=16),
    "vq-reference": dict(codebook_size=16),
}


def residual_quantizer(name: str, groups: int = 1):
    torch.manual_seed(0)
    kind, options = RESIDUAL[name]
    return build_quantizer(kind, dim=DIM, groups=groups, **options).eval()


@pytest.mark.parametrize("groups", [1, 2])
@pytest.mark.parametrize("name", sorted(RESIDUAL))
def test_prefix_ids_are_the_first_columns_and_decode_to_quantized(name, groups):
    quantizer = residual_quantizer(name, groups)
    z = torch.randn(2, 7, DIM) * 2
    with torch.no_grad():
        full = quantizer(z)
        for n in range(1, quantizer.num_codebooks + 1):
            prefix = quantizer(z, num_codebooks=n)
            assert prefix.ids.shape == (2, 7, n)
            assert torch.equal(prefix.ids, full.ids[..., :n])
            assert torch.equal(prefix.quantized, quantizer.decode_ids(prefix.ids))
        # The full prefix is the full encoding; a shorter one decodes to something else.
        assert torch.equal(quantizer(z, num_codebooks=quantizer.num_codebooks).quantized, full.quantized)
        assert not torch.equal(quantizer.decode_ids(full.ids[..., :1]), full.quantized)


@pytest.mark.parametrize("name", sorted(RESIDUAL))
def test_out_of_range_prefix_is_a_clear_error(name):
    quantizer = residual_quantizer(name)
    z = torch.randn(4, DIM)
    for bad in (0, quantizer.num_codebooks + 1, -1, 1.5, True):
        with pytest.raises(ValueError, match=r"num_codebooks must be .*in \[1, 3\]"):
            quantizer(z, num_codebooks=bad)
    with pytest.raises(ValueError, match=r"shape \(\.\.\., 1\.\.3\)"):
        quantizer.decode_ids(torch.zeros(4, 4, dtype=torch.long))


@pytest.mark.parametrize("groups", [1, 2])
@pytest.mark.parametrize("kind", sorted(SINGLE))
def test_non_residual_kinds_take_only_every_codebook(kind, groups):
    torch.manual_seed(0)
    quantizer = build_quantizer(kind, dim=DIM, groups=groups, **SINGLE[kind]).eval()
    z = torch.randn(5, DIM)
    with torch.no_grad():
        assert torch.equal(quantizer(z, num_codebooks=groups).ids, quantizer(z).ids)
    for bad in (groups - 1, groups + 1):
        with pytest.raises(ValueError, match=f"num_codebooks must be {groups} .*not residual"):
            quantizer(z, num_codebooks=bad)


def test_grouped_prefix_of_part_of_a_depth_leaves_later_groups_empty():
    """rvq x 3 in 2 groups: columns (depth 0: g0, g1), (depth 1: g0, g1), ...; 3 columns are
    depth 0 of both groups and depth 1 of group 0 only."""
    quantizer = residual_quantizer("rvq", groups=2)
    z = torch.randn(6, DIM)
    with torch.no_grad():
        full = quantizer(z)
        first = quantizer(z, num_codebooks=1)
    half = DIM // 2
    assert torch.equal(first.quantized[:, half:], torch.zeros(6, half)), "group 1 has no column in a 1-column prefix"
    group0 = quantizer.groups[0]
    with torch.no_grad():
        assert torch.equal(first.quantized[:, :half], group0(z[:, :half], num_codebooks=1).quantized)
        three = quantizer(z, num_codebooks=3)
    assert torch.equal(three.ids, full.ids[:, :3])
    assert torch.equal(three.ids[:, [0, 2]], group0(z[:, :half]).ids[:, :2])


def test_library_residual_prefix_refuses_training_with_gradients():
    quantizer = residual_quantizer("rfsq").train()
    with pytest.raises(ValueError, match="only when encoding"):
        quantizer(torch.randn(4, DIM), num_codebooks=2)
    with torch.no_grad():  # encode() runs without gradients, whatever the mode
        assert quantizer(torch.randn(4, DIM), num_codebooks=2).ids.shape == (4, 2)


def tiny_audio(name: str):
    torch.manual_seed(0)
    kind, options = RESIDUAL[name]
    config = copy.deepcopy(TINY_AUDIO_MODEL)
    config["quantizer"] = {"kind": kind, "options": options}
    return build_tokenizer(config).eval()


@pytest.mark.parametrize("name", sorted(RESIDUAL))
def test_audio_tokenizer_encodes_and_decodes_a_prefix(name):
    model = tiny_audio(name)
    x = torch.randn(2, 1, 800)
    full = model.encode(x)
    prefix = model.encode(x, num_codebooks=2)
    assert prefix.shape == (*full.shape[:-1], 2)
    assert torch.equal(prefix, full[..., :2])
    with torch.no_grad():
        expected = model.decode_latent(model.quantize(x, num_codebooks=2).quantized)
    decoded = model.decode(prefix)
    assert decoded.shape == model.decode(full).shape
    assert torch.equal(decoded, expected)
    assert not torch.equal(decoded, model.decode(full))
