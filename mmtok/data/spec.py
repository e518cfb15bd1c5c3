"""What every modality's input path has in common: an input spec that prepares media for a tokenizer.

An `InputSpec` is a small dataclass per modality (images: `mmtok.data.image_io.ImageInputSpec`,
audio: `mmtok.data.audio_io.AudioInputSpec`). It holds every normalisation training applies, is
written into the artifact's config.json as `input`, and prepares media the same way for the
training datasets, `FrozenTokenizer.encode`, `mmtok tokenize` and eval. Preparation returns the
batched tensor a tokenizer's `encode` takes plus, per example, what was done to it (`info`: the
media's size, an audio gain, ...), so that `to_media` can undo it and shard rows can record it.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, NamedTuple

import torch


class Prepared(NamedTuple):
    tensor: torch.Tensor  # (B, ...) as the tokenizer's encode takes it
    info: list[dict]  # one dict per example, with the keys of the spec's `info_fields`


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

    def to_json(self) -> dict:
        return {"modality": self.modality, **dataclasses.asdict(self)}


def stack_prepared(items: list[Prepared], what: str) -> Prepared:
    """One batch from single-example preparations; they must share a shape."""
    shapes = [tuple(item.tensor.shape[1:]) for item in items]
    if len(set(shapes)) != 1:
        raise ValueError(f"{what} in one batch must share a shape after preparation, got {shapes}")
    return Prepared(torch.cat([item.tensor for item in items]), [i for item in items for i in item.info])
