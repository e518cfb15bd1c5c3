"""LPIPS-style perceptual loss on a frozen VGG16 (after Zhang et al. 2018, "The Unreasonable
Effectiveness of Deep Features").

The distance between two images is computed from VGG16 activations at relu1_2,
relu2_2, relu3_3, relu4_3 and relu5_3: each activation is scaled to unit length
along the channel axis, the two images' activations are subtracted and squared,
a learned non-negative weight per channel (a 1x1 conv with one output and no
bias) collapses the channels, and the result is averaged over positions. The
five per-layer numbers are summed.

Weights are never downloaded. They come from a local file given by
``weights_path``: a ``.safetensors`` file (preferred) or, for any other suffix,
a plain torch state dict read with ``torch.load(weights_only=True)``. The file
holds one flat mapping with these keys (see ``expected_perceptual_keys()``):

    features.{i}.weight, features.{i}.bias
        VGG16 conv layers, with i in 0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28:
        exactly the names and shapes of torchvision's ``vgg16().features``
        (so a torchvision VGG16 state dict's ``features.*`` entries fit as-is).
    lins.{k}.weight
        per-channel weights for tap k in 0..4, shape (1, C_k, 1, 1) with
        C = 64, 128, 256, 512, 512; all entries must be >= 0.

``perceptual_state_dict_from_lpips`` turns a torchvision VGG16 state dict plus
the original LPIPS linear-layer file (keys ``lin{k}.model.1.weight``) into this
layout; ``save_perceptual_weights`` writes it as safetensors.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn as nn

from mmtok.weights import read_state_dict

__all__ = [
    "VGG16_TAP_INDICES",
    "VGG16_TAP_CHANNELS",
    "PerceptualLoss",
    "PerceptualWeightsError",
    "KeyMismatch",
    "build_perceptual_loss",
    "expected_perceptual_keys",
    "find_key_mismatch",
    "load_perceptual_state_dict",
    "read_perceptual_weights",
    "save_perceptual_weights",
    "perceptual_state_dict_from_lpips",
]

logger = logging.getLogger("mmtok.train")

# Positions of relu1_2, relu2_2, relu3_3, relu4_3, relu5_3 in torchvision's vgg16().features.
VGG16_TAP_INDICES = (3, 8, 15, 22, 29)
VGG16_TAP_CHANNELS = (64, 128, 256, 512, 512)

# LPIPS maps [-1, 1] inputs to ImageNet-normalised ones with these per-channel constants.
LPIPS_SHIFT = (-0.030, -0.088, -0.188)
LPIPS_SCALE = (0.458, 0.448, 0.450)

# Keeps the channel normalisation finite where every channel is zero after a ReLU.
_NORM_EPS = 1e-10


class PerceptualWeightsError(ValueError):
    """A perceptual weights file does not fit the network (wrong keys, shapes or signs)."""


@dataclass
class KeyMismatch:
    """How a state dict differs from what ``PerceptualLoss`` expects."""

    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    wrong_shape: list[str] = field(default_factory=list)  # "key: expected (..), got (..)"

    def __bool__(self) -> bool:
        return bool(self.missing or self.unexpected or self.wrong_shape)

    def describe(self, limit: int = 10) -> str:
        parts = []
        for label, items in (
            ("missing", self.missing),
            ("unexpected", self.unexpected),
            ("wrong shape", self.wrong_shape),
        ):
            if items:
                shown = ", ".join(items[:limit]) + (f", ... ({len(items)} in all)" if len(items) > limit else "")
                parts.append(f"{label} keys: {shown}")
        return "; ".join(parts)


def _vgg16_features() -> nn.Sequential:
    """torchvision's VGG16 ``features`` stack with random weights, nothing downloaded."""
    try:
        # The same builder vgg16(weights=None) uses, minus its 120M-parameter
        # classifier that would cost seconds and hundreds of MB only to be thrown away.
        from torchvision.models.vgg import cfgs, make_layers

        features = make_layers(cfgs["D"], batch_norm=False)
    except ImportError:  # torchvision moved its internals: fall back to the public builder
        from torchvision.models import vgg16

        features = vgg16(weights=None).features
    # Only layers up to the last tap are needed; the indices (and so the keys) stay the same.
    return features[: VGG16_TAP_INDICES[-1] + 1]


class PerceptualLoss(nn.Module):
    """Frozen LPIPS-style distance; inputs are images in [-1, 1], shape (B, 3, H, W).

    ``PerceptualLoss(weights_path)`` loads weights from a local file (see the
    module docstring for its keys); ``PerceptualLoss.from_random_init()`` (or
    ``random_init=True``) builds the same network with random weights, which is
    only meaningful for tests. Parameters never require grad and the module
    stays in eval mode, but gradients flow back to the inputs.
    """

    def __init__(self, weights_path: str | os.PathLike | None = None, *, random_init: bool = False) -> None:
        super().__init__()
        if (weights_path is None) == (not random_init):
            raise ValueError(
                "give exactly one of weights_path or random_init=True "
                "(use build_perceptual_loss to turn the loss off without weights)"
            )
        self.features = _vgg16_features()
        self.lins = nn.ModuleList(nn.Conv2d(c, 1, kernel_size=1, bias=False) for c in VGG16_TAP_CHANNELS)
        # Not persistent: constants, not learned weights, so they stay out of weight files.
        self.register_buffer("shift", torch.tensor(LPIPS_SHIFT).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(LPIPS_SCALE).view(1, 3, 1, 1), persistent=False)
        if random_init:
            self._init_random()
        else:
            load_perceptual_state_dict(self, read_perceptual_weights(weights_path))
        self.requires_grad_(False)
        self.eval()

    @classmethod
    def from_random_init(cls, seed: int | None = None) -> PerceptualLoss:
        """Same architecture with random weights (for tests); ``seed`` makes them reproducible."""
        if seed is None:
            return cls(random_init=True)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return cls(random_init=True)

    def _init_random(self) -> None:
        for module in self.features:
            if isinstance(module, nn.Conv2d):  # as torchvision initialises VGG
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(module.bias)
        for lin in self.lins:
            nn.init.uniform_(lin.weight, 0.0, 1.0)  # the channel weights must be non-negative

    def train(self, mode: bool = True) -> PerceptualLoss:
        # Frozen: a parent's .train() must not switch this network out of eval mode.
        return super().train(False)

    def _tap_activations(self, x: torch.Tensor) -> list[torch.Tensor]:
        taps = []
        h = (x - self.shift.to(x.dtype)) / self.scale.to(x.dtype)
        for index, layer in enumerate(self.features):
            h = layer(h)
            if index in VGG16_TAP_INDICES:
                taps.append(h)
        return taps

    def forward(self, x_hat: torch.Tensor, x: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
        """Distance between ``x_hat`` and ``x``: a scalar for reduction="mean", shape (B,) for "none"."""
        if x_hat.shape != x.shape:
            raise ValueError(f"image shapes differ: {tuple(x_hat.shape)} vs {tuple(x.shape)}")
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"expected RGB images (B, 3, H, W) in [-1, 1], got shape {tuple(x.shape)}")
        if reduction not in ("mean", "none"):
            raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}")
        # One pass for both images halves the number of conv calls.
        taps = self._tap_activations(torch.cat([x_hat, x], dim=0))
        distance = x.new_zeros(x.shape[0], dtype=torch.float32)
        for tap, lin in zip(taps, self.lins):
            # float32 from here on: half precision underflows the eps and the squared differences.
            tap = tap.float()
            tap = tap / (torch.linalg.vector_norm(tap, dim=1, keepdim=True) + _NORM_EPS)
            a, b = tap.chunk(2, dim=0)
            weighted = nn.functional.conv2d((a - b).pow(2), lin.weight.float())
            distance = distance + weighted.mean(dim=(1, 2, 3))
        return distance.mean() if reduction == "mean" else distance


def expected_perceptual_keys() -> dict[str, tuple[int, ...]]:
    """Every key a perceptual weights file must hold, with its shape."""
    with torch.device("meta"):  # shapes only: no memory, no init cost
        model = nn.Module()
        model.features = _vgg16_features()
        model.lins = nn.ModuleList(nn.Conv2d(c, 1, kernel_size=1, bias=False) for c in VGG16_TAP_CHANNELS)
    return {key: tuple(value.shape) for key, value in model.state_dict().items()}


def find_key_mismatch(expected: Mapping[str, torch.Tensor], given: Mapping[str, torch.Tensor]) -> KeyMismatch:
    """Report keys of ``given`` that are missing, unexpected or of the wrong shape compared with ``expected``."""
    mismatch = KeyMismatch(
        missing=sorted(set(expected) - set(given)),
        unexpected=sorted(set(given) - set(expected)),
    )
    for key in sorted(set(expected) & set(given)):
        want, got = tuple(expected[key].shape), tuple(given[key].shape)
        if want != got:
            mismatch.wrong_shape.append(f"{key}: expected {want}, got {got}")
    return mismatch


def load_perceptual_state_dict(model: PerceptualLoss, state_dict: Mapping[str, torch.Tensor]) -> None:
    """Load ``state_dict`` into ``model``, raising PerceptualWeightsError that names every mismatched key."""
    mismatch = find_key_mismatch(model.state_dict(), state_dict)
    if mismatch:
        raise PerceptualWeightsError(f"perceptual weights do not fit the VGG16 LPIPS network: {mismatch.describe()}")
    negative = [key for key in state_dict if key.startswith("lins.") and bool((state_dict[key] < 0).any())]
    if negative:
        # LPIPS keeps its channel weights non-negative; a negative one would reward differences.
        raise PerceptualWeightsError(f"perceptual channel weights must be >= 0, negative entries in: {negative}")
    model.load_state_dict(dict(state_dict), strict=True)


def read_perceptual_weights(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a weights file to CPU (mmtok.weights: safetensors, or a tensors-only torch file)."""
    try:
        return read_state_dict(path)
    except ValueError as error:
        raise PerceptualWeightsError(str(error)) from error


def save_perceptual_weights(model: PerceptualLoss, path: str | os.PathLike) -> None:
    """Write the model's weights as safetensors under the documented keys."""
    from safetensors.torch import save_file

    save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, str(path))


def perceptual_state_dict_from_lpips(
    vgg16_state_dict: Mapping[str, torch.Tensor],
    lpips_linear_state_dict: Mapping[str, torch.Tensor],
) -> dict[str, torch.Tensor]:
    """Combine a torchvision VGG16 state dict and the LPIPS ``vgg.pth`` linear layers into this module's keys."""
    expected = expected_perceptual_keys()
    out = {k: v for k, v in vgg16_state_dict.items() if k in expected and k.startswith("features.")}
    for k in range(len(VGG16_TAP_CHANNELS)):
        source = f"lin{k}.model.1.weight"
        if source not in lpips_linear_state_dict:
            raise PerceptualWeightsError(f"LPIPS linear weights lack {source!r}")
        out[f"lins.{k}.weight"] = lpips_linear_state_dict[source]
    return out


def build_perceptual_loss(weights_path: str | os.PathLike | None) -> PerceptualLoss | None:
    """The perceptual loss from ``weights_path``, or None (logged) when no path is given.

    A path that does not exist raises FileNotFoundError rather than silently
    training without the loss.
    """
    if weights_path is None or str(weights_path) == "":
        logger.warning("perceptual loss off: no weights path given")
        return None
    if not Path(weights_path).is_file():
        raise FileNotFoundError(f"perceptual loss weights file not found: {weights_path}")
    return PerceptualLoss(weights_path)
