"""Classical codecs as baselines at matching bits: JPEG, WebP and AVIF (Pillow; AVIF where Pillow
was built with it) for images, Opus (PyAV's libopus, no system ffmpeg needed) for audio. H.264 for
video lives in mmtok.eval.h264."""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import av
import numpy as np
import torch
from PIL import Image

# Pillow's encoder options per codec; the quality setting is searched.
IMAGE_CODECS = {
    "JPEG": {"format": "JPEG", "optimize": True},
    "WebP": {"format": "WEBP", "method": 6},
    "AVIF": {"format": "AVIF", "speed": 6},
}
QUALITIES = range(1, 96)


@dataclass
class ImageCodecResult:
    codec: str
    quality: int
    bpp: float
    decoded: np.ndarray  # uint8 (H, W, 3)


def available_image_codecs() -> list[str]:
    """The image codecs this Pillow can write (AVIF needs Pillow >= 11.3 or its plugin)."""
    from PIL import features

    return [name for name in IMAGE_CODECS if name != "AVIF" or features.check("avif")]


def image_roundtrip(codec: str, pixels: np.ndarray, quality: int) -> ImageCodecResult:
    """uint8 (H, W, 3) through `codec` at `quality`; bits per pixel from the encoded size."""
    if codec not in IMAGE_CODECS:
        raise ValueError(f"unknown image codec {codec!r}; known: {sorted(IMAGE_CODECS)}")
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, quality=quality, **IMAGE_CODECS[codec])
    bpp = buffer.tell() * 8 / (pixels.shape[0] * pixels.shape[1])
    buffer.seek(0)
    return ImageCodecResult(codec, quality, bpp, np.asarray(Image.open(buffer).convert("RGB")))


def cheapest_reaching(settings: Sequence, code: Callable, bits: Callable, target: float):
    """(matched, lowest) over `settings` ordered from the fewest bits to the most: `lowest` is the
    first setting's result; `matched` the first whose bits reach `target`, found by halving the
    range (about 7 encodes instead of up to 95), or None when even the last stays below. Bisection
    takes the bits to grow along the settings, which holds for JPEG, WebP, AVIF and H.264 except
    for a few bytes here and there between neighbouring settings."""
    lowest = code(settings[0])
    if bits(lowest) >= target:
        return lowest, lowest
    best = code(settings[-1])
    if bits(best) < target:
        return None, lowest
    low, high = 0, len(settings) - 1  # bits(low) < target <= bits(high)
    while high - low > 1:
        middle = (low + high) // 2
        result = code(settings[middle])
        if bits(result) >= target:
            high, best = middle, result
        else:
            low = middle
    return best, lowest


def image_at_bits(codec: str, pixels: np.ndarray, target_bpp: float, qualities: Sequence[int] = QUALITIES):
    """(matched, lowest): `codec` at the lowest quality whose bits per pixel reach `target_bpp`
    (None when even the highest stays below it), and at its lowest quality."""
    return cheapest_reaching(list(qualities), lambda q: image_roundtrip(codec, pixels, q), lambda r: r.bpp, target_bpp)


def opus_roundtrip(
    wave: torch.Tensor | np.ndarray, sample_rate: int, kbps: float, *, application: str = "voip"
) -> tuple[torch.Tensor, float]:
    """A mono clip (samples,) or (1, samples) through Opus at `kbps` and back.

    `application` is libopus' tuning: "voip" for speech, "audio" for music, "lowdelay". Returns
    the decoded waveform (1, samples) at `sample_rate`, cut or zero-padded to the input's length
    (the Ogg container's pre-skip removes the encoder delay), and the actual bitrate in kbps of the
    Ogg Opus stream, container overhead included.
    """
    samples = torch.as_tensor(wave, dtype=torch.float32).reshape(1, -1).numpy()
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="ogg") as container:
        stream = container.add_stream("libopus", rate=48000, options={"application": application})
        stream.bit_rate = int(kbps * 1000)
        stream.layout = "mono"
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples), format="flt", layout="mono")
        frame.sample_rate = sample_rate
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            container.mux(packet)
    actual_kbps = buffer.tell() * 8 / (samples.shape[-1] / sample_rate) / 1000
    buffer.seek(0)
    resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
    with av.open(buffer) as container:
        chunks = [out.to_ndarray() for frame in container.decode(audio=0) for out in resampler.resample(frame)]
    chunks += [out.to_ndarray() for out in resampler.resample(None)]
    decoded = torch.from_numpy(np.concatenate(chunks, axis=1)[:1, : samples.shape[-1]].copy())
    return torch.nn.functional.pad(decoded, (0, samples.shape[-1] - decoded.shape[-1])), actual_kbps
