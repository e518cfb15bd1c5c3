"""Small synthetic videos and a tiny video tokenizer config for the video tests."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np

from mmtok.models import flavour

TINY_VIDEO = flavour("video")
# Encoder for each container the input path promises to read.
CODECS = {".mp4": "libx264", ".mov": "libx264", ".mkv": "ffv1", ".webm": "libvpx-vp9", ".avi": "mpeg4"}


def moving_frames(count: int, h: int = 32, w: int = 32, seed: int = 0) -> np.ndarray:
    """uint8 (count, h, w, 3): smooth colour waves drifting a few pixels per frame, and each frame's
    brightness stepping with its index (so resampled frames can be told apart)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    frames = []
    for t in range(count):
        planes = [np.sin(2 * np.pi * (rng.uniform(1, 2) * xx + yy + 0.05 * t + c / 3)) for c in range(3)]
        frames.append(np.clip((np.stack(planes, -1) * 60 + 40 + 8 * t) % 256, 0, 255))
    return np.stack(frames).astype(np.uint8)


def write_clip(path: Path, frames: np.ndarray, fps: float = 25.0) -> Path:
    """Frames to a file whose container and codec follow the suffix (see CODECS)."""
    import av

    codec = CODECS[path.suffix]
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=Fraction(fps).limit_denominator(1001))
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "bgr0" if codec == "ffv1" else "yuv420p"
        for pixels in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")))
        container.mux(stream.encode(None))
    return path
