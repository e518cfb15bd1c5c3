"""The audio codec: causal streaming equals offline, quantizer-dropout prefixes, long inputs, training."""

import random
from pathlib import Path

import pytest
import torch

from mmtok.models import build_tokenizer

TINY_AUDIO = {
    "family": "audio",
    "sample_rate": 8000,
    "base_channels": 8,
    "strides": [2, 4, 5],
    "dilations": [1, 3],
    "latent_dim": 16,
    "quantizer": {
        "kind": "rvq",
        "options": {
            "codebook_size": 32,
            "num_codebooks": 4,
            "codebook_dim": 4,
            "metric": "cosine",
            "quantizer_dropout": 0.5,
        },
    },
}


def tiny_codec(**changes):
    torch.manual_seed(0)
    model = build_tokenizer({**TINY_AUDIO, **changes})
    model.train()
    with torch.no_grad():
        model(torch.randn(4, 1, 4000))  # k-means init spreads the codes
    return model.eval()


TINY_STFT = {"architecture": "stft", "frame_width": 16, "frame_blocks": 2}


@pytest.mark.parametrize("changes", [{}, {"frame_skip": True}, TINY_STFT], ids=["conv", "frame-skip", "stft"])
def test_causal_streaming_ids_equal_whole_signal_ids(changes):
    model = tiny_codec(**changes)
    hop = model.config.hop_length
    x = torch.randn(2, 1, 50 * hop + 17)  # not a multiple of the hop
    whole = model.encode(x)
    assert whole.shape == (2, 50, 4)
    rng = random.Random(0)
    for _ in range(4):
        parts, start = [], 0
        with model.streaming():
            while start < x.shape[-1]:
                size = rng.choice([1, 7, hop - 1, hop, hop + 3, 333, 1000])
                parts.append(model.encode_chunk(x[..., start : start + size]))
                start += size
        assert torch.equal(torch.cat(parts, dim=1), whole)
    # Streaming state is gone after the context: a plain encode works again.
    assert torch.equal(model.encode(x), whole)
    assert torch.equal(model.encode_long(x, chunk_seconds=0.1), whole)


def test_frame_skip_maps_each_hop_to_its_own_frame_and_back():
    model = tiny_codec(frame_skip=True)
    hop = model.config.hop_length
    assert model.decoder.frame_out.weight.abs().sum() == 0  # the decoder's path starts silent
    x = torch.randn(1, 1, 6 * hop)
    y = x.clone()
    y[..., 2 * hop : 3 * hop] += 1.0  # frame 2's samples only
    changed = (model.encoder.frame_in(y) - model.encoder.frame_in(x)).abs().sum(dim=1)[0]
    assert changed[2] > 0 and changed[:2].sum() == 0 and changed[3:].sum() == 0
    torch.nn.init.normal_(model.decoder.frame_out.weight)
    z = torch.zeros(1, model.config.latent_dim, 6)
    z[..., 4] = 1.0
    out = model.decoder.frame_out(z)[0, 0]
    assert out[4 * hop : 5 * hop].abs().sum() > 0 and out[: 4 * hop].abs().sum() == 0 == out[5 * hop :].abs().sum()


def test_the_stft_analysis_and_overlap_add_give_a_signal_back():
    from mmtok.models.audio_stft import STFTAnalysis, overlap_add

    hop, n_fft = 40, 160
    x = torch.randn(2, 1, 30 * hop, dtype=torch.float64)
    analysis = STFTAnalysis(1, n_fft, hop).double()
    parts = analysis(x).unflatten(1, (1, 2, n_fft // 2 + 1))
    y = overlap_add(torch.complex(parts[:, :, 0], parts[:, :, 1]), n_fft, hop)
    assert y.shape == x.shape
    # Exact wherever every overlapping frame is present: all but the last n_fft - hop samples.
    assert torch.allclose(y[..., : -(n_fft - hop)], x[..., : -(n_fft - hop)], atol=1e-5)  # float32 kernel
    assert not torch.allclose(y[..., -hop:], x[..., -hop:], atol=1e-3)


def test_a_steady_stft_head_output_decodes_to_steady_tones_not_a_comb_at_the_frame_rate():
    model = tiny_codec(**TINY_STFT)
    decoder = model.decoder
    head = decoder.head.layers[-1]
    with torch.no_grad():  # every frame: bin 5 at log magnitude 0, the rest silent, phase 0 (relative)
        head.weight.zero_()
        head.bias.zero_()
        head.bias.unflatten(0, (1, 2, decoder.bins))[0, 0] = -30.0
        head.bias.unflatten(0, (1, 2, decoder.bins))[0, 0, 5] = 0.0
    frames = 40
    wave = decoder(torch.randn(1, model.config.latent_dim, frames))[0, 0].double()
    steady = wave[decoder.n_fft :]  # past the first frames' ramp
    spectrum = torch.fft.rfft(steady * torch.hann_window(len(steady), dtype=torch.float64)).abs()
    frequency = spectrum.argmax().item() * model.config.sample_rate / len(steady)
    assert frequency == pytest.approx(5 * model.config.sample_rate / decoder.n_fft, rel=0.03)
    assert spectrum.max() > 50 * spectrum[: len(spectrum) // 20].median()
    # Exact at any frame index: the angle depends on it modulo n_fft only (a float product would drift).
    far = 10**9
    assert torch.equal(decoder.bin_rotation(far, 3), decoder.bin_rotation(far % decoder.n_fft, 3))


def test_the_stft_decoder_looks_ahead_only_its_overlap_and_decodes_in_chunks_as_whole():
    model = tiny_codec(**TINY_STFT, chunk_seconds=0.25)
    hop, n_fft = model.config.hop_length, model.config.stft_window
    assert model.decoder.lookahead_frames() == n_fft // hop - 1 == 3
    z = torch.randn(1, model.config.latent_dim, 40)
    changed = z.clone()
    changed[..., 20] += 1.0
    difference = (model.decoder(changed) - model.decoder(z)).abs()[0, 0]
    first = 21 * hop - n_fft  # latent frame 20's synthesis window starts here
    assert difference[:first].max() == 0 and difference[first : 21 * hop].max() > 0
    ids = model.encode(torch.randn(2, 1, 8000))  # 200 frames; chunks of 50
    with torch.enable_grad():  # the whole sequence at once
        whole = model.decode_latent(model.quantizer.decode_ids(ids)).detach()
    assert torch.allclose(model.decode(ids), whole, atol=1e-5)
    with pytest.raises(ValueError, match="multiple of the hop 40"):
        build_tokenizer({**TINY_AUDIO, **TINY_STFT, "n_fft": 100})


def test_encode_chunk_outside_streaming_is_an_error():
    with pytest.raises(RuntimeError, match="streaming"):
        tiny_codec().encode_chunk(torch.randn(1, 1, 400))


def test_non_causal_model_refuses_to_stream_and_chunks_with_overlap():
    model = tiny_codec(causal=False)
    with pytest.raises(RuntimeError, match="causal"):
        with model.streaming():
            pass
    x = torch.randn(1, 1, 3 * model.config.sample_rate)
    whole = model.encode(x)
    chunked = model.encode_long(x, chunk_seconds=0.5)
    assert chunked.shape == whole.shape
    # With a receptive-field margin the chunks see what the whole signal sees; only float-rounding
    # near-ties may flip a code.
    assert (chunked == whole).float().mean() > 0.99


def test_quantizer_dropout_prefix_property():
    model = tiny_codec()
    x = torch.randn(2, 1, 4000)
    full = model.encode(x)
    for n in range(1, 5):
        assert torch.equal(model.encode(x, num_codebooks=n), full[..., :n])
        assert model.decode(full[..., :n]).shape == (2, 1, 4000)
    # More codebooks decode closer to the full-rate output.
    reference = model.decode(full)
    errors = [(model.decode(full[..., :n]) - reference).abs().mean() for n in range(1, 5)]
    assert errors[-1] == 0 and errors[0] > errors[-1]


def test_token_shape_frame_rate_and_layout():
    model = tiny_codec()
    assert model.config.hop_length == 40 and model.config.frame_rate == 200
    assert model.token_shape_for((1, 8000)) == (200,)
    layout = model.vocab_layout()
    ids = model.encode(torch.randn(1, 1, 800))[0]
    assert torch.equal(layout.media_segments(layout.to_llm_ids(ids))[0], ids)


def test_training_lowers_the_loss_on_a_tone():
    model = build_tokenizer({**TINY_AUDIO, "quantizer": {"kind": "fsq", "options": {"levels": [5, 5, 5, 5]}}})
    t = torch.arange(4000) / 8000
    x = (0.5 * torch.sin(2 * torch.pi * 440 * t))[None, None].repeat(2, 1, 1)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(30):
        recon, out = model(x)
        loss = (recon - x).abs().mean() + out.loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert sum(losses[-5:]) < 0.5 * sum(losses[:5])


def test_the_stft_codec_learns_a_tones_spectrum():
    from mmtok.train.audio_losses import MultiScaleMelLoss

    torch.manual_seed(0)
    model = build_tokenizer({**TINY_AUDIO, **TINY_STFT, "quantizer": {"kind": "fsq", "options": {"levels": [5] * 4}}})
    t = torch.arange(4000) / 8000
    x = (0.5 * torch.sin(2 * torch.pi * 440 * t))[None, None].repeat(2, 1, 1)
    mel = MultiScaleMelLoss(8000, window_sizes=(64, 256, 1024), mel_bins=(10, 40, 80))
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(30):
        recon, out = model(x)
        loss = mel(recon, x) + out.loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert sum(losses[-5:]) < 0.8 * sum(losses[:5])


def test_the_shared_trainer_trains_the_codec_with_its_gan(tmp_path):
    import numpy as np
    import soundfile

    from mmtok.train.config import load_run_config
    from mmtok.train.trainer import Trainer

    rng = np.random.default_rng(0)
    data = tmp_path / "clips"
    data.mkdir()
    for i in range(4):
        t = np.arange(int(16000 * rng.uniform(0.3, 0.8))) / 16000
        soundfile.write(data / f"clip{i}.wav", 0.3 * np.sin(2 * np.pi * rng.uniform(200, 800) * t), 16000)
    (data / "broken.wav").write_bytes(b"RIFF....WAVEfmt not really")
    config = load_run_config(
        Path(__file__).parents[1] / "configs" / "audio_small.yaml",
        [
            f"output_dir={tmp_path / 'run'}",
            f"data.source={data}",
            "train.max_steps=3",
            "train.batch_size=2",
            "loss.gan_start_step=1",
            "train.checkpoint_every=3",
        ],
    )
    trainer = Trainer(config)
    last = trainer.fit()
    assert trainer.step == 3
    assert {"loss/mel", "loss/stft", "loss/generator", "loss/feature_matching", "loss/discriminator"} <= set(last)
    assert [s.split("/")[-1] for s in trainer.failed_sources] == ["broken.wav"]
    assert len(trainer.last_health) == 4  # one entry per residual codebook
