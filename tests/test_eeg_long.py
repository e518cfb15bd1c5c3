"""Long EEG recordings are encoded and decoded window by window: the same ids and signal as the
whole recording at once, with memory that follows the window."""

import pytest
import torch
from eeg_helpers import CAP, TINY_EEG, recording

from mmtok.data.eeg_io import EEGInputSpec
from mmtok.data.eeg_montage import POSITION_VALUES
from mmtok.models import build_tokenizer

SPEC = EEGInputSpec()
PATCH = TINY_EEG["patch_size"]


def tokenizer(**changes):
    """A tiny tokenizer two layers deep with a context of three patches, so that each window needs
    more left context than one layer's; its codebooks initialised on real patches (one training
    forward) so that different patches get different ids."""
    torch.manual_seed(0)
    tok = build_tokenizer({**TINY_EEG, "depth": 2, "decoder_depth": 2, "context_patches": 3, **changes})
    torch.nn.init.normal_(tok.electrode_embedding.mlp[-1].weight, std=0.5)
    tok.train()(SPEC.prepare([recording(CAP[:5], seconds=2, seed=s) for s in range(4)]).tensor)
    return tok.eval()


def long_input() -> torch.Tensor:
    """(2, 5, 3 + 41 patches + a partial one) of random microvolts, one patch of one channel missing."""
    x = SPEC.prepare([recording(CAP[:5], seconds=1, seed=s) for s in range(2)]).tensor[..., :POSITION_VALUES]
    signal = torch.randn(2, 5, 41 * PATCH + 7, generator=torch.Generator().manual_seed(0)) * 30
    signal[1, 2, 20 * PATCH : 21 * PATCH] = float("nan")  # a missing patch: id -1 in both ways
    return torch.cat([x, signal], dim=-1)


@pytest.mark.parametrize("mix_channels", [True, False])
def test_windowed_encoding_gives_the_ids_of_the_whole_recording(mix_channels):
    tok = tokenizer(mix_channels=mix_channels)
    x = long_input()
    tok.window_patches = 10_000
    whole = tok.encode(x)
    assert whole.shape == (2, 5, 41, 2) and len(whole[..., 0].unique()) > 6
    assert (whole[1, 2, 20] == -1).all() and (whole[0] >= 0).all()
    for window in (1, 4, 7):  # 41 patches: the last window is partial
        tok.window_patches = window
        assert torch.equal(tok.encode(x), whole), window
        assert torch.equal(tok.encode(x, num_codebooks=1), whole[..., :1]), window
    # Without the left context the windows would need, the ids differ: the test can tell.
    tok.window_patches, tok.config.depth = 4, 0
    assert not torch.equal(tok.encode(x), whole)


def test_windowed_decoding_gives_the_signal_of_the_whole_recording():
    tok = tokenizer()
    ids = tok.encode(long_input()[:1])
    tok.window_patches = 10_000
    whole = tok.decode(ids)
    assert whole.shape == (1, 5, 41 * PATCH)
    for window in (1, 6):
        tok.window_patches = window
        assert torch.allclose(tok.decode(ids), whole, atol=1e-4, rtol=1e-5), window
    tok.window_patches, tok.config.decoder_depth = 6, 0  # too little context: visibly different
    assert not torch.allclose(tok.decode(ids), whole, atol=1e-3)


def test_a_window_is_all_the_model_sees_at_once():
    """Each layer's attention runs on at most one window plus its context, whatever the length."""
    tok = tokenizer()
    tok.window_patches = 5
    seen = []
    hook = tok.encoder[0].attention.register_forward_pre_hook(lambda module, args: seen.append(args[0].shape[2]))
    tok.encode(long_input())
    hook.remove()
    reach = tok.config.depth * (tok.config.context_patches - 1)
    assert len(seen) == 9 and max(seen) == 5 + reach  # ceil(41 / 5) windows
