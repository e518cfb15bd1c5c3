"""Where media ids live inside an LLM vocabulary, written down (vocab.json), never assumed.

A VocabLayout places one tokenizer's special tokens and codes after `base_offset`:

    base_offset + 0 .. n_special-1      <|image_start|>, <|image_end|>, [<|image_row|>]
    base_offset + n_special + ...       the codes: per codebook ranges ("separate": codebook 1's
                                        code 7 and codebook 0's code 7 are different LLM ids) or
                                        one range all codebooks share ("shared")

A media segment is `start, tokens..., end`; tokens are flattened in raster order, and for each
position either all its codebooks in a row ("codebook_minor", the usual interleaving) or all
positions of codebook 0 first ("codebook_major"). Grids may carry a row marker after each row so
their shape survives flattening.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from mmtok.ragged import ragged_arange, starts_of

FLATTEN_ORDERS = ("codebook_minor", "codebook_major")
OFFSET_MODES = ("separate", "shared")


@dataclasses.dataclass
class VocabLayout:
    modality: str
    token_shape: list[int | None]  # per example; None marks an axis whose length varies (k tokens, audio frames)
    codebook_sizes: list[int]
    base_offset: int = 0
    codebook_offsets: str = "separate"
    flatten: str = "codebook_minor"
    row_markers: bool = False  # a marker after each row of a 2-D grid

    def __post_init__(self):
        if self.codebook_offsets not in OFFSET_MODES:
            raise ValueError(f"codebook_offsets must be one of {OFFSET_MODES}, got {self.codebook_offsets!r}")
        if self.flatten not in FLATTEN_ORDERS:
            raise ValueError(f"flatten must be one of {FLATTEN_ORDERS}, got {self.flatten!r}")
        if not self.codebook_sizes or any(s < 1 for s in self.codebook_sizes):
            raise ValueError(f"codebook_sizes must be positive, got {self.codebook_sizes}")
        if self.row_markers and (len(self.token_shape) != 2 or self.flatten != "codebook_minor"):
            raise ValueError("row_markers need a 2-D token grid flattened codebook_minor")
        if self.base_offset < 0:
            raise ValueError("base_offset must be >= 0")
        if sum(s is None for s in self.token_shape) > 1 and not self.row_markers:
            # With row markers the rows delimit themselves, so both axes of a grid may vary (EEG).
            raise ValueError("at most one axis of token_shape may vary in length (unless rows are marked)")

    # -- the id ranges ----------------------------------------------------------------------------
    @property
    def num_codebooks(self) -> int:
        return len(self.codebook_sizes)

    @property
    def special_tokens(self) -> dict[str, int]:
        names = [f"<|{self.modality}_start|>", f"<|{self.modality}_end|>"]
        if self.row_markers:
            names.append(f"<|{self.modality}_row|>")
        return {name: self.base_offset + i for i, name in enumerate(names)}

    @property
    def codes_offset(self) -> int:
        return self.base_offset + len(self.special_tokens)

    @property
    def offsets(self) -> list[int]:
        """LLM id of code 0 of each codebook."""
        if self.codebook_offsets == "shared":
            return [self.codes_offset] * self.num_codebooks
        starts = [0, *itertools.accumulate(self.codebook_sizes)][:-1]
        return [self.codes_offset + s for s in starts]

    @property
    def size(self) -> int:
        """How many LLM ids the layout takes (specials + codes)."""
        codes = max(self.codebook_sizes) if self.codebook_offsets == "shared" else sum(self.codebook_sizes)
        return len(self.special_tokens) + codes

    @property
    def end_offset(self) -> int:
        return self.base_offset + self.size

    def token_strings(self) -> list[str]:
        """A name for every id of the layout, in id order (for adding to a text tokenizer)."""
        names = list(self.special_tokens)
        m = self.modality
        if self.codebook_offsets == "shared":
            names += [f"<|{m}_{code}|>" for code in range(max(self.codebook_sizes))]
        else:
            names += [f"<|{m}_c{c}_{code}|>" for c, size in enumerate(self.codebook_sizes) for code in range(size)]
        return names

    def with_base_offset(self, base_offset: int) -> VocabLayout:
        return dataclasses.replace(self, base_offset=base_offset)

    # -- ids <-> LLM ids ----------------------------------------------------------------------------
    def to_llm_ids(self, ids: torch.Tensor) -> torch.Tensor:
        """ids (*token_shape, num_codebooks) of ONE example -> 1-D LLM ids, framed by start/end."""
        ids = torch.as_tensor(ids)
        self._check_ids(ids)
        offsets = torch.tensor(self.offsets, dtype=torch.long, device=ids.device)
        shifted = ids.long() + offsets
        start, end = self.special_tokens[f"<|{self.modality}_start|>"], self.special_tokens[f"<|{self.modality}_end|>"]
        if self.row_markers:
            rows = shifted.flatten(1)  # (rows, width * codebooks)
            row_id = self.special_tokens[f"<|{self.modality}_row|>"]
            marker = torch.full((rows.shape[0], 1), row_id, dtype=torch.long, device=ids.device)
            body = torch.cat([rows, marker], dim=1).flatten()
        else:
            body = self.flatten_ids(shifted)
        frame = lambda v: torch.tensor([v], dtype=torch.long, device=ids.device)  # noqa: E731
        return torch.cat([frame(start), body, frame(end)])

    def frame_flat(self, values: np.ndarray, lengths: np.ndarray, shapes: Sequence[Sequence[int]]):
        """`to_llm_ids` for many examples at once, on the ids as shards store them: `values` holds
        the examples' flattened codebook ids one after another (`lengths[i]` each, flattened in
        this layout's order), `shapes[i]` is example i's token shape with its codebook axis.
        Returns (framed LLM ids as int64, their lengths). Vectorised with numpy because `mmtok
        pack` frames whole parquet batches: a torch call per example was its bottleneck."""
        lengths = np.asarray(lengths, dtype=np.int64)
        values = np.asarray(values, dtype=np.int64)
        c = self.num_codebooks
        if len(lengths) != len(shapes) or int(lengths.sum()) != len(values):
            raise ValueError("values, lengths and shapes describe different examples")
        if any(shape[-1] != c or math.prod(shape) != n for shape, n in zip(shapes, lengths)):
            raise ValueError(f"an example's token shape disagrees with its length or with {c} codebooks")
        position = ragged_arange(lengths)  # index inside its example
        if self.flatten == "codebook_minor":
            codebook = position % c
        else:
            codebook = position // np.repeat(lengths // c, lengths)
        sizes = np.asarray(self.codebook_sizes, dtype=np.int64)
        if len(values) and ((values < 0).any() or (values >= sizes[codebook]).any()):
            raise ValueError(f"ids out of range for codebook sizes {self.codebook_sizes}")
        shifted = values + np.asarray(self.offsets, dtype=np.int64)[codebook]
        if self.row_markers:
            row_width = np.asarray([shape[1] * c for shape in shapes], dtype=np.int64)
            markers = np.asarray([shape[0] for shape in shapes], dtype=np.int64)
            row_of = position // np.repeat(row_width, lengths)  # each id's grid row: one marker before it per row
        else:
            markers = np.zeros(len(lengths), dtype=np.int64)
            row_of = 0
        framed_lengths = lengths + markers + 2
        out_starts = starts_of(framed_lengths)
        out = np.empty(int(framed_lengths.sum()), dtype=np.int64)
        out[np.repeat(out_starts + 1, lengths) + position + row_of] = shifted
        out[out_starts] = self.special_tokens[f"<|{self.modality}_start|>"]
        out[out_starts + framed_lengths - 1] = self.special_tokens[f"<|{self.modality}_end|>"]
        if self.row_markers:
            # Marker k of an example sits after its (k+1)-th row: start + 1 + (k+1) * width + k.
            example = np.repeat(np.arange(len(lengths)), markers)
            k = ragged_arange(markers)
            out[out_starts[example] + 1 + (k + 1) * row_width[example] + k] = self.special_tokens[
                f"<|{self.modality}_row|>"
            ]
        return out, framed_lengths

    def flatten_ids(self, ids: torch.Tensor) -> torch.Tensor:
        """One example's ids (*token_shape, num_codebooks) -> 1-D, in this layout's flatten order."""
        return ids.flatten() if self.flatten == "codebook_minor" else ids.movedim(-1, 0).flatten()

    def unflatten_ids(self, flat: torch.Tensor, token_shape: Sequence[int]) -> torch.Tensor:
        """The inverse of flatten_ids; `token_shape` includes the codebook axis."""
        *positions, codebooks = token_shape
        if self.flatten == "codebook_minor":
            return flat.reshape(*positions, codebooks)
        return flat.reshape(codebooks, *positions).movedim(0, -1)

    def segment_template(self, token_shape: Sequence[int]) -> list[tuple[int, int]]:
        """The id range ([low, high)) allowed at each position of a segment of `token_shape`,
        start and end included: the grammar a constrained sampler follows to emit valid media."""
        c = self.num_codebooks
        start, end = self.special_tokens[f"<|{self.modality}_start|>"], self.special_tokens[f"<|{self.modality}_end|>"]
        code = [(self.offsets[i], self.offsets[i] + self.codebook_sizes[i]) for i in range(c)]
        positions = math.prod(token_shape)
        if self.flatten == "codebook_minor":
            body = [code[i % c] for i in range(positions * c)]
        else:
            body = [code[i // positions] for i in range(positions * c)]
        if self.row_markers:
            row_id = self.special_tokens[f"<|{self.modality}_row|>"]
            per_row = token_shape[1] * c
            body = [
                r
                for row in range(token_shape[0])
                for r in body[row * per_row : (row + 1) * per_row] + [(row_id, row_id + 1)]
            ]
        return [(start, start + 1), *body, (end, end + 1)]

    def from_llm_ids(self, llm_ids: Sequence[int] | torch.Tensor) -> list:
        """Splits a sequence into text runs (lists of ints, left as they are) and media segments
        (tensors (*token_shape, num_codebooks) of codebook ids), in order."""
        seq = [int(v) for v in (llm_ids.tolist() if torch.is_tensor(llm_ids) else llm_ids)]
        start, end = self.special_tokens[f"<|{self.modality}_start|>"], self.special_tokens[f"<|{self.modality}_end|>"]
        parts: list = []
        text: list[int] = []
        i = 0
        while i < len(seq):
            if seq[i] != start:
                text.append(seq[i])
                i += 1
                continue
            try:
                stop = seq.index(end, i + 1)
            except ValueError:
                raise ValueError(f"{self.modality} segment starting at position {i} has no end token") from None
            if text:
                parts.append(text)
                text = []
            parts.append(self._segment_ids(seq[i + 1 : stop]))
            i = stop + 1
        if text:
            parts.append(text)
        return parts

    def media_segments(self, llm_ids) -> list[torch.Tensor]:
        return [p for p in self.from_llm_ids(llm_ids) if torch.is_tensor(p)]

    def _segment_ids(self, body: list[int]) -> torch.Tensor:
        c = self.num_codebooks
        if self.row_markers:
            row_id = self.special_tokens[f"<|{self.modality}_row|>"]
            rows, current = [], []
            for v in body:
                if v == row_id:
                    rows.append(current)
                    current = []
                else:
                    current.append(v)
            if current or not rows or len({len(r) for r in rows}) != 1 or len(rows[0]) % c:
                raise ValueError("malformed grid segment: rows differ in length or miss their markers")
            flat = torch.tensor(rows, dtype=torch.long).reshape(len(rows), -1, c)
        else:
            if len(body) % c:
                raise ValueError(f"segment of {len(body)} tokens is not a multiple of {c} codebooks")
            shape = self._resolve_shape(len(body) // c)
            flat = self.unflatten_ids(torch.tensor(body, dtype=torch.long), [*shape, c])
        ids = flat - torch.tensor(self.offsets, dtype=torch.long)
        sizes = torch.tensor(self.codebook_sizes, dtype=torch.long)
        if (ids < 0).any() or (ids >= sizes).any():
            raise ValueError("segment holds ids outside this layout's code ranges")
        return ids

    def _resolve_shape(self, positions: int) -> list[int]:
        known = math.prod(s for s in self.token_shape if s is not None)
        if None in self.token_shape:
            if positions % known:
                raise ValueError(f"{positions} positions do not fit token shape {self.token_shape}")
            return [positions // known if s is None else s for s in self.token_shape]
        if positions != known:
            raise ValueError(f"segment has {positions} positions, token shape {self.token_shape} needs {known}")
        return list(self.token_shape)

    def _check_ids(self, ids: torch.Tensor) -> None:
        if ids.is_floating_point():
            raise TypeError("ids must be integers")
        if ids.ndim != len(self.token_shape) + 1 or ids.shape[-1] != self.num_codebooks:
            raise ValueError(
                f"expected ids of one example shaped (*{self.token_shape}, {self.num_codebooks}), "
                f"got {tuple(ids.shape)}"
            )
        for axis, size in enumerate(self.token_shape):
            # With row markers the grid's shape travels in the sequence: token_shape is nominal.
            if size is not None and not self.row_markers and ids.shape[axis] != size:
                raise ValueError(f"axis {axis} has {ids.shape[axis]} tokens, the layout says {size}")
        sizes = torch.tensor(self.codebook_sizes, device=ids.device)
        if ids.numel() and ((ids < 0).any() or (ids >= sizes).any()):
            raise ValueError(f"ids out of range for codebook sizes {self.codebook_sizes}")

    # -- vocab.json --------------------------------------------------------------------------------
    def to_json(self) -> dict:
        return {
            **dataclasses.asdict(self),
            "num_codebooks": self.num_codebooks,
            "special_tokens": self.special_tokens,
            "offsets": self.offsets,
            "size": self.size,
        }

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_json(), indent=2) + "\n")

    @classmethod
    def from_json(cls, data: dict) -> VocabLayout:
        """A layout from vocab.json's fields; the derived fields it also stores are checked with
        `check_stored_fields`. Wrong or missing fields are a ValueError naming them."""
        if not isinstance(data, dict):
            raise ValueError(f"vocab must be a JSON object, got {type(data).__name__}")
        missing = [name for name in ("modality", "token_shape", "codebook_sizes") if name not in data]
        if missing:
            raise ValueError(f"vocab has no {', '.join(missing)}")
        _check_type("modality", data["modality"], lambda v: isinstance(v, str) and v, "a non-empty string")
        _check_type("token_shape", data["token_shape"], lambda v: _int_list(v, allow_none=True), "a list of ints/null")
        _check_type("codebook_sizes", data["codebook_sizes"], _int_list, "a list of ints")
        _check_type("base_offset", data.get("base_offset", 0), _is_int, "an int")
        _check_type("row_markers", data.get("row_markers", False), lambda v: isinstance(v, bool), "true or false")
        fields = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in fields})

    def check_stored_fields(self, data: dict) -> None:
        """vocab.json also stores what the layout derives (num_codebooks, offsets, special tokens,
        size) for readers outside mmtok, which use them as they are: they must describe disjoint id
        ranges inside the layout's size, and be the ones mmtok computes. A ValueError names the field
        and both values."""
        if "num_codebooks" in data and data["num_codebooks"] != self.num_codebooks:
            raise ValueError(
                f"num_codebooks is {data['num_codebooks']!r}, but codebook_sizes lists {self.num_codebooks} codebooks"
            )
        if "size" in data and data["size"] != self.size:
            raise ValueError(f"size is {data['size']!r}, but the layout's specials and codes take {self.size} ids")
        ranges = self._check_stored_offsets(data.get("offsets", self.offsets))
        self._check_stored_special_tokens(data.get("special_tokens", self.special_tokens), ranges)

    def _check_stored_offsets(self, offsets) -> list[tuple[int, int]]:
        if not _int_list(offsets) or len(offsets) != self.num_codebooks:
            raise ValueError(f"offsets is {offsets!r}, expected {self.num_codebooks} ints (one per codebook)")
        ranges = [(start, start + size) for start, size in zip(offsets, self.codebook_sizes)]
        low, high = self.base_offset, self.end_offset
        for c, (start, stop) in enumerate(ranges):
            if start < low or stop > high:
                raise ValueError(
                    f"offsets: codebook {c}'s ids [{start}, {stop}) lie outside the layout's ids [{low}, {high})"
                )
        if self.codebook_offsets == "separate":
            for (a, (a_start, a_stop)), (b, (b_start, b_stop)) in itertools.combinations(enumerate(ranges), 2):
                if a_start < b_stop and b_start < a_stop:
                    raise ValueError(
                        f"offsets: codebook {a}'s ids [{a_start}, {a_stop}) overlap codebook {b}'s "
                        f"[{b_start}, {b_stop}) with separate codebook offsets"
                    )
        if offsets != self.offsets:
            raise ValueError(f"offsets is {offsets}, but the layout places its codebooks at {self.offsets}")
        return ranges

    def _check_stored_special_tokens(self, tokens, code_ranges: list[tuple[int, int]]) -> None:
        if not isinstance(tokens, dict) or not all(_is_int(v) for v in tokens.values()):
            raise ValueError(f"special_tokens is {tokens!r}, expected an object of token names to ids")
        if len(set(tokens.values())) != len(tokens):
            raise ValueError(f"special_tokens share ids: {tokens}")
        for name, token in tokens.items():
            for c, (start, stop) in enumerate(code_ranges):
                if start <= token < stop:
                    raise ValueError(
                        f"special_tokens: {name} is id {token}, inside codebook {c}'s code ids [{start}, {stop})"
                    )
        if tokens != self.special_tokens:
            raise ValueError(f"special_tokens is {tokens}, but the layout gives {self.special_tokens}")

    @classmethod
    def load(cls, path: str | Path) -> VocabLayout:
        return cls.from_json(json.loads(Path(path).read_text()))


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _int_list(value, allow_none: bool = False) -> bool:
    return isinstance(value, list) and all(_is_int(v) or (allow_none and v is None) for v in value)


def _check_type(name: str, value, valid, expected: str) -> None:
    if not valid(value):
        raise ValueError(f"{name} is {value!r}, expected {expected}")


def stack_layouts(layouts: Sequence[VocabLayout], start: int) -> list[VocabLayout]:
    """Places layouts one after another from LLM id `start` (e.g. the text vocabulary's size)."""
    placed = []
    for layout in layouts:
        placed.append(layout.with_base_offset(start))
        start = placed[-1].end_offset
    return placed
