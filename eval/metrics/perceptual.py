"""Perceptual image metrics: one that needs no weights (HaarPSI, from ``piq``), and LPIPS and FID,
whose networks' weights cannot be downloaded here and are read from a local file when given.

Images are batch-first (B, 3, H, W) in [-1, 1], the toolkit's convention.

- HaarPSI (Reisenhofer et al. 2018): Haar-wavelet similarity, in [0, 1], 1 for identical images;
  ``piq.haarpsi`` on [0, 1] pixels.
- LPIPS (Zhang et al. 2018), VGG variant: torchmetrics' LPIPS module with the linear heads it
  ships (``lpips_models/vgg.pth``) and the VGG16 backbone from ``weights``, a torchvision VGG16
  state dict (``features.*`` keys are enough) as .safetensors or .pth. 0 for identical images.
- FID: torchmetrics' FrechetInceptionDistance over the pool features of torchvision's Inception v3
  whose state dict ``weights`` holds. With torchvision's ImageNet weights this is not the TF
  Inception of the FID papers (its numbers are close, not equal); report it as such.
"""

from __future__ import annotations

from pathlib import Path

import torch

from mmtok.weights import read_state_dict

__all__ = ["haarpsi", "LPIPS", "FID"]


def _unit(x: torch.Tensor) -> torch.Tensor:
    return ((x.float() + 1) / 2).clamp(0, 1)


def haarpsi(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """HaarPSI per image, shape (B,); needs sides of at least 32 px (piq's 3 scales)."""
    import piq

    if min(x.shape[-2:]) < 32:
        raise ValueError(f"HaarPSI needs images of at least 32x32, got {tuple(x.shape[-2:])}")
    return piq.haarpsi(_unit(x), _unit(y), data_range=1.0, reduction="none")


class LPIPS:
    """LPIPS (VGG) with the backbone from a local torchvision VGG16 state dict."""

    def __init__(self, weights: str | Path):
        from torchmetrics.functional.image.lpips import _LPIPS
        from torchvision.models.vgg import cfgs, make_layers

        features = make_layers(cfgs["D"])  # VGG16's convolutions, without its 120M-weight classifier
        state = {k[len("features.") :]: v for k, v in read_state_dict(weights).items() if k.startswith("features.")}
        missing = features.load_state_dict(state, strict=False).missing_keys
        if missing:
            raise ValueError(f"{weights} is not a torchvision VGG16 state dict: features missing {missing[:3]}")
        self.model = _LPIPS(pretrained=True, net="vgg", pnet_rand=True).eval()
        for part in range(1, 6):  # torchmetrics' VGG slices keep torchvision's layer indices as names
            for index, layer in getattr(self.model.net, f"slice{part}").named_children():
                layer.load_state_dict(features[int(index)].state_dict())

    @torch.no_grad()
    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """LPIPS distance per image, shape (B,); lower is closer."""
        return self.model(x.float().clamp(-1, 1), y.float().clamp(-1, 1), normalize=False).flatten()


class _InceptionPool(torch.nn.Module):
    def __init__(self, weights: str | Path):
        import torchvision

        super().__init__()
        self.net = torchvision.models.inception_v3(weights=None, aux_logits=False, init_weights=False)
        state = {k: v for k, v in read_state_dict(weights).items() if not k.startswith("AuxLogits.")}
        self.net.load_state_dict(state)
        self.net.fc = torch.nn.Identity()
        self.net.eval()
        self.num_features = 2048

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        # uint8 (B, 3, H, W) as torchmetrics passes them -> ImageNet-normalised 299 px.
        x = torch.nn.functional.interpolate(images.float() / 255, size=(299, 299), mode="bilinear", align_corners=False)
        mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
        std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
        return self.net((x - mean) / std)


class FID:
    """Fréchet distance between the Inception features of references and reconstructions."""

    def __init__(self, weights: str | Path):
        from torchmetrics.image.fid import FrechetInceptionDistance

        self.metric = FrechetInceptionDistance(feature=_InceptionPool(weights), normalize=False)

    @torch.no_grad()
    def update(self, reference: torch.Tensor, reconstruction: torch.Tensor) -> None:
        as_uint8 = lambda x: ((x.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)  # noqa: E731
        self.metric.update(as_uint8(reference), real=True)
        self.metric.update(as_uint8(reconstruction), real=False)

    def compute(self) -> float:
        return float(self.metric.compute())
