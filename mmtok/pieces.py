"""A signal given as pieces along its last axis, cut into blocks that each come with context.

Two streamed paths need the same thing: resampling a recording (mmtok.data.audio_io) and encoding
it with a non-causal codec (models/audio.py) compute each block of the signal from the samples
around it. `blocks_with_context` holds one block and its margins of the signal at a time, whatever
the pieces' lengths.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import NamedTuple

import torch


class Block(NamedTuple):
    window: torch.Tensor  # samples [start - margin, start + length + margin), cut at the signal's ends
    offset: int  # where the block starts inside the window
    length: int  # the block's samples (the last block may be shorter than the others)
    last: bool  # no samples follow the block


def blocks_with_context(pieces: Iterable[torch.Tensor], block: int, margin: int) -> Iterator[Block]:
    """Blocks [0, block), [block, 2 block), ... of the signal the pieces make up (along dim -1),
    each inside a window with `margin` samples of the signal on either side."""
    held: torch.Tensor | None = None  # samples [held_start, held_start + held.shape[-1])
    held_start, start, ended = 0, 0, False
    pieces = iter(pieces)
    while True:
        held_end = held_start + (0 if held is None else held.shape[-1])
        if not ended and held_end < start + block + margin:
            piece = next(pieces, None)
            if piece is None:
                ended = True
            else:
                held = piece if held is None else torch.cat([held, piece], dim=-1)
            continue
        if held is None or start >= held_end:
            return
        end = min(start + block, held_end)
        left = max(0, start - margin)
        window = held[..., left - held_start : min(held_end, end + margin) - held_start]
        yield Block(window, start - left, end - start, ended and end == held_end)
        start = end
        drop = max(0, start - margin) - held_start
        held, held_start = held[..., drop:], held_start + drop
