"""The classical baselines: JPEG/WebP searched to a bit budget, Opus through PyAV."""

import numpy as np
import pytest
import torch

from mmtok.eval.codecs.images import image_at_bits, image_roundtrip
from mmtok.eval.codecs.opus import opus_roundtrip
from mmtok.eval.metrics.audio import si_sdr


def photo(size=64, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    planes = [np.sin(2 * np.pi * (rng.uniform(1, 3) * xx + rng.uniform(1, 3) * yy)) for _ in range(3)]
    return ((np.stack(planes, -1) + 1) * 127.5).astype(np.uint8)


@pytest.mark.parametrize("codec", ["JPEG", "WebP"])
def test_image_codec_search_finds_the_lowest_quality_reaching_the_bits(codec):
    pixels = photo()
    matched, lowest = image_at_bits(codec, pixels, target_bpp=1.0)
    assert lowest.quality == 1 and lowest.decoded.shape == pixels.shape
    assert matched.bpp >= 1.0 > image_roundtrip(codec, pixels, matched.quality - 1).bpp
    assert image_at_bits(codec, pixels, target_bpp=1e9)[0] is None  # no quality gets there
    assert image_at_bits(codec, pixels, target_bpp=1e-9)[0].quality == 1  # the lowest already does


def test_opus_round_trip_keeps_timing_and_rate():
    rate = 16000
    t = np.arange(2 * rate) / rate
    rng = np.random.default_rng(0)
    # A voiced-speech-like signal: harmonics with a wandering pitch, amplitude-modulated.
    pitch = 120 + 30 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(pitch) / rate
    wave = sum(np.sin(k * phase) / k for k in range(1, 8)) * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))
    wave = (0.2 * wave + 0.01 * rng.standard_normal(len(t))).astype(np.float32)
    decoded, kbps = opus_roundtrip(wave, rate, 12, application="audio")  # CELT: waveform-matching
    assert decoded.shape == (1, len(wave))
    assert 9 < kbps < 16  # the requested 12 kbps, container overhead included
    assert si_sdr(decoded[0], torch.from_numpy(wave)) > 5  # aligned: a delay would ruin this
