"""Images in `mmtok eval`: PSNR, SSIM, MS-SSIM (sides >= 176 px), HaarPSI, LPIPS when VGG weights
are given, FID over the set when Inception weights are given; the colour kept (mean colourfulness
out over in: a gray reconstruction keeps none, whatever its PSNR) and each reconstruction's distance
from gray (max - min over the channels per pixel, for gray inputs); JPEG, WebP and AVIF as baselines."""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image

from mmtok.data.image_io import tensor_to_images
from mmtok.eval.codecs.baselines import image_curve, image_matched
from mmtok.eval.metrics.image import channel_spread, colourfulness, ms_ssim, ms_ssim_supported, psnr, ssim
from mmtok.eval.metrics.perceptual import FID, LPIPS, haarpsi
from mmtok.eval.suites import Suite


class _FIDAccumulator:
    def __init__(self, weights: str):
        self.fid = FID(weights)

    def update(self, reference: torch.Tensor, reconstruction: torch.Tensor) -> None:
        self.fid.update(reference, reconstruction)

    def compute(self) -> dict[str, float]:
        return {"fid": self.fid.compute()}


class ImageSuite(Suite):
    modality = "image"
    rate_name = "bpp"
    metrics = {"psnr": True, "ssim": True, "ms_ssim": True, "haarpsi": True, "lpips": False, "colour_kept": True}

    def __init__(self, **options):
        super().__init__(**options)
        self.lpips = LPIPS(self.lpips_weights) if self.lpips_weights else None
        if not self.lpips_weights:
            self.metrics = {k: v for k, v in self.metrics.items() if k != "lpips"}

    amount_name = "Mpx"

    def amount(self, reference: torch.Tensor, info: dict) -> float:
        return reference.shape[-2] * reference.shape[-1] / 1e6

    def rate(self, bits: float, reference: torch.Tensor, info: dict) -> float:
        return bits / (reference.shape[-2] * reference.shape[-1])

    def scores(self, reference: torch.Tensor, reconstruction: torch.Tensor, info: dict) -> dict[str, float]:
        x, y = reconstruction.clamp(-1, 1), reference
        row = {"psnr": float(psnr(x, y)[0]), "ssim": float(ssim(x, y)[0])}
        if ms_ssim_supported(*y.shape[-2:]):
            row["ms_ssim"] = float(ms_ssim(x, y)[0])
        if min(y.shape[-2:]) >= 32:
            row["haarpsi"] = float(haarpsi(x, y)[0])
        if self.lpips is not None:
            row["lpips"] = float(self.lpips(x, y)[0])
        row["colour_in"], row["colour_out"] = float(colourfulness(y)[0]), float(colourfulness(x)[0])
        row["channel_spread"] = float(channel_spread(x)[0])
        return row

    def derived(self, summary: dict[str, dict]) -> dict[str, dict]:
        return colour_kept(summary)

    def dataset_metric(self):
        return _FIDAccumulator(self.fid_weights) if self.fid_weights else None

    def curve(self, reference: torch.Tensor, info: dict):
        return image_curve(reference)

    def matched(self, reference: torch.Tensor, info: dict, rate: float):
        return image_matched(reference, rate)

    def write_media(self, folder: Path, stem: str, x: torch.Tensor, info: dict, reference=None) -> dict[str, str]:
        name = f"{stem}.png"
        Image.fromarray(tensor_to_images(x)[0]).save(folder / name)
        return {"image": name}


def colour_kept(summary: dict[str, dict]) -> dict[str, dict]:
    """The set's colour kept: mean colourfulness of the reconstructions over that of the originals
    (the summary's colour_out and colour_in), as a derived figure; {} without them."""
    colour_in, colour_out = summary.get("colour_in", {}).get("mean"), summary.get("colour_out", {}).get("mean")
    if colour_in is None or colour_out is None:
        return {}
    kept = colour_out / max(colour_in, 1e-9)  # a ratio of means: one gray item cannot divide by zero
    return {"colour_kept": {"mean": kept, "low": kept, "high": kept, "n": summary["colour_in"]["n"], "missing": 0}}
