"""Video in `mmtok eval`: per-frame PSNR and SSIM (their means over frames), the temporal
consistency error (mmtok.eval.metrics.video), and colour: the colour kept over the set
(colourfulness of the reconstructions over the originals', as for images) and each clip's colour
cast (how far the mean chroma moved); H.264 and AV1 as the baselines. Media: a strip of frames per item."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from mmtok.data.image_io import tensor_to_images
from mmtok.eval.codecs.baselines import video_curve, video_matched
from mmtok.eval.metrics.image import colour_cast, colourfulness
from mmtok.eval.metrics.video import frame_psnr, frame_ssim, temporal_error
from mmtok.eval.suites import Suite
from mmtok.eval.suites.image import colour_kept

STRIP_FRAMES = 6


class VideoSuite(Suite):
    modality = "video"
    rate_name = "bpp"  # bits per pixel of every frame
    metrics = {"psnr": True, "ssim": True, "temporal_error": False, "colour_kept": True, "colour_cast": False}

    amount_name = "frames"

    def amount(self, reference: torch.Tensor, info: dict) -> float:
        return float(reference.shape[2])

    def rate(self, bits: float, reference: torch.Tensor, info: dict) -> float:
        t, h, w = reference.shape[-3:]
        return bits / (t * h * w)

    def scores(self, reference: torch.Tensor, reconstruction: torch.Tensor, info: dict) -> dict[str, float]:
        x = reconstruction.clamp(-1, 1)
        frames_x, frames_y = x[0].transpose(0, 1), reference[0].transpose(0, 1)  # (T, 3, H, W)
        return {
            "psnr": float(frame_psnr(x, reference).mean()),
            "ssim": float(frame_ssim(x, reference).mean()),
            "temporal_error": float(temporal_error(reference, x)[0]),
            "colour_in": float(colourfulness(frames_y).mean()),
            "colour_out": float(colourfulness(frames_x).mean()),
            "colour_cast": float(colour_cast(x, reference)[0]),
        }

    def derived(self, summary: dict[str, dict]) -> dict[str, dict]:
        return colour_kept(summary)

    def curve(self, reference: torch.Tensor, info: dict):
        return video_curve(reference, info["fps"])

    def matched(self, reference: torch.Tensor, info: dict, rate: float):
        return video_matched(reference, info["fps"], rate)

    def write_media(self, folder: Path, stem: str, x: torch.Tensor, info: dict, reference=None) -> dict[str, str]:
        frames = tensor_to_images(x[0].transpose(0, 1))  # (T, H, W, 3)
        picks = np.unique(np.linspace(0, len(frames) - 1, min(STRIP_FRAMES, len(frames))).round().astype(int))
        Image.fromarray(np.concatenate(list(frames[picks]), axis=1)).save(folder / f"{stem}.png")
        return {"strip": f"{stem}.png"}
