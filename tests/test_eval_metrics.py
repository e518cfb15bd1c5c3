"""The evaluation harness's metrics against hand values and known behaviour on generated inputs:
PSNR of a known error, identical inputs, HaarPSI, LPIPS and FID with random-weight networks,
DNSMOS and speaker similarity, and the confidence intervals."""

import math

import numpy as np
import pytest
import torch
from audio_helpers import sine, speech_like
from train_helpers import write_images

from mmtok.data.image_io import decode_image, pixels_to_tensor
from mmtok.eval.aggregate import mean_ci
from mmtok.eval.metrics.image import psnr, ssim
from mmtok.eval.metrics.perceptual import FID, LPIPS, haarpsi
from mmtok.eval.metrics.speech_quality import dnsmos, speaker_similarity
from mmtok.eval.systems import bits_of


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    paths = write_images(tmp_path_factory.mktemp("photos"), 4, size=64)
    return pixels_to_tensor(np.stack([decode_image(p) for p in paths]))


def test_psnr_of_a_known_error_and_of_identical_images(photos):
    shifted = (photos + 0.1).clamp(-1, 1)
    mse = (shifted - photos).pow(2).mean(dim=(1, 2, 3))
    assert torch.allclose(psnr(shifted, photos).double(), 10 * torch.log10(4 / mse).double(), atol=1e-4)  # range 2
    # An error of exactly 0.1 everywhere (no clipping at 0): 10 log10(4 / 0.01) = 26.02 dB.
    middle = torch.zeros(1, 3, 32, 32)
    assert psnr(middle + 0.1, middle).item() == pytest.approx(10 * math.log10(400), abs=1e-4)
    assert torch.isinf(psnr(photos, photos)).all()
    assert torch.allclose(ssim(photos, photos).double(), torch.ones(4, dtype=torch.float64))


def test_haarpsi_is_one_for_identical_images_and_falls_with_noise(photos):
    assert torch.allclose(haarpsi(photos, photos), torch.ones(4), atol=1e-5)
    generator = torch.Generator().manual_seed(0)
    light = (photos + 0.05 * torch.randn(photos.shape, generator=generator)).clamp(-1, 1)
    heavy = (photos + 0.4 * torch.randn(photos.shape, generator=generator)).clamp(-1, 1)
    assert (haarpsi(light, photos) < 1).all() and (haarpsi(heavy, photos) < haarpsi(light, photos)).all()
    with pytest.raises(ValueError, match="32x32"):
        haarpsi(photos[..., :16, :16], photos[..., :16, :16])


def test_lpips_and_fid_with_random_weight_networks(photos, tmp_path):
    import torchvision
    from torchvision.models.vgg import cfgs, make_layers

    torch.manual_seed(0)
    features = make_layers(cfgs["D"])  # torchvision VGG16's `features`, random weights
    torch.save({f"features.{k}": v for k, v in features.state_dict().items()}, tmp_path / "vgg.pth")
    lpips = LPIPS(tmp_path / "vgg.pth")
    noisy = (photos + 0.3 * torch.randn(photos.shape)).clamp(-1, 1)
    assert torch.allclose(lpips(photos, photos), torch.zeros(4), atol=1e-6)
    assert (lpips(noisy, photos) > 0).all()
    with pytest.raises(ValueError, match="VGG16"):
        torch.save({"other.weight": torch.zeros(1)}, tmp_path / "not_vgg.pth")
        LPIPS(tmp_path / "not_vgg.pth")

    inception = torchvision.models.inception_v3(weights=None, aux_logits=False, init_weights=False)
    torch.save(inception.state_dict(), tmp_path / "inception.pth")
    same, different = FID(tmp_path / "inception.pth"), FID(tmp_path / "inception.pth")
    same.update(photos, photos)
    different.update(photos, torch.flip(noisy, dims=(-1,)))
    assert abs(same.compute()) < 1e-3 * different.compute() and different.compute() > 0


def test_dnsmos_ranges_and_clean_speech_above_noisy_speech():
    speech = speech_like(4.0)
    noisy = np.clip(speech + 0.1 * np.random.default_rng(1).standard_normal(speech.size), -1, 1)
    clean_scores, noisy_scores = dnsmos(speech, 16_000), dnsmos(noisy, 16_000)
    for signal in (sine(440, 2.0, 16_000), np.random.default_rng(2).uniform(-0.5, 0.5, 32_000)):
        scores = dnsmos(signal, 16_000)
        assert all(1.0 <= scores[key] <= 5.0 for key in ("sig", "bak", "ovrl"))
    assert clean_scores["ovrl"] > noisy_scores["ovrl"] + 0.5
    assert clean_scores["bak"] > noisy_scores["bak"] + 1.0  # the background score sees the noise most
    # The 24 kHz copy is resampled to the models' 16 kHz and scores the same speech alike.
    import torchaudio.functional as AF

    resampled = AF.resample(torch.from_numpy(speech), 16_000, 24_000)
    assert dnsmos(resampled, 24_000)["ovrl"] == pytest.approx(clean_scores["ovrl"], abs=0.1)


def test_speaker_similarity_of_a_voice_to_itself_and_to_a_tone():
    speech = speech_like(3.0)
    assert speaker_similarity(speech, speech, 16_000) == pytest.approx(1.0, abs=1e-5)
    assert speaker_similarity(speech, sine(440, 3.0, 16_000), 16_000) < 0.9


def test_mean_ci_against_hand_values():
    # Mean 2, standard deviation 1, t(0.975, df=2) = 4.3027: half width 4.3027 / sqrt(3) = 2.4842.
    interval = mean_ci([1.0, 2.0, 3.0])
    assert interval["mean"] == 2.0 and interval["n"] == 3
    assert interval["high"] - 2.0 == pytest.approx(2.4842, abs=1e-4) and interval["low"] == pytest.approx(
        -0.4842, abs=1e-4
    )
    assert mean_ci([5.0, float("nan")]) == {"mean": 5.0, "low": 5.0, "high": 5.0, "n": 1, "missing": 1}
    assert mean_ci([float("nan")])["mean"] is None


def test_bits_of_ids_count_the_codebooks_used():
    ids = torch.zeros(1, 4, 4, 3, dtype=torch.long)
    assert bits_of(ids, [1024, 1024, 1024]) == 16 * 30
    assert bits_of(ids[..., :2], [1024, 256, 16]) == 16 * (10 + 8)  # a prefix counts its own sizes


def test_each_suite_turns_bits_into_its_rate_unit():
    from mmtok.eval.suites.audio import AudioSuite
    from mmtok.eval.suites.image import ImageSuite
    from mmtok.eval.suites.video import VideoSuite

    # 16 x 16 tokens of one 1024-code codebook over 256 x 256 pixels.
    grid = torch.zeros(1, 16, 16, 1, dtype=torch.long)
    assert ImageSuite().rate(bits_of(grid, [1024]), torch.zeros(1, 3, 256, 256), {}) == pytest.approx(2560 / 65536)
    # 75 positions a second x 8 codebooks of 1024 codes over one second: 6 kbps.
    codec = torch.zeros(1, 75, 8, dtype=torch.long)
    one_second = torch.zeros(1, 1, 24000)
    assert AudioSuite().rate(bits_of(codec, [1024] * 8), one_second, {"sample_rate": 24000}) == pytest.approx(6.0)
    assert AudioSuite().rate(bits_of(codec[..., :3], [1024, 1024, 256]), one_second, {"sample_rate": 24000}) == (
        pytest.approx(75 * 28 / 1000)
    )
    # 5 x 4 x 4 tokens of 2^16 codes over 17 frames of 64 x 64.
    clip = torch.zeros(1, 5, 4, 4, 1, dtype=torch.long)
    rate = VideoSuite().rate(bits_of(clip, [65536]), torch.zeros(1, 3, 17, 64, 64), {})
    assert rate == pytest.approx(5 * 16 * 16 / (17 * 64 * 64))
