"""Loss functions every recipe and the trainer share: reconstruction, GAN, adaptive GAN weight, LeCam.

Everything here is a small pure function (or, for LeCam, a module that only
holds two running averages) so the trainer can combine them as its config says.
Discriminator logits may be one tensor or a list of tensors (one per scale of a
multi-scale discriminator); list losses are the mean of the per-scale losses.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = [
    "RECONSTRUCTION_KINDS",
    "GAN_KINDS",
    "reconstruction_loss",
    "discriminator_loss",
    "generator_loss",
    "adaptive_gan_weight",
    "LeCamRegularizer",
]

RECONSTRUCTION_KINDS = ("l1", "l2")
GAN_KINDS = ("hinge", "non_saturating")

Logits = torch.Tensor | Sequence[torch.Tensor]


def reconstruction_loss(x_hat: torch.Tensor, x: torch.Tensor, kind: str = "l1") -> torch.Tensor:
    """Mean absolute ("l1") or mean squared ("l2") error between ``x_hat`` and ``x``."""
    if x_hat.shape != x.shape:
        # Silent broadcasting would average over the wrong pairs of pixels.
        raise ValueError(f"reconstruction shape {tuple(x_hat.shape)} differs from target {tuple(x.shape)}")
    if kind == "l1":
        return F.l1_loss(x_hat, x)
    if kind == "l2":
        return F.mse_loss(x_hat, x)
    raise ValueError(f"unknown reconstruction loss {kind!r}; expected one of {RECONSTRUCTION_KINDS}")


def _as_list(logits: Logits) -> list[torch.Tensor]:
    if isinstance(logits, torch.Tensor):
        return [logits]
    items = list(logits)
    if not items:
        raise ValueError("got an empty list of discriminator logits")
    return items


def _check_gan_kind(kind: str) -> None:
    if kind not in GAN_KINDS:
        raise ValueError(f"unknown GAN loss {kind!r}; expected one of {GAN_KINDS}")


def _discriminator_loss_one_scale(real: torch.Tensor, fake: torch.Tensor, kind: str) -> torch.Tensor:
    # The 0.5 keeps the discriminator loss on the scale of one term, as in VQGAN.
    if kind == "hinge":
        return 0.5 * (F.relu(1.0 - real).mean() + F.relu(1.0 + fake).mean())
    # -log sigmoid(real) - log(1 - sigmoid(fake)), written with softplus for stability.
    return 0.5 * (F.softplus(-real).mean() + F.softplus(fake).mean())


def discriminator_loss(real_logits: Logits, fake_logits: Logits, kind: str = "hinge") -> torch.Tensor:
    """Discriminator loss; ``fake_logits`` should come from detached reconstructions.

    hinge:          0.5 * (mean(relu(1 - real)) + mean(relu(1 + fake)))
    non_saturating: 0.5 * (mean(softplus(-real)) + mean(softplus(fake)))
    """
    _check_gan_kind(kind)
    reals, fakes = _as_list(real_logits), _as_list(fake_logits)
    if len(reals) != len(fakes):
        raise ValueError(f"{len(reals)} real logit scales but {len(fakes)} fake ones")
    losses = [_discriminator_loss_one_scale(r, f, kind) for r, f in zip(reals, fakes)]
    return torch.stack(losses).mean()


def generator_loss(fake_logits: Logits, kind: str = "hinge") -> torch.Tensor:
    """Generator (tokenizer) adversarial loss; it falls as the discriminator's fake logits rise.

    hinge:          -mean(fake)
    non_saturating: mean(softplus(-fake))   (= -log sigmoid(fake))
    """
    _check_gan_kind(kind)
    if kind == "hinge":
        losses = [-f.mean() for f in _as_list(fake_logits)]
    else:
        losses = [F.softplus(-f).mean() for f in _as_list(fake_logits)]
    return torch.stack(losses).mean()


def adaptive_gan_weight(
    reconstruction_loss: torch.Tensor,
    generator_loss: torch.Tensor,
    last_layer: torch.Tensor,
    max_weight: float = 1e4,
) -> torch.Tensor:
    """VQGAN's adaptive weight: ||d rec / d last|| / (||d gan / d last|| + 1e-4), clamped to [0, max_weight].

    Balances the GAN gradient against the reconstruction gradient at the
    decoder's last layer (Esser et al. 2021). Both losses must still hold their
    autograd graphs and depend on ``last_layer`` (a parameter, usually the
    decoder's output conv weight): call this before ``backward()``. The graphs
    are kept (``retain_graph=True``) so the caller can back-propagate the total
    loss afterwards. The result is a detached scalar tensor.
    """
    if not last_layer.requires_grad:
        raise ValueError("last_layer does not require grad, so the adaptive GAN weight cannot be computed")
    rec_grad = torch.autograd.grad(reconstruction_loss, last_layer, retain_graph=True)[0]
    gan_grad = torch.autograd.grad(generator_loss, last_layer, retain_graph=True)[0]
    weight = rec_grad.norm() / (gan_grad.norm() + 1e-4)
    return weight.clamp(0.0, max_weight).detach()


def _flat_logits(logits: Logits) -> torch.Tensor:
    # All scales of a multi-scale discriminator share one pair of averages.
    return torch.cat([t.reshape(-1) for t in _as_list(logits)]).float()


class LeCamRegularizer(nn.Module):
    """LeCam regularisation for the discriminator (Yu et al. 2021, "Regularizing GANs under limited data").

    Keeps exponential moving averages of the mean real and fake logits and
    penalises logits that stray past the opposite side's average:

        penalty = mean(relu(real - ema_fake)^2) + mean(relu(ema_real - fake)^2)

    Typical use each discriminator step: ``lecam.update(real, fake)`` then
    ``d_loss += lecam_weight * lecam(real, fake)``. The averages are buffers,
    so they are saved and restored with the checkpoint's state_dict. The first
    update copies the batch means instead of blending with the zero start, so
    early penalties are not biased toward zero.
    """

    def __init__(self, decay: float = 0.99) -> None:
        super().__init__()
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"decay must be in [0, 1), got {decay}")
        self.decay = decay
        self.register_buffer("ema_real", torch.zeros(()))
        self.register_buffer("ema_fake", torch.zeros(()))
        self.register_buffer("num_updates", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def update(self, real_logits: Logits, fake_logits: Logits) -> None:
        real_mean = _flat_logits(real_logits).mean().to(self.ema_real)
        fake_mean = _flat_logits(fake_logits).mean().to(self.ema_fake)
        if self.num_updates.item() == 0:
            self.ema_real.copy_(real_mean)
            self.ema_fake.copy_(fake_mean)
        else:
            self.ema_real.lerp_(real_mean, 1.0 - self.decay)
            self.ema_fake.lerp_(fake_mean, 1.0 - self.decay)
        self.num_updates += 1

    def forward(self, real_logits: Logits, fake_logits: Logits) -> torch.Tensor:
        real = _flat_logits(real_logits)
        fake = _flat_logits(fake_logits)
        ema_real = self.ema_real.to(real.device)
        ema_fake = self.ema_fake.to(real.device)
        return F.relu(real - ema_fake).pow(2).mean() + F.relu(ema_real - fake).pow(2).mean()
