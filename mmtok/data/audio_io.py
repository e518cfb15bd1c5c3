"""The one input path for audio: decode, resample, match channels, set the loudness, and the
spec that records it.

Decoding goes through ``soundfile`` (libsndfile >= 1.1 reads WAV, FLAC, OGG Vorbis/Opus and MP3;
torchaudio >= 2.9 no longer decodes by itself) and resampling through
``torchaudio.functional.resample``. A file that cannot give real samples (empty, truncated, not
audio, no samples, non-finite values) raises ``AudioDecodeError`` naming the source and the
reason, never a silent zero signal. One limit comes from libsndfile: a VBR MP3 without a
Xing/Info/VBRI header has no stored length, libsndfile trusts mpg123's estimate from the first
frame and stops there, so such files can decode shorter than they are (LAME and ffmpeg write the
header; CBR files are estimated exactly).

Training (``AudioDataset``), ``FrozenTokenizer.encode``, ``mmtok tokenize`` and eval all prepare a
recording with ``AudioInputSpec.prepare_wave``: channels matched to the codec's (mono mixed down or
copied), resampled, and the whole recording scaled to ``loudness_db`` dBFS RMS. The gain applied
is reported per recording (``info["gain_db"]``), so ``to_media`` gives a sound back at its own level.
"""

from __future__ import annotations

import dataclasses
import io
import math
import struct
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF

from mmtok.data.spec import InputSpec, Prepared, stack_prepared

__all__ = [
    "AudioDecodeError",
    "AudioInputSpec",
    "decode_audio",
    "load_audio",
    "loudness_gain",
    "match_channels",
    "normalize_loudness",
]

ENCODED = (str, Path, bytes, bytearray, memoryview)

# Streaming writers (ffmpeg to a pipe, recorders) put these in a WAV size field when the length is
# unknown; such files are whole, not truncated.
_UNKNOWN_WAV_SIZES = (0, 0xFFFFFFFF, 0x7FFFFFFF)


class AudioDecodeError(ValueError):
    """A source that does not decode to audio samples; the message names the source and the reason."""


def _wav_truncation(data: bytes) -> str | None:
    """Why a RIFF/WAVE file is cut short, or None.

    libsndfile quietly shortens a WAV whose ``data`` chunk is smaller than its header says, so a
    half-copied file would otherwise decode as a shorter clip.
    """
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return None
    offset = 12
    while offset + 8 <= len(data):
        chunk_id, size = data[offset : offset + 4], struct.unpack_from("<I", data, offset + 4)[0]
        if chunk_id == b"data":
            available = len(data) - offset - 8
            if size not in _UNKNOWN_WAV_SIZES and available < size:
                return f"truncated WAV: the data chunk holds {available} of {size} bytes"
            return None
        offset += 8 + size + (size & 1)  # chunks are padded to even sizes
    return None  # no data chunk: libsndfile reports that itself


def _decode(data: bytes, name: str) -> tuple[np.ndarray, int]:
    """(samples, channels) float32 and the sample rate, or AudioDecodeError."""
    if len(data) == 0:
        raise AudioDecodeError(f"cannot decode audio {name}: empty file (0 bytes)")
    truncation = _wav_truncation(data)
    if truncation:
        raise AudioDecodeError(f"cannot decode audio {name}: {truncation}")
    try:
        with sf.SoundFile(io.BytesIO(data)) as f:
            declared, rate = f.frames, f.samplerate
            samples = f.read(dtype="float32", always_2d=True)
    except RuntimeError as err:  # soundfile.LibsndfileError and the like
        # error_string is libsndfile's reason without soundfile's "Error opening <BytesIO at 0x...>".
        reason = getattr(err, "error_string", None) or str(err)
        raise AudioDecodeError(f"cannot decode audio {name}: {reason}") from err
    if samples.shape[0] == 0:
        raise AudioDecodeError(f"cannot decode audio {name}: it contains no samples (zero-length audio)")
    if samples.shape[0] < declared:  # e.g. a cut-off MP3 whose header still gives the full length
        got = samples.shape[0]
        raise AudioDecodeError(f"cannot decode audio {name}: truncated, decoded {got} of {declared} frames")
    if not np.isfinite(samples).all():
        raise AudioDecodeError(f"cannot decode audio {name}: it holds NaN or infinite samples")
    return samples, rate


def decode_audio(source: str | Path | bytes, name: str | None = None) -> tuple[torch.Tensor, int]:
    """float32 ``(channels, samples)`` and the file's sample rate from a path or encoded bytes
    (`name` says where bytes came from, for errors). Raises ``AudioDecodeError`` for an empty,
    truncated, non-audio or zero-length source and ``FileNotFoundError`` for a missing path."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        data, name = bytes(source), name or f"<{len(source)} bytes of encoded audio>"
    else:
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"audio file {path} does not exist")
        data, name = path.read_bytes(), str(path)
    samples, rate = _decode(data, name)
    return torch.from_numpy(samples.T.copy()), rate


def load_audio(
    source: str | Path | bytes, *, sample_rate: int | None = None, mono: bool = True
) -> tuple[torch.Tensor, int]:
    """Decode ``source`` (a path or encoded bytes) to float32 ``(channels, samples)`` in [-1, 1],
    resampled to ``sample_rate`` when given (else the file's own rate, which is returned), mixed
    to mono (their mean) when ``mono``. For tokenizer input use ``AudioInputSpec.prepare``."""
    if sample_rate is not None and sample_rate <= 0:
        raise ValueError(f"sample_rate must be positive, got {sample_rate}")
    wave, rate = decode_audio(source)
    if mono:
        wave = wave.mean(dim=0, keepdim=True)
    if sample_rate is not None and sample_rate != rate:
        wave, rate = AF.resample(wave, rate, sample_rate), sample_rate
    # The resampler's ringing can overshoot full scale by a little.
    return wave.clamp_(-1.0, 1.0), rate


def match_channels(wave: torch.Tensor, channels: int) -> torch.Tensor:
    """(C, T) -> (channels, T): mono is copied to every channel, several channels are averaged to mono."""
    if wave.shape[0] == channels:
        return wave
    if wave.shape[0] == 1:
        return wave.expand(channels, -1)
    if channels == 1:
        return wave.mean(dim=0, keepdim=True)
    raise ValueError(f"audio with {wave.shape[0]} channels cannot be mapped to {channels}")


def loudness_gain(wave: torch.Tensor, target_db: float = -20.0, *, max_gain_db: float = 30.0) -> torch.Tensor:
    """The factor that puts ``wave``'s RMS level at ``target_db`` dBFS (a full-scale sine is -3 dBFS).

    Plain RMS, not ITU-R BS.1770 loudness (LUFS): no K-weighting and no gating, which is enough
    to put recordings at a common level. ``wave`` is ``(samples,)``, ``(channels, samples)`` (one
    gain for all channels) or ``(batch, channels, samples)`` (one gain per item; the result keeps
    the reduced axes). The gain never exceeds ``max_gain_db``, so silence and faint hiss are not
    blown up to noise, and never pushes the peak past full scale (peaky clips end up below the
    target instead of being clipped).
    """
    dims = tuple(range(max(wave.ndim - 2, 0), wave.ndim))
    rms = wave.pow(2).mean(dim=dims, keepdim=True).sqrt()
    peak = wave.abs().amax(dim=dims, keepdim=True)
    tiny = torch.finfo(wave.dtype).tiny
    gain = (10.0 ** (target_db / 20.0)) / rms.clamp_min(tiny)
    return torch.minimum(gain, 1.0 / peak.clamp_min(tiny)).clamp_max(10.0 ** (max_gain_db / 20.0))


def normalize_loudness(wave: torch.Tensor, target_db: float = -20.0, *, max_gain_db: float = 30.0) -> torch.Tensor:
    """``wave`` scaled by ``loudness_gain``."""
    return wave * loudness_gain(wave, target_db, max_gain_db=max_gain_db)


@dataclasses.dataclass
class AudioInputSpec(InputSpec):
    """How recordings are prepared for one codec (see the module docstring)."""

    modality: ClassVar[str] = "audio"
    info_fields: ClassVar[dict[str, type]] = {
        "channels": int,
        "num_samples": int,
        "sample_rate": int,
        "duration": float,
        "gain_db": float,
        "source_sample_rate": int,
        "source_channels": int,
    }

    sample_rate: int = 24000
    channels: int = 1
    loudness_db: float | None = -20.0  # None: recordings keep their own level
    max_gain_db: float = 30.0

    def prepare_wave(self, wave: torch.Tensor, rate: int) -> Prepared:
        """float (C, T) at `rate` -> one example (1, channels, T') at the spec's rate and loudness."""
        source_channels = wave.shape[0]
        wave = match_channels(wave.float(), self.channels)
        if rate != self.sample_rate:
            wave = AF.resample(wave, rate, self.sample_rate)
        wave = wave.clamp(-1.0, 1.0)
        gain_db = 0.0
        if self.loudness_db is not None:
            gain = loudness_gain(wave, self.loudness_db, max_gain_db=self.max_gain_db)
            wave, gain_db = wave * gain, 20.0 * math.log10(float(gain.reshape(())))
        info = {
            "channels": self.channels,
            "num_samples": wave.shape[-1],
            "sample_rate": self.sample_rate,
            "duration": wave.shape[-1] / self.sample_rate,
            "gain_db": gain_db,
            "source_sample_rate": rate,
            "source_channels": source_channels,
        }
        return Prepared(wave[None], [info])

    def prepare(self, media: Any) -> Prepared:
        """A path or encoded bytes (or a list of them), or float samples already at the spec's
        rate: ``(samples,)`` and ``(channels, samples)`` are one clip, ``(batch, channels,
        samples)`` a batch, a list of arrays one clip each. Clips of one batch must end up with
        one length. -> ``(batch, channels, samples)`` and each clip's info (its gain among them)."""
        if isinstance(media, (list, tuple)):
            if not media:
                raise ValueError("no audio given")
            return stack_prepared([self.prepare(item) for item in media], "audio clips")
        if isinstance(media, ENCODED):
            return self.prepare_wave(*decode_audio(media))
        x = torch.as_tensor(media)
        if not x.is_floating_point():
            raise ValueError(f"audio arrays must be float samples in [-1, 1], got {x.dtype}")
        if not 1 <= x.ndim <= 3:
            raise ValueError(f"expected (samples,), (channels, samples) or (batch, channels, samples), got {x.shape}")
        if x.ndim < 3:
            x = x.reshape(1, -1, x.shape[-1])
        return stack_prepared([self.prepare_wave(clip, self.sample_rate) for clip in x], "audio clips")

    def to_media(self, x: torch.Tensor, info: list[dict] | None = None) -> np.ndarray:
        """float (B, C, T) -> numpy in [-1, 1], each clip back at its own level when `info` holds its gain."""
        x = x.detach().float().cpu()
        if info is not None:
            if len(info) != x.shape[0]:
                raise ValueError(f"{len(info)} info records for {x.shape[0]} clips")
            undo = torch.tensor([10.0 ** (-item.get("gain_db", 0.0) / 20.0) for item in info])
            x = x * undo.view(-1, 1, 1)
        return x.clamp(-1, 1).numpy()
