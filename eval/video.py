"""Video reconstruction metrics and the evaluation of a video tokenizer next to H.264.

Clips are batch-first float tensors (B, C, T, H, W) in [-1, 1] (``data_range`` 2.0) unless said.
PSNR and SSIM are the image metrics of ``mmtok.eval.image`` on every frame; a clip's score is the
mean over its frames. The temporal-consistency error is the RMS difference between the frame-to-
frame changes of the reconstruction and of the original, in 8-bit levels: flicker and motion the
original does not have raise it, while a static error that is the same in every frame does not.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence

import numpy as np
import torch

from mmtok.data.image_io import pixels_to_tensor, tensor_to_images
from mmtok.eval.h264 import h264_at_bits
from mmtok.eval.image import psnr, ssim
from mmtok.health import CodebookMonitor
from mmtok.models.video import as_frames
from mmtok.quantize.base import bits_per_position

__all__ = ["frame_psnr", "frame_ssim", "temporal_error", "video_bits_per_pixel", "evaluate_video_tokenizer"]


def _frames(x: torch.Tensor) -> torch.Tensor:
    if x.ndim != 5:
        raise ValueError(f"expected clips (B, C, T, H, W), got shape {tuple(x.shape)}")
    return as_frames(x)


def frame_psnr(x: torch.Tensor, y: torch.Tensor, data_range: float = 2.0) -> torch.Tensor:
    """PSNR in dB of every frame, shape (B, T)."""
    return psnr(_frames(x), _frames(y), data_range).view(x.shape[0], x.shape[2])


def frame_ssim(x: torch.Tensor, y: torch.Tensor, data_range: float = 2.0) -> torch.Tensor:
    """SSIM of every frame, shape (B, T)."""
    return ssim(_frames(x), _frames(y), data_range).view(x.shape[0], x.shape[2])


def temporal_error(x: torch.Tensor, y: torch.Tensor, data_range: float = 2.0) -> torch.Tensor:
    """RMS of (y[t+1] - y[t]) - (x[t+1] - x[t]) per clip in 8-bit levels, shape (B,); NaN for one frame."""
    if x.shape != y.shape:
        raise ValueError(f"clip shapes differ: {tuple(x.shape)} vs {tuple(y.shape)}")
    x, y = x.double(), y.double()
    change = (y.diff(dim=2) - x.diff(dim=2)) * (255.0 / data_range)
    if change.shape[2] == 0:
        return torch.full((x.shape[0],), float("nan"), dtype=torch.float64)
    return change.pow(2).mean(dim=(1, 2, 3, 4)).sqrt()


def video_bits_per_pixel(
    token_shape: Sequence[int], num_codebooks: int, codebook_size: int | Sequence[int], frames: int, hw: tuple[int, int]
) -> float:
    """Bits a clip's ids carry per pixel of every frame: tokens x bits per token / (T x H x W)."""
    return math.prod(token_shape) * bits_per_position(num_codebooks, codebook_size) / (frames * hw[0] * hw[1])


def _scores(original: torch.Tensor, decoded: torch.Tensor) -> dict:
    return {
        "psnr": float(frame_psnr(decoded, original).mean()),
        "ssim": float(frame_ssim(decoded, original).mean()),
        "temporal_error": float(temporal_error(original, decoded)[0]),
    }


def _clip_tensor(frames: np.ndarray) -> torch.Tensor:
    """uint8 (T, H, W, 3) -> float (1, 3, T, H, W) in [-1, 1]."""
    return pixels_to_tensor(frames).transpose(0, 1)[None]


@torch.no_grad()
def evaluate_video_tokenizer(tokenizer, clips: list[tuple[str, np.ndarray, float]], *, preset: str = "medium") -> dict:
    """Per clip (name, uint8 frames (T, H, W, 3) already prepared to the tokenizer's sizes, fps):
    the tokenizer's PSNR / SSIM / temporal error at its bits per pixel, encode and decode frames/s,
    and H.264 at the lowest quality whose bits reach the tokenizer's and at its lowest quality.
    Returns {"clips": rows, "codebooks": health over all the clips' tokens}; rows keep the decoded frames."""
    tokenizer.eval()
    monitor = CodebookMonitor(tokenizer.codebook_sizes, tokenizer.num_codebooks)
    rows = []
    for name, frames, fps in clips:
        x = _clip_tensor(frames)
        started = time.perf_counter()
        ids = tokenizer.encode(x)
        encoded = time.perf_counter()
        recon = tokenizer.decode(ids).clamp(-1, 1)
        decoded = time.perf_counter()
        monitor.update(ids)
        t, h, w = frames.shape[:3]
        bpp = video_bits_per_pixel(ids.shape[1:-1], tokenizer.num_codebooks, tokenizer.codebook_sizes, t, (h, w))
        mmtok_frames = tensor_to_images(as_frames(recon))
        row = {
            "name": name,
            "frames": t,
            "size": f"{w}x{h}",
            "mmtok": {"bpp": bpp, **_scores(x, _clip_tensor(mmtok_frames)), "decoded": mmtok_frames},
            "encode_fps": t / (encoded - started),
            "decode_fps": t / (decoded - encoded),
        }
        matched, lowest = h264_at_bits(frames, bpp * t * h * w, fps=fps, preset=preset)
        for key, result in (("h264", matched), ("h264_lowest", lowest)):
            if result is not None:
                scores = _scores(x, _clip_tensor(result.frames))
                row[key] = {"crf": result.crf, "bpp": result.bits / (t * h * w), **scores, "decoded": result.frames}
        rows.append(row)
    return {"clips": rows, "codebooks": monitor.compute()}
