"""Audio decoding and the audio dataset for training tokenizers.

Decoding goes through ``soundfile`` (libsndfile >= 1.1 reads WAV, FLAC, OGG Vorbis/Opus and MP3;
torchaudio >= 2.9 no longer decodes by itself) and resampling through
``torchaudio.functional.resample``. A file that cannot give real samples (empty, truncated, not
audio, no samples, non-finite values) raises ``AudioDecodeError`` naming the source and the
reason, never a silent zero signal. One limit comes from libsndfile: a VBR MP3 without a
Xing/Info/VBRI header has no stored length, libsndfile trusts mpg123's estimate from the first
frame and stops there, so such files can decode shorter than they are (LAME and ffmpeg write the
header; CBR files are estimated exactly).

``AudioDataset`` handles undecodable files the way ``ImageDataset`` does: ``__getitem__`` logs a
warning, records the file in ``failed_sources`` / ``num_failed`` and returns the next decodable
item; ``validate()`` decodes everything once in the main process (DataLoader workers keep their
own counts) and drops the failures from the index.
"""

from __future__ import annotations

import io
import struct
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF

from mmtok.data.decoded import DecodedSourceDataset
from mmtok.data.sources import AUDIO_EXTENSIONS

__all__ = [
    "AUDIO_EXTENSIONS",
    "AudioDecodeError",
    "load_audio",
    "audio_to_tensor",
    "normalize_loudness",
    "AudioDataset",
]


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


def _to_waveform(data: bytes, name: str, sample_rate: int | None, mono: bool) -> tuple[torch.Tensor, int]:
    samples, rate = _decode(data, name)
    wave = torch.from_numpy(samples.T.copy())
    if mono:
        wave = wave.mean(dim=0, keepdim=True)
    if sample_rate is not None and sample_rate != rate:
        wave = AF.resample(wave, rate, sample_rate)
        rate = sample_rate
    # The resampler's ringing can overshoot full scale by a little.
    return wave.clamp_(-1.0, 1.0), rate


def load_audio(
    source: str | Path | bytes, *, sample_rate: int | None = None, mono: bool = True
) -> tuple[torch.Tensor, int]:
    """Decode ``source`` (a path or encoded bytes) to float32 ``(channels, samples)`` in [-1, 1].

    Returns the waveform and its sample rate: ``sample_rate`` when given (resampled with
    ``torchaudio.functional.resample``), else the file's own. ``mono`` mixes the channels down to
    their mean, giving ``(1, samples)``. Float files with peaks beyond full scale are clipped to
    [-1, 1]. Raises ``AudioDecodeError`` for an empty, truncated, non-audio or zero-length source
    and ``FileNotFoundError`` for a missing path.
    """
    if sample_rate is not None and sample_rate <= 0:
        raise ValueError(f"sample_rate must be positive, got {sample_rate}")
    if isinstance(source, (bytes, bytearray, memoryview)):
        return _to_waveform(bytes(source), f"<{len(source)} bytes of encoded audio>", sample_rate, mono)
    path = Path(source)
    if not path.is_file():
        raise FileNotFoundError(f"audio file {path} does not exist")
    return _to_waveform(path.read_bytes(), str(path), sample_rate, mono)


def _match_channels(wave: torch.Tensor, channels: int, name: str) -> torch.Tensor:
    if wave.shape[0] == channels:
        return wave
    if wave.shape[0] == 1:  # mono played on every channel
        return wave.expand(channels, -1)
    if channels == 1:
        return wave.mean(dim=0, keepdim=True)
    raise ValueError(f"{name} has {wave.shape[0]} channels; cannot map them to {channels}")


def audio_to_tensor(media, *, sample_rate: int, channels: int = 1) -> torch.Tensor:
    """Audio for a tokenizer -> float32 ``(batch, channels, samples)``.

    ``media`` is a path or encoded bytes (or a list of them: decoded, resampled to
    ``sample_rate``, and they must then have one length), or a float array/tensor already at
    ``sample_rate``: ``(samples,)`` and ``(channels, samples)`` are one clip, ``(batch, channels,
    samples)`` a batch, a list of arrays one clip each. Mono input is copied to every channel and
    several channels are averaged to mono; other channel counts are an error.
    """
    encoded = (str, Path, bytes, bytearray, memoryview)
    if isinstance(media, encoded):
        media = [media]
    if isinstance(media, (list, tuple)) and all(isinstance(m, encoded) for m in media):
        waves = [
            _match_channels(load_audio(m, sample_rate=sample_rate, mono=False)[0], channels, f"clip {i}")
            for i, m in enumerate(media)
        ]
        if len({w.shape[-1] for w in waves}) != 1:
            raise ValueError(f"clips in one batch must have one length, got {[w.shape[-1] for w in waves]} samples")
        return torch.stack(waves)
    if isinstance(media, (list, tuple)):
        # A list holds one clip per item (a (batch, samples) array would read as channels).
        clips = [audio_to_tensor(m, sample_rate=sample_rate, channels=channels) for m in media]
        if len({c.shape for c in clips}) != 1:
            raise ValueError(f"clips in one batch must have one length, got {[c.shape[-1] for c in clips]} samples")
        return torch.cat(clips)
    x = torch.as_tensor(media)
    if not x.is_floating_point():
        raise ValueError(f"audio arrays must be float samples in [-1, 1], got {x.dtype}")
    if not 1 <= x.ndim <= 3:
        raise ValueError(f"expected (samples,), (channels, samples) or (batch, channels, samples): {tuple(x.shape)}")
    while x.ndim < 3:
        x = x.unsqueeze(0)
    return torch.stack([_match_channels(clip, channels, "audio") for clip in x.float()])


def normalize_loudness(wave: torch.Tensor, target_db: float = -20.0, *, max_gain_db: float = 30.0) -> torch.Tensor:
    """Scale ``wave`` so that its RMS level is ``target_db`` dBFS (a full-scale sine is -3 dBFS).

    This is plain RMS, not ITU-R BS.1770 loudness (LUFS): no K-weighting and no gating, which is
    enough to put training clips at a common level. ``wave`` is ``(samples,)``, ``(channels,
    samples)`` (one gain for all channels) or ``(batch, channels, samples)`` (one gain per item).
    The gain never exceeds ``max_gain_db``, so silence and faint hiss are not blown up to noise,
    and never pushes the peak past full scale (peaky clips end up below the target instead of
    being clipped).
    """
    dims = tuple(range(max(wave.ndim - 2, 0), wave.ndim))
    rms = wave.pow(2).mean(dim=dims, keepdim=True).sqrt()
    peak = wave.abs().amax(dim=dims, keepdim=True)
    tiny = torch.finfo(wave.dtype).tiny
    gain = (10.0 ** (target_db / 20.0)) / rms.clamp_min(tiny)
    gain = torch.minimum(gain, 1.0 / peak.clamp_min(tiny)).clamp_max(10.0 ** (max_gain_db / 20.0))
    return wave * gain


class AudioDataset(DecodedSourceDataset):
    """Fixed-length mono segments of the audio in ``source``, as float tensors ``(1, samples)``.

    ``source`` is a folder (files with the extensions of ``AUDIO_EXTENSIONS``, found recursively
    and sorted by relative path), or any other source ``mmtok.data.sources.open_source`` takes:
    an uncompressed webdataset-style ``.tar``, a ``.parquet`` file whose ``column`` holds encoded
    audio, or a glob. Each item decodes one file, resamples it to ``sample_rate``, mixes it to
    mono, takes a ``segment_seconds`` segment (at a random start drawn from torch's global RNG, or
    the start of the file when ``random_segment`` is False), scales it to ``loudness_db`` dBFS RMS
    (see ``normalize_loudness``; ``None`` leaves the level alone) and zero-pads it at the end when
    the file is shorter. The level is set before padding, so the padding does not make short clips
    louder. See the module docstring for how undecodable files are handled.
    """

    def __init__(
        self,
        source: str | Path,
        *,
        sample_rate: int,
        segment_seconds: float,
        random_segment: bool = True,
        loudness_db: float | None = -20.0,
        column: str | None = None,
    ):
        if sample_rate <= 0:
            raise ValueError(f"sample_rate must be positive, got {sample_rate}")
        self.segment_samples = round(segment_seconds * sample_rate)
        if self.segment_samples <= 0:
            raise ValueError(f"segment_seconds={segment_seconds} gives no samples at {sample_rate} Hz")
        super().__init__(source, modality="audio", column=column)
        self.sample_rate = sample_rate
        self.segment_seconds = segment_seconds
        self.random_segment = random_segment
        self.loudness_db = loudness_db

    def _decode(self, data: bytes, name: str) -> torch.Tensor:
        wave, _ = _to_waveform(data, name, self.sample_rate, mono=True)
        return wave

    def _item(self, wave: torch.Tensor) -> torch.Tensor:
        length = wave.shape[-1]
        start = 0
        if self.random_segment and length > self.segment_samples:
            start = int(torch.randint(length - self.segment_samples + 1, ()))
        segment = wave[:, start : start + self.segment_samples]
        if self.loudness_db is not None:
            segment = normalize_loudness(segment, self.loudness_db)
        return torch.nn.functional.pad(segment, (0, self.segment_samples - segment.shape[-1]))
