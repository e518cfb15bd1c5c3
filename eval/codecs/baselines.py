"""The classical codecs `mmtok eval` sets beside the tokenizers, per modality: a sweep of their
quality setting (for the rate-distortion curves) and the codec at a tokenizer's rate (for the
tables). Each takes a reference in the tokenizer's own tensor layout and gives decoded tensors in
that layout, so the suites score codecs and tokenizers with one function.

- images: JPEG, WebP, AVIF (Pillow; mmtok.eval.codecs.images) at quality q; rate in bits per pixel.
- audio: Opus (PyAV's libopus; mmtok.eval.codecs.opus) at a target bitrate; rate in kbps, Ogg included.
- video: H.264 and AV1 (PyAV's libx264 and libsvtav1; mmtok.eval.codecs.video_codecs) at a CRF; rate in
  bits per pixel of every frame.
- EEG: DCT quantisation of each channel's patches (mmtok.eval.codecs.dct.DCTCodec) at a bit budget per
  patch, fitted on the evaluated signals themselves (no training split at eval time: the
  baseline's ranges see the test data, which favours it slightly); rate in bits per channel-second.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from mmtok.data.image_io import pixels_to_tensor, tensor_to_images
from mmtok.eval.codecs.dct import DCTCodec, best_dct_codec
from mmtok.eval.codecs.images import available_image_codecs, image_at_bits, image_roundtrip
from mmtok.eval.codecs.opus import opus_roundtrip
from mmtok.eval.codecs.video_codecs import VIDEO_CODECS, CodedVideo, VideoCodec, video_at_bits, video_roundtrip
from mmtok.eval.metrics.eeg import mean_band_error

IMAGE_CURVE_QUALITIES = (10, 30, 60, 90)
OPUS_CURVE_KBPS = (6.0, 8.0, 12.0, 16.0, 24.0)
OPUS_MIN_KBPS = 6.0  # libopus' floor: asked for less, it spends this much
VIDEO_CURVE_STEPS = 5  # CRFs evenly over each codec's upper half, its lowest quality last
DCT_CURVE_BITS_PER_PATCH = (8, 16, 32, 64, 128)


@dataclass
class Coded:
    codec: str
    setting: str  # the codec's own knob, e.g. "q30", "12 kbps", "CRF 37"
    rate: float  # in the suite's unit
    decoded: torch.Tensor  # the reference's layout

    @property
    def label(self) -> str:
        return f"{self.codec} {self.setting}"


# -- images: (1, 3, H, W) in [-1, 1] ----------------------------------------------------------------
def _image(codec: str, result) -> Coded:
    return Coded(codec, f"q{result.quality}", result.bpp, pixels_to_tensor(result.decoded))


def image_curve(reference: torch.Tensor, qualities=IMAGE_CURVE_QUALITIES) -> list[Coded]:
    pixels = tensor_to_images(reference)[0]
    return [_image(c, image_roundtrip(c, pixels, q)) for c in available_image_codecs() for q in qualities]


def image_matched(reference: torch.Tensor, bpp: float) -> list[Coded]:
    """Each codec at the lowest quality whose bits per pixel reach `bpp` (or its lowest quality)."""
    pixels = tensor_to_images(reference)[0]
    coded = []
    for codec in available_image_codecs():
        matched, lowest = image_at_bits(codec, pixels, bpp)
        coded.append(_image(codec, matched or lowest))
    return coded


# -- audio: (1, C, T) ------------------------------------------------------------------------------
def _opus(reference: torch.Tensor, sample_rate: int, kbps: float, application: str = "voip") -> Coded:
    mono = reference[0].mean(dim=0)
    decoded, actual = opus_roundtrip(mono, sample_rate, max(kbps, OPUS_MIN_KBPS), application=application)
    channels = reference.shape[1]
    return Coded("Opus", f"{max(kbps, OPUS_MIN_KBPS):.3g} kbps", actual, decoded.expand(channels, -1)[None])


def audio_curve(reference: torch.Tensor, sample_rate: int, kbps=OPUS_CURVE_KBPS, application="voip") -> list[Coded]:
    """Opus at each bitrate; `application` is libopus' tuning ("voip" for speech, "audio" for music)."""
    return [_opus(reference, sample_rate, k, application) for k in kbps]


OPUS_MATCH_TRIES = 6


def audio_matched(reference: torch.Tensor, sample_rate: int, kbps: float, application="voip") -> list[Coded]:
    """Opus whose actual bitrate reaches `kbps`: libopus' variable rate often spends less than it is
    asked for on simple or short clips, so the target is raised (up to 6 tries) until it does."""
    target = kbps
    coded = _opus(reference, sample_rate, target, application)
    for _ in range(OPUS_MATCH_TRIES - 1):
        if coded.rate >= kbps:
            break
        target *= max(1.1, kbps / max(coded.rate, 1e-3))
        coded = _opus(reference, sample_rate, target, application)
    return [coded]


# -- video: (1, 3, T, H, W) in [-1, 1] --------------------------------------------------------------
def _frames(reference: torch.Tensor) -> np.ndarray:
    return tensor_to_images(reference[0].transpose(0, 1))  # (T, H, W, 3)


def _video(codec: VideoCodec, result: CodedVideo, frames: np.ndarray) -> Coded:
    t, h, w = frames.shape[:3]
    decoded = pixels_to_tensor(result.frames).transpose(0, 1)[None]
    return Coded(codec.name, f"CRF {result.crf}", result.bits / (t * h * w), decoded)


def _available_video_codecs() -> list[VideoCodec]:
    return [codec for codec in VIDEO_CODECS if codec.available()]


def curve_crfs(codec: VideoCodec, steps: int = VIDEO_CURVE_STEPS) -> list[int]:
    """CRFs from the middle of the codec's range to its lowest quality (H.264: 26 to 51),
    where the low rates that video tokens live at are."""
    middle, lowest = codec.crf_range[len(codec.crf_range) // 2], codec.crf_range[-1]
    return sorted({round(middle + (lowest - middle) * i / (steps - 1)) for i in range(steps)})


def video_curve(reference: torch.Tensor, fps: float) -> list[Coded]:
    frames = _frames(reference)
    return [
        _video(codec, video_roundtrip(codec, frames, crf, fps=fps), frames)
        for codec in _available_video_codecs()
        for crf in curve_crfs(codec)
    ]


def video_matched(reference: torch.Tensor, fps: float, bpp: float) -> list[Coded]:
    """Each codec at the lowest quality whose bits reach `bpp` (or its lowest quality)."""
    frames = _frames(reference)
    coded = []
    for codec in _available_video_codecs():
        matched, lowest = video_at_bits(codec, frames, bpp * frames[..., 0].size, fps=fps)
        coded.append(_video(codec, matched or lowest, frames))
    return coded


# -- EEG: signals (1, C, T) in microvolts -----------------------------------------------------------
def _dct(codec: DCTCodec, budget: int, signal: torch.Tensor, sample_rate: float) -> Coded:
    """The setting names the budget: the split into coefficients x bits that best_dct_codec picks
    may differ between items."""
    decoded = torch.from_numpy(codec(signal)).float()
    rate = codec.bits_per_patch * sample_rate / codec.patch_size  # bits per channel-second
    return Coded(
        "DCT", f"{budget} bits/patch", rate, torch.nn.functional.pad(decoded, (0, signal.shape[-1] - decoded.shape[-1]))
    )


def eeg_curve(
    signal: torch.Tensor, fit_on: np.ndarray, sample_rate: float, patch_size: int, error=mean_band_error
) -> list[Coded]:
    """`error` is what best_dct_codec minimises when it splits each budget (EEG: band powers)."""
    return [
        _dct(best_dct_codec(fit_on, patch_size, bits, sample_rate, error), bits, signal, sample_rate)
        for bits in DCT_CURVE_BITS_PER_PATCH
    ]


def eeg_matched(
    signal: torch.Tensor, fit_on: np.ndarray, sample_rate: float, patch_size: int, rate: float, error=mean_band_error
) -> list[Coded]:
    bits_per_patch = max(1, int(rate * patch_size / sample_rate))
    codec = best_dct_codec(fit_on, patch_size, bits_per_patch, sample_rate, error)
    return [_dct(codec, bits_per_patch, signal, sample_rate)]
