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

A long recording is prepared in pieces instead (``AudioInputSpec.prepare_stream``): read block by
block, resampled in overlapping blocks (``resample_in_pieces``) and scaled by the gain of the whole
recording, measured in a first pass (``RecordingLevel``); the pieces put together are exactly
``prepare``'s tensor.
"""

from __future__ import annotations

import dataclasses
import io
import math
import os
import struct
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO, ClassVar

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF

from mmtok.data.spec import InputSpec, Prepared, PreparedStream, stack_prepared
from mmtok.pieces import blocks_with_context

__all__ = [
    "AudioDecodeError",
    "AudioInputSpec",
    "RecordingLevel",
    "decode_audio",
    "load_audio",
    "loudness_gain",
    "match_channels",
    "normalize_loudness",
    "resample_in_pieces",
]

ENCODED = (str, Path, bytes, bytearray, memoryview)

# Streaming writers (ffmpeg to a pipe, recorders) put these in a WAV size field when the length is
# unknown; such files are whole, not truncated.
_UNKNOWN_WAV_SIZES = (0, 0xFFFFFFFF, 0x7FFFFFFF)
# Source frames decoded per read when a recording is prepared in pieces.
READ_FRAMES = 2**16


class AudioDecodeError(ValueError):
    """A source that does not decode to audio samples; the message names the source and the reason."""


def _wav_truncation(file: BinaryIO) -> str | None:
    """Why a RIFF/WAVE file is cut short, or None. Reads the chunk headers only (and the file's
    size) and leaves the file where it was.

    libsndfile quietly shortens a WAV whose ``data`` chunk is smaller than its header says, so a
    half-copied file would otherwise decode as a shorter clip.
    """
    position = file.tell()
    try:
        length = file.seek(0, os.SEEK_END)
        file.seek(0)
        header = file.read(12)
        if len(header) < 12 or header[:4] != b"RIFF" or header[8:12] != b"WAVE":
            return None
        offset = 12
        while offset + 8 <= length:
            file.seek(offset)
            chunk_id, size = struct.unpack("<4sI", file.read(8))
            if chunk_id == b"data":
                available = length - offset - 8
                if size not in _UNKNOWN_WAV_SIZES and available < size:
                    return f"truncated WAV: the data chunk holds {available} of {size} bytes"
                return None
            offset += 8 + size + (size & 1)  # chunks are padded to even sizes
        return None  # no data chunk: libsndfile reports that itself
    finally:
        file.seek(position)


@contextmanager
def _open_sound(file: BinaryIO, name: str) -> Iterator[sf.SoundFile]:
    """A SoundFile reading `file`, or AudioDecodeError for an empty, truncated or non-audio file."""
    position = file.tell()
    empty = file.seek(0, os.SEEK_END) == 0
    file.seek(position)
    if empty:
        raise AudioDecodeError(f"cannot decode audio {name}: empty file (0 bytes)")
    truncation = _wav_truncation(file)
    if truncation:
        raise AudioDecodeError(f"cannot decode audio {name}: {truncation}")
    try:
        sound = sf.SoundFile(file)
    except RuntimeError as err:  # soundfile.LibsndfileError and the like
        raise _decode_error(err, name) from err
    with sound:
        yield sound


def _decode_error(err: RuntimeError, name: str) -> AudioDecodeError:
    # error_string is libsndfile's reason without soundfile's "Error opening <BytesIO at 0x...>".
    reason = getattr(err, "error_string", None) or str(err)
    return AudioDecodeError(f"cannot decode audio {name}: {reason}")


def _read_blocks(sound: sf.SoundFile, name: str, frames: int | None) -> Iterator[np.ndarray]:
    """float32 (samples, channels) blocks of `frames` frames (None: all at once) until the end; an
    AudioDecodeError for a file that holds no samples, fewer than its header says, or non-finite ones."""
    declared, total = sound.frames, 0
    while True:
        try:
            block = sound.read(-1 if frames is None else frames, dtype="float32", always_2d=True)
        except RuntimeError as err:
            raise _decode_error(err, name) from err
        if block.shape[0] == 0:
            break
        if not np.isfinite(block).all():
            raise AudioDecodeError(f"cannot decode audio {name}: it holds NaN or infinite samples")
        total += block.shape[0]
        yield block
        if frames is None:
            break
    if total == 0:
        raise AudioDecodeError(f"cannot decode audio {name}: it contains no samples (zero-length audio)")
    if total < declared:  # e.g. a cut-off MP3 whose header still gives the full length
        raise AudioDecodeError(f"cannot decode audio {name}: truncated, decoded {total} of {declared} frames")


def _decode(data: bytes, name: str) -> tuple[np.ndarray, int]:
    """(samples, channels) float32 and the sample rate, or AudioDecodeError."""
    with _open_sound(io.BytesIO(data), name) as sound:
        [samples] = _read_blocks(sound, name, None)
        return samples, sound.samplerate


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


class RecordingLevel:
    """The RMS level and peak of one recording, fed whole or in pieces of any size.

    The sum of squares is taken in float64 over fixed blocks of ``BLOCK`` samples counted from the
    recording's start (each block summed by numpy, the block sums added in order), so a recording
    measured whole and the same recording measured piece by piece give the very same numbers, and
    so the same gain, bit for bit: that is what lets a streamed recording equal a whole one.
    """

    BLOCK = 2**16  # samples per channel

    def __init__(self):
        self.sum_squares, self.count, self.peak = 0.0, 0, 0.0
        self._pending: np.ndarray | None = None  # the samples of a block not yet complete

    def add(self, wave: torch.Tensor) -> None:
        """More samples, (channels, samples), in order."""
        samples = wave.detach().float().cpu().numpy()
        if self._pending is not None:
            samples = np.concatenate([self._pending, samples], axis=1)
        whole = samples.shape[1] // self.BLOCK * self.BLOCK
        for start in range(0, whole, self.BLOCK):
            self._add_block(samples[:, start : start + self.BLOCK])
        self._pending = samples[:, whole:].copy()

    def _add_block(self, block: np.ndarray) -> None:
        if block.size:
            self.sum_squares += float(np.square(block.astype(np.float64)).sum())
            self.peak = max(self.peak, float(np.abs(block).max()))
            self.count += block.size

    def gain(self, target_db: float = -20.0, *, max_gain_db: float = 30.0) -> torch.Tensor:
        """The float32 factor that puts the recording's RMS level at ``target_db`` dBFS (see
        `loudness_gain`), once every sample has been added."""
        if self._pending is not None:
            self._add_block(self._pending)
            self._pending = None
        tiny = float(torch.finfo(torch.float32).tiny)
        rms = math.sqrt(self.sum_squares / max(self.count, 1))
        gain = min((10.0 ** (target_db / 20.0)) / max(rms, tiny), 1.0 / max(self.peak, tiny))
        return torch.tensor(min(gain, 10.0 ** (max_gain_db / 20.0)), dtype=torch.float32)


def loudness_gain(wave: torch.Tensor, target_db: float = -20.0, *, max_gain_db: float = 30.0) -> torch.Tensor:
    """The factor that puts ``wave``'s RMS level at ``target_db`` dBFS (a full-scale sine is -3 dBFS).

    Plain RMS, not ITU-R BS.1770 loudness (LUFS): no K-weighting and no gating, which is enough
    to put recordings at a common level. ``wave`` is ``(samples,)``, ``(channels, samples)`` (one
    gain for all channels) or ``(batch, channels, samples)`` (one gain per item; the result keeps
    the reduced axes). The gain never exceeds ``max_gain_db``, so silence and faint hiss are not
    blown up to noise, and never pushes the peak past full scale (peaky clips end up below the
    target instead of being clipped). Measured by `RecordingLevel`, as streamed recordings are.
    """
    items = wave.reshape(-1, *wave.shape[-2:]) if wave.ndim >= 2 else wave.reshape(1, 1, -1)
    gains = []
    for item in items:
        level = RecordingLevel()
        level.add(item)
        gains.append(level.gain(target_db, max_gain_db=max_gain_db))
    kept = (1,) * min(wave.ndim, 2)
    return torch.stack(gains).to(wave.dtype).reshape(*wave.shape[:-2], *kept)


def normalize_loudness(wave: torch.Tensor, target_db: float = -20.0, *, max_gain_db: float = 30.0) -> torch.Tensor:
    """``wave`` scaled by ``loudness_gain``."""
    return wave * loudness_gain(wave, target_db, max_gain_db=max_gain_db)


def resample_in_pieces(
    pieces: Iterable[torch.Tensor], orig_freq: int, new_freq: int, piece_samples: int
) -> Iterator[torch.Tensor]:
    """float (C, t) pieces of any lengths at `orig_freq` -> the recording at `new_freq` in pieces of
    about `piece_samples`; put together they are ``torchaudio.functional.resample`` of the whole.

    torchaudio resamples a whole tensor only, so this is assembled by hand: its resampler is a
    convolution of stride orig/gcd whose every output group reads `width` source samples on either
    side, so each block of the source, starting at a multiple of orig/gcd, is resampled with
    `margin` (>= width) source samples of context on both sides, and only the block's own outputs
    are kept. Where a block meets the recording's start or end the context is cut there, as the
    zero padding of the whole-recording resampler is.
    """
    step, out_step = orig_freq // math.gcd(orig_freq, new_freq), new_freq // math.gcd(orig_freq, new_freq)
    # torchaudio's filter half-width in source samples (its default lowpass_filter_width 6, rolloff 0.99).
    width = math.ceil(6 * step / (min(step, out_step) * 0.99))
    margin = -(-width // step) * step
    block = max(1, piece_samples // out_step) * step  # source samples whose outputs make one piece
    for piece in blocks_with_context(pieces, block, margin):
        outputs = AF.resample(piece.window, orig_freq, new_freq)
        skip = piece.offset // step * out_step
        yield outputs[..., skip:] if piece.last else outputs[..., skip : skip + piece.length // step * out_step]


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
        wave = self._matched(wave, rate)
        gain_db = 0.0
        if self.loudness_db is not None:
            gain = loudness_gain(wave, self.loudness_db, max_gain_db=self.max_gain_db)
            wave, gain_db = wave * gain, 20.0 * math.log10(float(gain.reshape(())))
        return Prepared(wave[None], [self._info(wave.shape[-1], gain_db, rate, source_channels)])

    def _matched(self, wave: torch.Tensor, rate: int) -> torch.Tensor:
        """Channels, rate and range of a whole recording, before its gain."""
        wave = match_channels(wave.float(), self.channels)
        if rate != self.sample_rate:
            wave = AF.resample(wave, rate, self.sample_rate)
        return wave.clamp(-1.0, 1.0)

    def _info(self, num_samples: int, gain_db: float, rate: int, source_channels: int) -> dict:
        return {
            "channels": self.channels,
            "num_samples": num_samples,
            "sample_rate": self.sample_rate,
            "duration": num_samples / self.sample_rate,
            "gain_db": gain_db,
            "source_sample_rate": rate,
            "source_channels": source_channels,
        }

    # -- long recordings, in pieces -------------------------------------------------------------------
    def stream_size(self, file: BinaryIO) -> int | None:
        """Values of the prepared tensor (samples at the spec's rate x channels), from the header
        libsndfile reads from the file's start; None when it does not say. The file is left where it was."""
        position = file.tell()
        try:
            file.seek(0)
            header = sf.info(file)
        except Exception:  # not audio, or nothing libsndfile can read: `prepare` says why
            return None
        finally:
            file.seek(position)
        if header.frames <= 0 or header.samplerate <= 0:
            return None
        samples = header.frames
        if header.samplerate != self.sample_rate:  # torchaudio's output length: ceil(T * new / orig)
            samples = -(-samples * self.sample_rate // header.samplerate)
        return samples * self.channels

    def prepare_stream(self, open_file: Callable[[], BinaryIO], name: str, chunk_elements: int) -> PreparedStream:
        """The recording `open_file()` reads, prepared in pieces (1, channels, t) of about
        `chunk_elements` values that put together equal `prepare(file).tensor` exactly (same
        samples, same gain: see `RecordingLevel` and `resample_in_pieces`). With a loudness target
        the file is read twice: once to measure the whole recording's level, once to emit it.
        Errors are `prepare`'s (AudioDecodeError for a file that is not whole audio), raised while
        iterating."""
        piece_samples = max(1, chunk_elements // self.channels)

        def pieces(info: dict) -> Iterator[torch.Tensor]:
            gain, gain_db = None, 0.0
            if self.loudness_db is not None:
                level = RecordingLevel()
                for piece in self._matched_pieces(open_file, name, piece_samples, info):
                    level.add(piece)
                gain = level.gain(self.loudness_db, max_gain_db=self.max_gain_db)
                gain_db = 20.0 * math.log10(float(gain))
            count = 0
            for piece in self._matched_pieces(open_file, name, piece_samples, info):
                count += piece.shape[-1]
                yield (piece if gain is None else piece * gain)[None]
            info.update(self._info(count, gain_db, info["source_sample_rate"], info["source_channels"]))

        return PreparedStream(pieces, time_axis=2)

    def _matched_pieces(
        self, open_file: Callable[[], BinaryIO], name: str, piece_samples: int, info: dict
    ) -> Iterator[torch.Tensor]:
        """`_matched` of the recording, piece by piece: (channels, t) before the gain."""
        with open_file() as file, _open_sound(file, name) as sound:
            rate = sound.samplerate
            info.update(source_sample_rate=rate, source_channels=sound.channels)
            frames = piece_samples if rate == self.sample_rate else READ_FRAMES
            blocks = (
                match_channels(torch.from_numpy(b.T.copy()), self.channels) for b in _read_blocks(sound, name, frames)
            )
            if rate != self.sample_rate:
                blocks = resample_in_pieces(blocks, rate, self.sample_rate, piece_samples)
            for block in blocks:
                yield block.clamp(-1.0, 1.0)

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

    def write_file(self, item: Any, path) -> None:
        """Float samples (T,) or (channels, T) at this spec's rate -> a 32-bit float WAV."""
        samples = np.asarray(torch.as_tensor(item), dtype=np.float32)
        samples = samples.reshape(self.channels, -1).T if samples.ndim > 1 else samples
        sf.write(path, samples, self.sample_rate, subtype="FLOAT", format="WAV")

    def to_media(self, x: torch.Tensor, info: list[dict] | None = None) -> np.ndarray:
        """float (B, C, T) -> numpy in [-1, 1], each clip back at its own level when `info` holds its gain."""
        x = x.detach().float().cpu()
        if info is not None:
            if len(info) != x.shape[0]:
                raise ValueError(f"{len(info)} info records for {x.shape[0]} clips")
            undo = torch.tensor([10.0 ** (-item.get("gain_db", 0.0) / 20.0) for item in info])
            x = x * undo.view(-1, 1, 1)
        return x.clamp(-1, 1).numpy()
