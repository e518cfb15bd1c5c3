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


def _tone(frequency: float, seconds: float = 1.0, rate: int = 24000, delay: int = 0) -> torch.Tensor:
    t = (torch.arange(int(seconds * rate)) - delay) / rate
    return torch.sin(2 * torch.pi * frequency * t).view(1, 1, -1)


def test_phase_derivative_loss_scores_the_pitch_not_where_a_period_starts():
    from mmtok.train.audio_losses import PhaseDerivativeLoss

    loss = PhaseDerivativeLoss(n_fft=1280, hop=320)
    x = _tone(220.0)
    same = loss(x, x).item()
    assert same < 0.01
    # A delay moves every bin's phase alike: the frame-to-frame and bin-to-bin steps stay.
    assert loss(_tone(220.0, delay=37), x).item() == pytest.approx(same, abs=0.005)
    # A pitch error turns the phase a little further each hop; the further off, the worse.
    near, far = loss(_tone(220.5), x).item(), loss(_tone(223.0), x).item()
    assert same < near < far
    noise = loss(0.5 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0)), x).item()
    assert noise > 0.3 and noise > 5 * far
    # The weight is the input's magnitude: what the reconstruction does in a silent input's bins is free.
    quiet = torch.cat([x[..., :12000], torch.zeros(1, 1, 12000)], dim=-1)
    garbage_in_silence = quiet.clone()
    garbage_in_silence[..., 12800:] = torch.randn(1, 1, 11200)
    assert loss(garbage_in_silence, quiet).item() < 0.05


def test_phase_derivative_loss_gradients_stay_bounded_on_silence():
    from mmtok.train.audio_losses import PhaseDerivativeLoss

    loss = PhaseDerivativeLoss(n_fft=256, hop=64)
    x = _tone(440.0, seconds=0.25)
    recon = torch.zeros_like(x).requires_grad_()
    value = loss(recon, x)
    (grad,) = torch.autograd.grad(value, recon)
    assert torch.isfinite(value) and torch.isfinite(grad).all()
    assert torch.isfinite(loss(x, torch.zeros_like(x)))  # a silent target weighs nothing
    assert loss.state_dict() == {}


def test_the_audio_recipe_adds_the_phase_term_only_when_weighted():
    from mmtok.models.audio import AudioTokenizerConfig
    from mmtok.models.registry import build_tokenizer
    from mmtok.train.audio_recipe import AudioRecipe
    from mmtok.train.config import LossConfig

    model = AudioTokenizerConfig(sample_rate=16000, strides=[4, 4], architecture="stft", frame_width=16)
    spec = build_tokenizer(model).input_spec()
    x = _tone(300.0, seconds=0.5, rate=16000)
    recon = x + 0.1 * torch.randn(x.shape, generator=torch.Generator().manual_seed(1))
    terms = {}
    for weight in (0.0, 2.0):
        recipe = AudioRecipe({}, LossConfig(modality={"phase_weight": weight}), model, spec)
        terms[weight] = recipe.reconstruction_losses(x, recon)
    assert "phase" not in terms[0.0]
    phase_weight, phase = terms[2.0]["phase"]
    assert phase_weight == 2.0 and 0 < phase.item() < 1
    assert recipe.phase.n_fft == 4 * 16 and recipe.phase.hop == 16  # the codec's own framing
