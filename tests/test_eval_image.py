import math

import numpy as np
import pytest
import skimage.data
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from mmtok.eval.metrics.image import MS_SSIM_WEIGHTS, ms_ssim, ms_ssim_supported, psnr, ssim


def _photo_batch(size: int) -> torch.Tensor:
    """Two natural crops in [-1, 1], shape (2, 3, size, size)."""
    crops = [
        skimage.data.astronaut()[100 : 100 + size, 150 : 150 + size],
        skimage.data.coffee()[:size, 200 : 200 + size],
    ]
    batch = torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).float() / 255
    return batch * 2 - 1


def _noisy(x: torch.Tensor, std: float, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (x + std * torch.randn(x.shape, generator=g)).clamp(-1, 1)


def test_psnr_identical_is_inf():
    x = _photo_batch(32)
    assert torch.all(torch.isinf(psnr(x, x)))


def test_psnr_matches_formula_for_known_mse():
    x = torch.zeros(2, 3, 8, 8)
    y = x + 0.1  # MSE = 0.01
    expected = 10 * math.log10(2.0**2 / 0.01)
    assert torch.allclose(psnr(x, y), torch.full((2,), expected), atol=1e-4)
    assert torch.allclose(psnr(x, y, data_range=1.0), torch.full((2,), 10 * math.log10(1 / 0.01)), atol=1e-4)


def test_psnr_matches_skimage_per_image():
    x = _photo_batch(48)
    y = _noisy(x, 0.1)
    ours = psnr(x, y)
    assert ours.shape == (2,)
    for i in range(2):
        ref = peak_signal_noise_ratio(x[i].numpy(), y[i].numpy(), data_range=2.0)
        assert ours[i].item() == pytest.approx(ref, abs=1e-4)  # float32: 5e-6 dB measured
        # float64 keeps float64 except for torchmetrics' float32 log of data_range: 2e-6 dB measured.
        assert psnr(x[i : i + 1].double(), y[i : i + 1].double()).item() == pytest.approx(ref, abs=1e-5)


def _skimage_ssim(x: np.ndarray, y: np.ndarray, k1: float = 0.01) -> float:
    """scikit-image's Gaussian-weighted SSIM (Wang et al.'s settings) of one (C, H, W) image in [-1, 1]."""
    return structural_similarity(
        x, y, data_range=2.0, channel_axis=0, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, K1=k1
    )


# torchmetrics averages its SSIM map over the reflect-padded border too; that alone would be 3e-3 or more
# off here, so these tolerances check that eval/metrics/image.py crops the border as scikit-image does.
@pytest.mark.parametrize("size", [11, 32, 64])
@pytest.mark.parametrize("std", [0.02, 0.2, 0.6])
def test_ssim_matches_skimage(std, size):
    x = _photo_batch(size)
    y = _noisy(x, std)
    ours = ssim(x, y)
    assert ours.shape == (2,) and ours.dtype == torch.float32
    ours64 = ssim(x.double(), y.double())
    for i in range(2):
        ref = _skimage_ssim(x[i].double().numpy(), y[i].double().numpy())
        assert abs(ours[i].item() - ref) < 2e-5  # float32 rounding: 6e-6 measured
        assert abs(ours64[i].item() - ref) < 1e-12


def _skimage_ms_ssim(x: np.ndarray, y: np.ndarray) -> float:
    """MS-SSIM of one (C, H, W) image built from scikit-image's SSIM, per channel, then averaged.

    The contrast-structure term is SSIM with the luminance term switched off (a huge K1 makes it 1);
    downsampling is the mean of each 2x2 block.
    """
    per_channel = []
    for xc, yc in zip(x, y):
        value = 1.0
        for scale, weight in enumerate(MS_SSIM_WEIGHTS):
            last = scale == len(MS_SSIM_WEIGHTS) - 1
            term = _skimage_ssim(xc[None], yc[None], k1=0.01 if last else 1e6)
            value *= max(term, 0.0) ** weight
            h, w = (s // 2 * 2 for s in xc.shape)
            xc, yc = (im[:h, :w].reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3)) for im in (xc, yc))
        per_channel.append(value)
    return float(np.mean(per_channel))


@pytest.mark.parametrize("std", [0.05, 0.4])
def test_ms_ssim_matches_skimage_built_reference(std):
    # 176 px is the smallest size, where the last scale is 11x11 and its valid window one position:
    # torchmetrics' own MS-SSIM is 1e-4 to 2e-2 away from this reference there.
    x = _photo_batch(176).double()
    y = _noisy(x, std)
    ours = ms_ssim(x, y)
    assert ours.shape == (2,)
    for i in range(2):
        assert abs(ours[i].item() - _skimage_ms_ssim(x[i].numpy(), y[i].numpy())) < 1e-9


def test_ssim_in_zero_one_range_and_identical_is_one():
    x = (_photo_batch(40) + 1) / 2
    assert torch.allclose(ssim(x, x, data_range=1.0), torch.ones(2))
    with pytest.raises(ValueError, match="at least"):
        ssim(x[..., :10, :10], x[..., :10, :10])
    with pytest.raises(ValueError, match="shapes differ"):
        ssim(x, x[:1])


def test_ms_ssim_identical_is_one_and_drops_with_noise():
    x = _photo_batch(192)
    assert torch.allclose(ms_ssim(x, x), torch.ones(2), atol=1e-5)
    mild, strong = ms_ssim(x, _noisy(x, 0.05)), ms_ssim(x, _noisy(x, 0.4))
    assert torch.all(mild < 1) and torch.all(strong < mild) and torch.all(strong > 0)


def test_ms_ssim_too_small_raises():
    assert ms_ssim_supported(176, 200)
    assert not ms_ssim_supported(175, 512)
    x = torch.zeros(1, 3, 128, 256)
    with pytest.raises(ValueError, match="176"):
        ms_ssim(x, x)


def test_colourfulness_of_known_images():
    from mmtok.eval.metrics.image import colourfulness

    gray = torch.rand(1, 1, 8, 8).expand(1, 3, 8, 8) * 2 - 1
    red = torch.tensor([1.0, -1.0, -1.0]).view(1, 3, 1, 1).expand(1, 3, 8, 8)  # (255, 0, 0)
    values = colourfulness(torch.cat([gray, red]))
    assert values[0].item() == pytest.approx(0.0, abs=1e-9)
    assert values[1].item() == pytest.approx((170 + 85 + 85) / 3)
    half = torch.cat([red[..., :4], gray[:, :, :, :4]], dim=-1)  # half red, half gray
    assert colourfulness(half).item() == pytest.approx(values[1].item() / 2)
