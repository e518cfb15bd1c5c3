"""What every modality's input path has in common: an input spec that prepares media for a tokenizer.

An `InputSpec` is a small dataclass per modality (`mmtok.data.image_io.ImageInputSpec`,
`audio_io.AudioInputSpec`, `video_io.VideoInputSpec`, `eeg_io.EEGInputSpec`, `ecg_io.ECGInputSpec`;
mmtok.modalities names each modality's). It holds every normalisation training applies, is
written into the artifact's config.json as `input`, and prepares media the same way for the
training datasets, `FrozenTokenizer.encode`, `mmtok tokenize` and eval. Preparation returns the
batched tensor a tokenizer's `encode` takes plus, per example, what was done to it (`info`: the
media's size, an audio gain, ...), so that `to_media` can undo it and shard rows can record it.

Modalities whose examples can be arbitrarily long along time (audio, video) also prepare a file
piece by piece (`InputSpec.prepare_stream` -> `PreparedStream`), so that a one-hour recording
never has to be held whole; `InputSpec.stream_size` says from the container header alone how large
the whole preparation would be, so a caller can choose between the two.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from typing import Any, BinaryIO, ClassVar, NamedTuple

import torch


class Prepared(NamedTuple):
    tensor: torch.Tensor  # (B, ...) as the tokenizer's encode takes it
    info: list[dict]  # one dict per example, with the keys of the spec's `info_fields`


class PreparedStream:
    """One long example prepared piece by piece along its time axis (audio samples, video frames).

    Iterating yields tensors shaped like `prepare()`'s batch of one, cut along the time axis (audio
    (1, C, t), video (1, 3, t, H, W)); concatenated along that axis they equal `prepare(file).tensor`.
    Nothing is read before iteration starts, and every problem with the file is raised from the
    iteration as the ValueError `prepare()` would raise (some only at the end: a video's frame count).
    Each iteration reads the file again from the start.

    `info` is a dict with the keys and values `prepare()` reports for this example (the spec's
    `info_fields`); it is complete once an iteration has finished (a video's frame count and its
    padding are only known at the end).
    """

    def __init__(self, pieces: Callable[[dict], Iterator[torch.Tensor]], time_axis: int):
        self._pieces = pieces  # fills the info dict it is given as it goes
        self.time_axis = time_axis  # the axis the pieces are cut along: 2 for (1, C, t) and (1, 3, t, H, W)
        self.info: dict = {}

    def __iter__(self) -> Iterator[torch.Tensor]:
        self.info = {}
        return self._pieces(self.info)


class InputSpec:
    """Base of the per-modality specs (dataclasses). Subclasses set `modality` and `info_fields`
    and implement `prepare` and `to_media`."""

    modality: ClassVar[str] = ""
    # Per-example metadata `prepare` reports, name -> type (int, float or str): the shard row's columns.
    info_fields: ClassVar[dict[str, type]] = {}
    # True: `mmtok tokenize` hands `prepare` a file's path instead of its bytes where the source is
    # plain files (formats that keep their data in companion files, such as BrainVision EEG).
    reads_paths: ClassVar[bool] = False

    def prepare(self, media: Any) -> Prepared:
        """Paths, encoded bytes, arrays or tensors of this modality -> a batch and its info."""
        raise NotImplementedError

    def to_media(self, x: torch.Tensor, info: list[dict] | None = None) -> Any:
        """A decoded batch -> plain media, undoing what `prepare` recorded in `info` where it can."""
        raise NotImplementedError

    def write_file(self, item: Any, path) -> None:
        """One item of plain media (as `to_media` gives it) written as a file this spec prepares,
        in the modality table's `sample_suffix` format (mmtok.modalities)."""
        raise NotImplementedError(f"{self.modality or type(self).__name__} media are not written as files")

    def stream_size(self, file: BinaryIO) -> int | None:
        """How many values (floats) the prepared tensor of this file would hold, read from the
        container header only (no decoding); None when that is unknown or this modality does not
        prepare in pieces. The file is left at the position it was given at."""
        return None

    def prepare_stream(self, open_file: Callable[[], BinaryIO], name: str, chunk_elements: int) -> PreparedStream:
        """The file prepared in pieces of about `chunk_elements` values (see `PreparedStream`).
        `open_file()` returns a fresh readable, seekable binary file on each call (it may be called
        more than once per iteration); `name` is for error messages."""
        raise NotImplementedError(f"{self.modality or type(self).__name__} inputs are not prepared in pieces")

    def to_json(self) -> dict:
        return {"modality": self.modality, **dataclasses.asdict(self)}


def stack_prepared(items: list[Prepared], what: str) -> Prepared:
    """One batch from single-example preparations; they must share a shape."""
    shapes = [tuple(item.tensor.shape[1:]) for item in items]
    if len(set(shapes)) != 1:
        raise ValueError(f"{what} in one batch must share a shape after preparation, got {shapes}")
    return Prepared(torch.cat([item.tensor for item in items]), [i for item in items for i in item.info])
