"""The audio codec's spectral training losses."""

import pytest
import torch
import torch.nn.functional as F

from mmtok.train.audio_losses import MultiResolutionSTFTLoss


def _reference_stft_loss(recon: torch.Tensor, x: torch.Tensor, fft_sizes=(512, 1024, 2048)) -> torch.Tensor:
    """The definition: Hann window n, hop n/4, magnitudes floored at 1e-7, spectral convergence over
    the whole batch plus L1 of log magnitudes, averaged over the resolutions."""
    total = torch.zeros(())
    for n in fft_sizes:

        def magnitude(t, n=n):
            spec = torch.stft(t.reshape(-1, t.shape[-1]), n, n // 4, window=torch.hann_window(n), return_complex=True)
            return spec.abs().clamp_min(1e-7)

        a, b = magnitude(recon), magnitude(x)
        total = total + torch.linalg.norm(b - a) / torch.linalg.norm(b) + F.l1_loss(a.log(), b.log())
    return total / len(fft_sizes)


@pytest.mark.parametrize("level", [0.3, 1e-6])
def test_multi_resolution_stft_loss_matches_its_definition(level):
    # At 1e-6 most magnitudes lie between auraloss's default floor (1e-4) and ours (1e-7): a wrong
    # eps flattens the log term there. Half the clip is silence, where both are floored.
    g = torch.Generator().manual_seed(0)
    x = level * torch.randn(3, 1, 16000, generator=g)
    x[..., 8000:] = 0
    recon = (x + 0.5 * level * torch.randn(x.shape, generator=g)).requires_grad_()
    loss = MultiResolutionSTFTLoss()(recon, x)
    expected = _reference_stft_loss(recon, x)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    (grad,) = torch.autograd.grad(loss, recon)
    (expected_grad,) = torch.autograd.grad(expected, recon)
    assert torch.allclose(grad, expected_grad, rtol=1e-3, atol=1e-6 * expected_grad.abs().max().item())


def test_multi_resolution_stft_loss_shapes_and_silence():
    loss = MultiResolutionSTFTLoss(fft_sizes=(256, 512))
    x = torch.randn(2, 4000)
    assert loss(x, x).item() == pytest.approx(0.0, abs=1e-6)
    assert loss(x.view(2, 1, 4000), x.view(2, 1, 4000) * 0.5).item() == pytest.approx(
        _reference_stft_loss(x, x * 0.5, (256, 512)).item(), rel=1e-5
    )
    silent = torch.zeros(2, 4000)
    assert torch.isfinite(loss(x, silent)) and loss(x, silent) > 1
    assert loss.state_dict() == {}  # nothing new in the training checkpoints
