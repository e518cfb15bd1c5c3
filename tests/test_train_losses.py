"""Image-training building blocks: reconstruction/GAN losses, adaptive weight, LeCam, perceptual loss, PatchGAN."""

import logging

import pytest
import torch
import torch.nn as nn

from mmtok.train.discriminators import PatchGANDiscriminator
from mmtok.train.losses import (
    LeCamRegularizer,
    adaptive_gan_weight,
    discriminator_loss,
    generator_loss,
    reconstruction_loss,
)
from mmtok.train.perceptual import (
    PerceptualLoss,
    PerceptualWeightsError,
    build_perceptual_loss,
    expected_perceptual_keys,
    find_key_mismatch,
    load_perceptual_state_dict,
    perceptual_state_dict_from_lpips,
    save_perceptual_weights,
)

# ---------------------------------------------------------------- reconstruction


def test_reconstruction_loss_values():
    x = torch.tensor([[0.0, 1.0], [2.0, -1.0]])
    x_hat = torch.tensor([[1.0, 1.0], [0.0, 0.0]])
    # |diff| = 1, 0, 2, 1 -> mean 1.0 ; diff^2 = 1, 0, 4, 1 -> mean 1.5
    assert reconstruction_loss(x_hat, x, "l1").item() == pytest.approx(1.0)
    assert reconstruction_loss(x_hat, x, "l2").item() == pytest.approx(1.5)
    assert reconstruction_loss(x_hat, x).item() == pytest.approx(1.0)  # l1 by default


def test_reconstruction_loss_rejects_unknown_kind_and_shape_mismatch():
    x = torch.zeros(2, 3)
    with pytest.raises(ValueError, match="unknown reconstruction loss 'huber'"):
        reconstruction_loss(x, x, "huber")
    with pytest.raises(ValueError, match="shape"):
        reconstruction_loss(torch.zeros(3), torch.zeros(1))


# ---------------------------------------------------------------- GAN losses


def test_hinge_discriminator_loss_zero_only_beyond_margins():
    real = torch.tensor([1.0, 2.5, 1.0])
    fake = torch.tensor([-1.0, -3.0, -1.2])
    assert discriminator_loss(real, fake, "hinge").item() == 0.0
    # real = 0.5 violates the margin by 0.5 -> 0.5 * mean([0.5, 0, 0]) = 1/12
    real_inside = torch.tensor([0.5, 2.5, 1.0])
    assert discriminator_loss(real_inside, fake, "hinge").item() == pytest.approx(0.5 * 0.5 / 3)
    fake_inside = torch.tensor([-1.0, -3.0, 0.0])
    assert discriminator_loss(real, fake_inside, "hinge").item() > 0


def test_non_saturating_losses_match_softplus_formulas():
    real = torch.tensor([0.3, -1.2, 2.0])
    fake = torch.tensor([-0.5, 0.7, 1.5])
    expected_d = 0.5 * (torch.log1p(torch.exp(-real)).mean() + torch.log1p(torch.exp(fake)).mean())
    expected_g = -torch.log(torch.sigmoid(fake)).mean()
    assert discriminator_loss(real, fake, "non_saturating").item() == pytest.approx(expected_d.item(), rel=1e-6)
    assert generator_loss(fake, "non_saturating").item() == pytest.approx(expected_g.item(), rel=1e-6)


def test_hinge_generator_loss_is_negative_mean():
    fake = torch.tensor([[0.5, -1.5], [2.0, 3.0]])
    assert generator_loss(fake, "hinge").item() == pytest.approx(-1.0)


@pytest.mark.parametrize("kind", ["hinge", "non_saturating"])
def test_generator_loss_decreases_as_fake_logits_rise(kind):
    values = [generator_loss(torch.full((2, 1, 4, 4), v), kind).item() for v in (-2.0, -0.5, 0.0, 1.0, 3.0)]
    assert all(a > b for a, b in zip(values, values[1:]))


@pytest.mark.parametrize("kind", ["hinge", "non_saturating"])
def test_multi_scale_logits_average_per_scale_losses(kind):
    reals = [torch.randn(2, 1, 4, 4), torch.randn(2, 1, 2, 2)]
    fakes = [torch.randn(2, 1, 4, 4), torch.randn(2, 1, 2, 2)]
    d_each = [discriminator_loss(r, f, kind) for r, f in zip(reals, fakes)]
    g_each = [generator_loss(f, kind) for f in fakes]
    assert discriminator_loss(reals, fakes, kind).item() == pytest.approx(sum(d_each).item() / 2, rel=1e-6)
    assert generator_loss(fakes, kind).item() == pytest.approx(sum(g_each).item() / 2, rel=1e-6)
    with pytest.raises(ValueError, match="scales"):
        discriminator_loss(reals, fakes[:1], kind)


def test_gan_losses_reject_unknown_kind():
    with pytest.raises(ValueError, match="unknown GAN loss"):
        generator_loss(torch.zeros(1), "wasserstein")
    with pytest.raises(ValueError, match="unknown GAN loss"):
        discriminator_loss(torch.zeros(1), torch.zeros(1), "wasserstein")


# ---------------------------------------------------------------- adaptive weight


def test_adaptive_gan_weight_equals_gradient_norm_ratio():
    torch.manual_seed(0)
    layer = nn.Linear(3, 2, bias=False)
    x = torch.randn(4, 3)
    target = torch.randn(4, 2)
    out = layer(x)
    rec = ((out - target) ** 2).mean()
    gan = -out.mean() * 0.1
    # By hand: d rec / dW = 2/(4*2) * (out - target)^T x ; d gan / dW = -0.1/(4*2) * 1^T x
    with torch.no_grad():
        rec_grad = (2.0 / 8.0) * (out - target).T @ x
        gan_grad = (-0.1 / 8.0) * torch.ones(4, 2).T @ x
    expected = rec_grad.norm() / (gan_grad.norm() + 1e-4)

    weight = adaptive_gan_weight(rec, gan, layer.weight)
    assert weight.ndim == 0 and not weight.requires_grad
    assert weight.item() == pytest.approx(expected.item(), rel=1e-5)
    # The graph is kept for the trainer's own backward pass.
    (rec + weight * gan).backward()
    assert layer.weight.grad is not None


def test_adaptive_gan_weight_is_clamped():
    w = torch.tensor([1.0], requires_grad=True)
    rec = (w * 1000.0).sum()
    gan = (w * 1e-6).sum()
    assert adaptive_gan_weight(rec, gan, w, max_weight=50.0).item() == 50.0


# ---------------------------------------------------------------- LeCam


def test_lecam_penalty_zero_when_logits_stay_on_the_other_side_of_the_averages():
    lecam = LeCamRegularizer(decay=0.9)
    lecam.update(torch.tensor([2.0, 2.0]), torch.tensor([-2.0, -2.0]))
    assert lecam.ema_real.item() == pytest.approx(2.0)
    assert lecam.ema_fake.item() == pytest.approx(-2.0)
    # Real logits at or below the fake average and fake logits at or above the
    # real average are left alone: both hinges are inactive.
    assert lecam(torch.tensor([-3.0, -2.0]), torch.tensor([2.0, 4.0])).item() == 0.0
    # real - ema_fake = [1, -3] -> relu^2 mean = 0.5 ; ema_real - fake = [-1, 1] -> 0.5
    penalty = lecam(torch.tensor([-1.0, -5.0]), torch.tensor([3.0, 1.0]))
    assert penalty.item() == pytest.approx(0.5 + 0.5)


def test_lecam_ema_buffers_update_and_live_in_state_dict():
    lecam = LeCamRegularizer(decay=0.9)
    lecam.update(torch.tensor([1.0, 3.0]), torch.tensor([0.0, -2.0]))  # first update copies the means
    assert (lecam.ema_real.item(), lecam.ema_fake.item()) == pytest.approx((2.0, -1.0))
    lecam.update([torch.full((2, 1, 2, 2), 12.0)], [torch.full((2, 1, 2, 2), 19.0)])
    assert lecam.ema_real.item() == pytest.approx(0.9 * 2.0 + 0.1 * 12.0)
    assert lecam.ema_fake.item() == pytest.approx(0.9 * -1.0 + 0.1 * 19.0)

    state = lecam.state_dict()
    assert {"ema_real", "ema_fake", "num_updates"} <= set(state)
    restored = LeCamRegularizer(decay=0.9)
    restored.load_state_dict(state)
    assert restored.ema_real.item() == pytest.approx(lecam.ema_real.item())
    assert restored.num_updates.item() == 2


def test_lecam_penalty_has_gradient_to_logits():
    lecam = LeCamRegularizer()
    lecam.update(torch.zeros(3), torch.zeros(3))
    real = torch.tensor([-1.0, 0.5, 2.0], requires_grad=True)
    lecam(real, torch.zeros(3)).backward()
    # d/dr mean(relu(r - 0)^2) = 2 r / 3 where r > 0
    assert torch.allclose(real.grad, torch.tensor([0.0, 1.0 / 3.0, 4.0 / 3.0]))


# ---------------------------------------------------------------- perceptual


@pytest.fixture(scope="module")
def perceptual():
    return PerceptualLoss.from_random_init(seed=0)


def _images(seed, n=2, size=32):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, size, size, generator=g) * 2 - 1


def test_perceptual_zero_for_identical_positive_and_symmetric_otherwise(perceptual):
    a, b = _images(1), _images(2)
    assert perceptual(a, a).item() == pytest.approx(0.0, abs=1e-7)
    ab, ba = perceptual(a, b), perceptual(b, a)
    assert ab.item() > 0
    assert ab.item() == pytest.approx(ba.item(), rel=1e-5)
    per_image = perceptual(a, b, reduction="none")
    assert per_image.shape == (2,) and (per_image > 0).all()
    assert per_image.mean().item() == pytest.approx(ab.item(), rel=1e-6)


def test_perceptual_is_frozen_but_passes_gradients_to_input(perceptual):
    assert not any(p.requires_grad for p in perceptual.parameters())
    perceptual.train()
    assert not perceptual.training
    x_hat = _images(3).requires_grad_(True)
    perceptual(x_hat, _images(4)).backward()
    assert x_hat.grad is not None and torch.isfinite(x_hat.grad).all() and x_hat.grad.abs().sum() > 0
    assert all(p.grad is None for p in perceptual.parameters())


def test_perceptual_weights_round_trip_through_safetensors(perceptual, tmp_path):
    path = tmp_path / "lpips_vgg.safetensors"
    save_perceptual_weights(perceptual, path)
    loaded = PerceptualLoss(weights_path=str(path))
    a, b = _images(5), _images(6)
    assert torch.equal(loaded(a, b, reduction="none"), perceptual(a, b, reduction="none"))
    assert build_perceptual_loss(path) is not None


def test_perceptual_weights_load_from_torch_state_dict(perceptual, tmp_path):
    path = tmp_path / "lpips_vgg.pt"
    torch.save(perceptual.state_dict(), path)
    loaded = PerceptualLoss(weights_path=path)
    a, b = _images(7), _images(8)
    assert torch.equal(loaded(a, b), perceptual(a, b))


def test_perceptual_documented_keys(perceptual):
    keys = expected_perceptual_keys()
    assert set(keys) == set(perceptual.state_dict())
    assert keys["features.0.weight"] == (64, 3, 3, 3)
    assert keys["features.28.bias"] == (512,)
    assert keys["lins.2.weight"] == (1, 256, 1, 1)
    assert "shift" not in keys and "scale" not in keys


def test_perceptual_mismatched_keys_raise(perceptual, tmp_path):
    state = dict(perceptual.state_dict())
    state["lins.5.weight"] = torch.ones(1, 8, 1, 1)
    del state["features.0.bias"]
    state["lins.0.weight"] = torch.ones(1, 32, 1, 1)
    mismatch = find_key_mismatch(perceptual.state_dict(), state)
    assert mismatch.missing == ["features.0.bias"]
    assert mismatch.unexpected == ["lins.5.weight"]
    assert mismatch.wrong_shape and mismatch.wrong_shape[0].startswith("lins.0.weight")

    target = PerceptualLoss.from_random_init(seed=1)
    with pytest.raises(PerceptualWeightsError, match=r"missing keys: features\.0\.bias.*unexpected keys: lins\.5"):
        load_perceptual_state_dict(target, state)
    path = tmp_path / "bad.safetensors"
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    with pytest.raises(PerceptualWeightsError, match="wrong shape keys: lins.0.weight"):
        PerceptualLoss(weights_path=path)


def test_perceptual_negative_channel_weights_raise(perceptual):
    state = {k: v.clone() for k, v in perceptual.state_dict().items()}
    state["lins.1.weight"][0, 0] = -0.5
    with pytest.raises(PerceptualWeightsError, match="lins.1.weight"):
        load_perceptual_state_dict(PerceptualLoss.from_random_init(seed=2), state)


def test_perceptual_state_dict_from_lpips_layout(perceptual):
    state = perceptual.state_dict()
    vgg = {k: v for k, v in state.items() if k.startswith("features.")}
    vgg["classifier.0.weight"] = torch.zeros(2, 2)  # the classifier of a full VGG16 is dropped
    lins = {f"lin{k}.model.1.weight": state[f"lins.{k}.weight"] for k in range(5)}
    converted = perceptual_state_dict_from_lpips(vgg, lins)
    assert not find_key_mismatch(state, converted)


def test_build_perceptual_loss_without_path_logs_and_returns_none(caplog):
    with caplog.at_level(logging.INFO, logger="mmtok.train"):
        assert build_perceptual_loss(None) is None
    assert "perceptual loss off: no weights path given" in caplog.text
    assert any(r.name == "mmtok.train" for r in caplog.records)


def test_build_perceptual_loss_missing_file_names_path(tmp_path):
    missing = tmp_path / "nope" / "lpips.safetensors"
    with pytest.raises(FileNotFoundError, match="nope"):
        build_perceptual_loss(str(missing))


def test_perceptual_needs_weights_or_random_init():
    with pytest.raises(ValueError, match="weights_path"):
        PerceptualLoss()


# ---------------------------------------------------------------- PatchGAN


@pytest.mark.parametrize("size, side", [(64, 6), (128, 14)])
def test_patchgan_output_shape(size, side):
    disc = PatchGANDiscriminator(in_channels=3, base_channels=16, num_layers=3)
    out = disc(torch.randn(2, 3, size, size))
    assert out.shape == (2, 1, side, side)


@pytest.mark.parametrize("norm, norm_type", [("group", nn.GroupNorm), ("batch", nn.BatchNorm2d), ("none", None)])
def test_patchgan_norm_choice_and_init(norm, norm_type):
    torch.manual_seed(0)
    disc = PatchGANDiscriminator(base_channels=64, num_layers=3, norm=norm)
    norms = [m for m in disc.modules() if isinstance(m, (nn.GroupNorm, nn.BatchNorm2d))]
    if norm_type is None:
        assert norms == []
    else:
        assert norms and all(isinstance(m, norm_type) for m in norms)
    convs = [m for m in disc.modules() if isinstance(m, nn.Conv2d)]
    weights = torch.cat([c.weight.flatten() for c in convs])
    assert abs(weights.mean().item()) < 1e-3
    assert weights.std().item() == pytest.approx(0.02, rel=0.05)
    assert disc(torch.randn(2, 3, 64, 64)).shape == (2, 1, 6, 6)


def test_patchgan_rejects_unknown_norm():
    with pytest.raises(ValueError, match="unknown norm"):
        PatchGANDiscriminator(norm="layer")


def test_patchgan_learns_to_separate_real_from_fake_with_the_hinge_loss():
    torch.manual_seed(0)
    disc = PatchGANDiscriminator(base_channels=8, num_layers=2)
    optimizer = torch.optim.Adam(disc.parameters(), lr=2e-3, betas=(0.5, 0.9))
    ramp = torch.linspace(-1, 1, 32)
    real = (ramp[None, None, :, None] * ramp[None, None, None, :]).expand(4, 3, 32, 32)  # smooth
    fake = torch.randn(4, 3, 32, 32).clamp(-1, 1)  # noise
    losses = []
    for _ in range(30):
        loss = discriminator_loss(disc(real), disc(fake), "hinge")
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.25 * losses[0]
    with torch.no_grad():
        assert disc(real).mean() > 0.5 > -0.5 > disc(fake).mean()  # each side beyond its margin on average
