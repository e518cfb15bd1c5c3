"""The EEG tokenizer's contract: any channel order, subset and duration; positions, not indices,
tell electrodes apart; missing patches change nothing else."""

import pytest
import torch
from eeg_helpers import CAP, TINY_EEG, recording

from mmtok.data.eeg_io import EEGInputSpec
from mmtok.data.eeg_montage import pack_eeg, unpack_eeg
from mmtok.models import build_tokenizer

SPEC = EEGInputSpec()


@pytest.fixture(scope="module")
def cap_input():
    return SPEC.prepare([recording(CAP, seconds=2, seed=s) for s in range(2)]).tensor  # (2, 10, 3 + 400)


def tokenizer(**changes):
    """A tiny untrained tokenizer whose codebooks were initialised (k-means) on the cap's patches,
    so that different patches get different ids. Electrode embeddings start at zero (see
    ElectrodeEmbedding); here they get random weights, as training would give them."""
    torch.manual_seed(0)
    tok = build_tokenizer({**TINY_EEG, **changes})
    torch.nn.init.normal_(tok.electrode_embedding.mlp[-1].weight, std=0.5)
    torch.nn.init.normal_(tok.electrode_embedding.fallback, std=0.5)
    x = SPEC.prepare([recording(CAP, seconds=2, seed=s) for s in range(2, 6)]).tensor
    tok.train()(x)
    return tok.eval()


@pytest.mark.parametrize("mix_channels", [True, False])
def test_shuffled_channels_give_the_same_per_channel_ids(cap_input, mix_channels):
    tok = tokenizer(mix_channels=mix_channels)
    order = torch.randperm(len(CAP), generator=torch.Generator().manual_seed(1))
    ids = tok.encode(cap_input)
    assert ids.shape == (2, len(CAP), 8, 2)  # (B, channels, patches of 50 samples, codebooks)
    assert len(ids[..., 0].unique()) > 4
    assert torch.equal(tok.encode(cap_input[:, order]), ids[:, order])
    assert torch.allclose(tok.decode(ids[:, order]), tok.decode(ids)[:, order], rtol=1e-4, atol=1e-3)


def test_channel_independent_mode_gives_a_channel_the_same_ids_in_any_montage(cap_input):
    independent, mixing = tokenizer(mix_channels=False), tokenizer(mix_channels=True)
    subset = [8, 2]  # O1 and F3 alone
    assert torch.equal(independent.encode(cap_input[:, subset]), independent.encode(cap_input)[:, subset])
    alone, together = mixing.encode_latent(cap_input[:, subset]), mixing.encode_latent(cap_input)[:, subset]
    assert not torch.allclose(alone, together, atol=1e-4)  # the default mode does look across channels


def test_positions_not_indices_tell_electrodes_apart(cap_input):
    tok = tokenizer()
    positions, signal = unpack_eeg(cap_input)
    moved = pack_eeg(signal, positions.roll(1, dims=1))  # the same samples at other electrodes
    assert not torch.allclose(tok.encode_latent(moved), tok.encode_latent(cap_input), atol=1e-4)
    unknown = pack_eeg(signal, torch.full_like(positions, float("nan")))
    embeddings = tok.electrode_embedding(unpack_eeg(unknown)[0])
    assert torch.equal(embeddings, tok.electrode_embedding.fallback.expand_as(embeddings))


def test_ids_do_not_depend_on_what_follows_and_a_tail_under_a_patch_is_not_encoded(cap_input):
    tok = tokenizer()
    ids = tok.encode(cap_input)
    assert torch.equal(tok.encode(cap_input[..., : 3 + 170]), ids[:, :, :3])  # 170 samples: 3 whole patches
    assert tok.token_shape_for((10, 3 + 170)) == (10, 3)
    with pytest.raises(ValueError, match="one patch"):
        tok.encode(cap_input[..., : 3 + 49])


def test_missing_channels_and_patches_get_no_ids_and_change_nothing_else(cap_input):
    tok = tokenizer()
    positions, signal = unpack_eeg(cap_input)
    padded_signal = torch.cat([signal, torch.full_like(signal[:, :2], float("nan"))], dim=1)
    padded_signal[:, :, 300:] = float("nan")  # and the last 2 of 8 patches missing everywhere
    padded = pack_eeg(padded_signal, torch.cat([positions, positions[:, :2]], dim=1))
    out = tok.quantize(padded)
    assert torch.equal(out.ids[:, :10, :6], tok.encode(cap_input[..., : 3 + 300]))
    assert (out.ids[:, 10:] == -1).all() and (out.ids[:, :, 6:] == -1).all()
    recon, _ = tok(padded)
    assert recon.isfinite().all()
    expected = tok.decode(tok.encode(cap_input[..., : 3 + 300]))
    assert torch.allclose(recon[:, :10, :300], expected, rtol=1e-4, atol=1e-3)


def test_fsq_is_an_option():
    tok = tokenizer(quantizer={"kind": "fsq", "options": {"levels": [8, 5, 5, 5]}})
    x = SPEC.prepare(recording(CAP[:3], seconds=1)).tensor
    ids = tok.encode(x)
    assert ids.shape == (1, 3, 4, 1) and int(ids.max()) < 1000
