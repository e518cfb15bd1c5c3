"""The audio dataset for training codecs: fixed-length segments of recordings.

Each recording goes through the one audio input path (`AudioInputSpec.prepare_wave`: channels,
sample rate, loudness of the whole recording), exactly as `FrozenTokenizer.encode` and `mmtok
tokenize` prepare it; then a segment is cut. Undecodable files are handled as in ``ImageDataset``:
``__getitem__`` logs a warning, records the file in ``failed_sources`` / ``num_failed`` and
returns the next decodable item; ``validate()`` decodes everything once in the main process.
"""

from __future__ import annotations

from pathlib import Path

import torch

from mmtok.data.audio_io import AudioInputSpec, decode_audio
from mmtok.data.decoded import DecodedSourceDataset
from mmtok.modalities import MODALITIES

AUDIO_EXTENSIONS = MODALITIES["audio"].extensions

__all__ = ["AUDIO_EXTENSIONS", "AudioDataset"]


class AudioDataset(DecodedSourceDataset):
    """``segment_seconds`` segments of the recordings in ``source``, as float tensors
    ``(spec.channels, samples)``.

    ``source`` is a folder (files with the extensions of ``AUDIO_EXTENSIONS``, found recursively
    and sorted by relative path), or any other source ``mmtok.data.sources.open_source`` takes: an
    uncompressed webdataset-style ``.tar``, a ``.parquet`` file whose ``column`` holds encoded
    audio, or a glob. Each item prepares one recording with ``spec`` and takes a segment at a
    random start drawn from torch's global RNG (or the start, when ``random_segment`` is False),
    zero-padded at the end when the recording is shorter.
    """

    def __init__(
        self,
        source: str | Path,
        *,
        spec: AudioInputSpec,
        segment_seconds: float,
        random_segment: bool = True,
        column: str | None = None,
    ):
        self.segment_samples = round(segment_seconds * spec.sample_rate)
        if self.segment_samples <= 0:
            raise ValueError(f"segment_seconds={segment_seconds} gives no samples at {spec.sample_rate} Hz")
        super().__init__(source, modality="audio", column=column)
        self.spec, self.segment_seconds, self.random_segment = spec, segment_seconds, random_segment

    def _decode(self, data: bytes, name: str) -> torch.Tensor:
        return self.spec.prepare_wave(*decode_audio(data, name)).tensor[0]

    def _item(self, wave: torch.Tensor) -> torch.Tensor:
        length = wave.shape[-1]
        start = 0
        if self.random_segment and length > self.segment_samples:
            start = int(torch.randint(length - self.segment_samples + 1, ()))
        segment = wave[:, start : start + self.segment_samples]
        return torch.nn.functional.pad(segment, (0, self.segment_samples - segment.shape[-1]))
