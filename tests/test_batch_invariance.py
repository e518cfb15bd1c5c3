"""An input's ids do not depend on what else is in its batch: not on the other inputs, and not on the
padding that lets shorter inputs share a batch with longer ones. Every family, through the template."""

import pytest
import torch

from mmtok.models import build_tokenizer

FSQ = {"kind": "fsq", "options": {"levels": [5, 5, 5, 5]}}
RVQ = {"kind": "rvq", "options": {"codebook_size": 32, "num_codebooks": 3}}
FAMILIES = {
    "image": {"family": "image", "base_channels": 8, "channel_multipliers": [1, 2, 2], "num_res_blocks": 1,
              "latent_dim": 4, "image_size": 16, "quantizer": FSQ},
    "image1d": {"family": "image1d", "image_size": 16, "patch_size": 4, "width": 32, "depth": 2, "heads": 2,
                "num_latent_tokens": 8, "latent_dim": 4, "quantizer": FSQ},
    "audio-causal": {"family": "audio", "sample_rate": 8000, "base_channels": 4, "strides": [2, 4], "latent_dim": 8,
                     "quantizer": RVQ},
    "audio-noncausal": {"family": "audio", "sample_rate": 8000, "base_channels": 4, "strides": [2, 4],
                        "latent_dim": 8, "causal": False, "quantizer": RVQ},
    "video": {"family": "video", "image_size": 16, "base_channels": 8, "channel_multipliers": [1, 2, 2],
              "num_res_blocks": 1, "latent_dim": 4, "chunk_latent_frames": 2, "quantizer": FSQ},
    "eeg": {"family": "eeg", "patch_size": 50, "width": 16, "depth": 2, "decoder_depth": 1, "heads": 2,
            "context_patches": 3, "conv_channels": 2, "latent_dim": 8, "quantizer": RVQ},
}  # fmt: skip


def example(family: str, size: int, seed: int) -> torch.Tensor:
    """One input (no batch axis): images of size x size, audio of size * 50 samples, videos of
    1 + size / 2 frames of 16 x 16, or EEG."""
    generator = torch.Generator().manual_seed(seed)
    if family == "eeg":  # 5 electrodes (positions, then microvolts), size * 25 samples
        positions = torch.rand(5, 3, generator=generator) * 0.2 - 0.1
        return torch.cat([positions, torch.randn(5, size * 25, generator=generator) * 20], dim=1)
    if family.startswith("audio"):
        return torch.randn(1, size * 50, generator=generator) * 0.3
    if family == "video":
        return torch.rand(3, 1 + size // 2, 16, 16, generator=generator) * 2 - 1
    return torch.rand(3, size, size, generator=generator) * 2 - 1


@pytest.fixture(params=sorted(FAMILIES))
def family(request):
    torch.manual_seed(0)
    return request.param, build_tokenizer(FAMILIES[request.param]).eval()


def test_ids_alone_equal_ids_in_a_batch_of_others(family):
    name, tok = family
    batch = torch.stack([example(name, 16, seed) for seed in range(5)])
    together = tok.encode(batch)
    for i in range(len(batch)):
        assert torch.equal(tok.encode(batch[i : i + 1])[0], together[i]), f"{name}: item {i}"
    if tok.max_num_tokens is not None:  # the 1-D family's prefixes too
        assert torch.equal(tok.encode(batch, num_tokens=3), together[:, :3])


def test_ids_alone_equal_ids_next_to_longer_inputs(family):
    name, tok = family
    sizes = [16] if name == "image1d" else [16, 24, 32, 16, 40]
    inputs = [example(name, size, seed) for seed, size in enumerate(sizes)]
    many = tok.encode_many(inputs)
    for x, ids in zip(inputs, many):
        assert torch.equal(ids, tok.encode(x[None])[0]), f"{name}: input of shape {tuple(x.shape)}"
        assert tuple(ids.shape[:-1]) == tok.token_shape_for(tuple(x.shape))


def test_causal_codec_batches_different_lengths_together_and_cuts_the_padding_away():
    torch.manual_seed(0)
    tok = build_tokenizer(FAMILIES["audio-causal"]).eval()
    calls = []
    tok.encoder.register_forward_pre_hook(lambda module, args: calls.append(tuple(args[0].shape)))
    short, long = example("audio", 16, 0), example("audio", 40, 1)
    ids = tok.encode_many([short, long])
    assert calls == [(2, 1, 2000)]  # one batch, padded to the longest
    assert ids[0].shape[0] == 800 // 8 and ids[1].shape[0] == 2000 // 8


def test_image_ids_do_not_depend_on_the_memory_format_of_the_batch():
    """Decoded photos arrive channels-last (HWC pixels, permuted) and a stacked batch arrives contiguous: the
    tokenize job and a bare loop over decoded batches must get the same ids from both."""
    torch.manual_seed(0)
    levels = {"kind": "fsq", "options": {"levels": [8, 8, 8, 5, 5, 5]}}
    model = build_tokenizer({**FAMILIES["image"], "base_channels": 16, "latent_dim": 6, "quantizer": levels}).eval()
    x = torch.stack([example("image", 32, seed) for seed in range(4)])
    formats = []  # the first convolution sees channels-last inputs either way: the faster CPU path
    first_conv = next(m for m in model.encoder.modules() if isinstance(m, torch.nn.Conv2d))
    first_conv.register_forward_pre_hook(lambda _, args: formats.append(args[0].is_contiguous(
        memory_format=torch.channels_last)))  # fmt: skip
    with torch.inference_mode():
        contiguous = model.encode(x)
        channels_last = model.encode(x.contiguous(memory_format=torch.channels_last))
    assert torch.equal(contiguous, channels_last)
    assert formats == [True, True]
