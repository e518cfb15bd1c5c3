"""Audio decoding and the audio dataset for training tokenizers.

Decoding goes through ``soundfile`` (libsndfile >= 1.1 reads WAV, FLAC, OGG Vorbis/Opus and MP3;
torchaudio >= 2.9 no longer decodes by itself) and resampling through
``torchaudio.functional.resample``. A file that cannot give real samples (empty, truncated, not
audio, no samples, non-finite values) raises ``AudioDecodeError`` naming the source and the
reason, never a silent zero signal.

``AudioDataset`` handles undecodable files the way ``ImageDataset`` does: ``__getitem__`` logs a
warning, records the file in ``failed_sources`` / ``num_failed`` and returns the next decodable
item; ``validate()`` decodes everything once in the main process (DataLoader workers keep their
own counts) and drops the failures from the index.
"""

from __future__ import annotations

import io
import logging
import struct
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF
from torch.utils.data import Dataset

__all__ = ["AUDIO_EXTENSIONS", "AudioDecodeError", "load_audio", "normalize_loudness", "AudioDataset"]

logger = logging.getLogger(__name__)

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".mp3")

# Streaming writers (ffmpeg to a pipe, recorders) put these in a WAV size field when the length is
# unknown; such files are whole, not truncated.
_UNKNOWN_WAV_SIZES = (0, 0xFFFFFFFF, 0x7FFFFFFF)


class AudioDecodeError(ValueError):
    """A source that does not decode to audio samples; the message names the source and the reason."""


def _describe(source: str | Path | bytes) -> str:
    if isinstance(source, (bytes, bytearray, memoryview)):
        return f"<{len(source)} bytes of encoded audio>"
    return str(source)


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
    except RuntimeError as err:  # soundfile.LibsndfileError and the like; the reason is in the message
        raise AudioDecodeError(f"cannot decode audio {name}: {err}") from err
    if samples.shape[0] == 0:
        raise AudioDecodeError(f"cannot decode audio {name}: it contains no samples (zero-length audio)")
    if samples.shape[0] < declared:  # e.g. a cut-off MP3 whose header still gives the full length
        raise AudioDecodeError(f"cannot decode audio {name}: truncated, decoded {samples.shape[0]} of {declared} frames")
    if not np.isfinite(samples).all():
        raise AudioDecodeError(f"cannot decode audio {name}: it holds NaN or infinite samples")
    return samples, rate


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
    name = _describe(source)
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
    else:
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"audio file {path} does not exist")
        data = path.read_bytes()
    samples, rate = _decode(data, name)
    wave = torch.from_numpy(samples.T.copy())
    if mono:
        wave = wave.mean(dim=0, keepdim=True)
    if sample_rate is not None and sample_rate != rate:
        wave = AF.resample(wave, rate, sample_rate)
        rate = sample_rate
    # The resampler's ringing can overshoot full scale by a little.
    return wave.clamp_(-1.0, 1.0), rate


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


class AudioDataset(Dataset):
    """Fixed-length mono segments from the audio files under a folder, as float tensors ``(1, samples)``.

    Files with the extensions of ``AUDIO_EXTENSIONS`` are found recursively and sorted by relative
    path. Each item decodes one file, resamples it to ``sample_rate``, mixes it to mono, takes a
    ``segment_seconds`` segment (at a random start drawn from torch's global RNG, or the start of
    the file when ``random_segment`` is False), scales it to ``loudness_db`` dBFS RMS (see
    ``normalize_loudness``; ``None`` leaves the level alone) and zero-pads it at the end when the
    file is shorter. The level is set before padding, so the padding does not make short clips
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
    ):
        if sample_rate <= 0:
            raise ValueError(f"sample_rate must be positive, got {sample_rate}")
        self.segment_samples = round(segment_seconds * sample_rate)
        if self.segment_samples <= 0:
            raise ValueError(f"segment_seconds={segment_seconds} gives no samples at {sample_rate} Hz")
        self.source = Path(source)
        if not self.source.exists():
            raise FileNotFoundError(f"audio source {self.source} does not exist")
        if not self.source.is_dir():
            raise ValueError(f"audio source {self.source} is not a folder")
        files = (p for p in self.source.rglob("*") if p.is_file() and p.name.lower().endswith(AUDIO_EXTENSIONS))
        self.paths = sorted(files, key=lambda p: p.relative_to(self.source).as_posix())
        if not self.paths:
            raise ValueError(f"no audio files in {self.source} (looked for {', '.join(AUDIO_EXTENSIONS)})")
        self.sample_rate = sample_rate
        self.segment_seconds = segment_seconds
        self.random_segment = random_segment
        self.loudness_db = loudness_db
        self._indices = list(range(len(self.paths)))  # files still in use
        self._known_bad: set[int] = set()
        self.failed_sources: list[str] = []

    @property
    def num_failed(self) -> int:
        """Undecodable files met so far by this process (each counted once)."""
        return len(self.failed_sources)

    def __len__(self) -> int:
        return len(self._indices)

    def _try_load(self, entry: int) -> torch.Tensor | None:
        try:
            wave, _ = load_audio(self.paths[entry], sample_rate=self.sample_rate, mono=True)
            return wave
        except Exception as err:  # any decoder error must skip the file, not stop training
            self._known_bad.add(entry)
            name = str(self.paths[entry])
            self.failed_sources.append(name)
            logger.warning("skipping undecodable audio %s: %s: %s", name, type(err).__name__, err)
            return None

    def _segment(self, wave: torch.Tensor) -> torch.Tensor:
        length = wave.shape[-1]
        start = 0
        if self.random_segment and length > self.segment_samples:
            start = int(torch.randint(length - self.segment_samples + 1, ()))
        segment = wave[:, start : start + self.segment_samples]
        if self.loudness_db is not None:
            segment = normalize_loudness(segment, self.loudness_db)
        return torch.nn.functional.pad(segment, (0, self.segment_samples - segment.shape[-1]))

    def __getitem__(self, index: int) -> torch.Tensor:
        n = len(self._indices)
        if not -n <= index < n:
            raise IndexError(f"index {index} out of range for {n} audio files")
        for step in range(n):
            entry = self._indices[(index + step) % n]
            if entry in self._known_bad:
                continue
            wave = self._try_load(entry)
            if wave is not None:
                return self._segment(wave)
        raise ValueError(f"no decodable audio in {self.source}: all {n} files failed to decode")

    def validate(self) -> list[str]:
        """Decode every file once in this process; drop the failures from the index and return them.

        Raises ValueError when nothing in the source decodes.
        """
        good, dropped = [], []
        for entry in self._indices:
            if entry not in self._known_bad and self._try_load(entry) is not None:
                good.append(entry)
            else:
                dropped.append(str(self.paths[entry]))
        if not good:
            raise ValueError(f"no decodable audio in {self.source}: all {len(self._indices)} files failed to decode")
        self._indices = good
        return dropped
