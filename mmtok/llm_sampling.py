"""What a language model does with framed media ids (mmtok.vocab.VocabLayout): which positions
hold codes, the codes' unigram entropy, and sampling a media segment that always parses under the
layout's grammar. The AR probe of `mmtok eval` and the LLM client (mmtok.llm_client) share them."""

from __future__ import annotations

import inspect
import statistics

import torch

from mmtok.vocab import VocabLayout


def code_positions(ids: torch.Tensor, layout: VocabLayout) -> torch.Tensor:
    """Where `ids` hold one of the layout's codes (not its start, end or row markers)."""
    return (ids >= layout.codes_offset) & (ids < layout.end_offset)


def unigram_entropy_bits(ids: torch.Tensor, layout: VocabLayout) -> float:
    """Entropy of the code frequencies in framed LLM ids, in bits, per codebook and then averaged
    (which codebook comes next is fixed by the position, so pooling them would add log2(C) bits).
    A shared id range holds every codebook's codes: its codes are counted together."""
    positions = code_positions(ids, layout)
    codes = ids[positions]
    if not len(codes):
        return float("nan")
    if layout.codebook_offsets == "shared" or layout.num_codebooks == 1:
        groups = [codes - layout.codes_offset]
    else:
        groups = [codes[(codes >= o) & (codes < o + n)] - o for o, n in zip(layout.offsets, layout.codebook_sizes)]
    entropies = []
    for group in groups:
        p = torch.bincount(group).double()
        p = p[p > 0] / p.sum()
        entropies.append(float(-(p * p.log2()).sum()))
    return statistics.fmean(entropies)


@torch.no_grad()
def sample_segment(model, prompt: list[int], layout: VocabLayout, token_shape, *, seed: int = 0) -> list[int]:
    """Samples one media segment after `prompt`, each step restricted to the ids the layout's
    grammar allows (so the output always parses); the model's key-value cache carries the prefix."""
    generator = torch.Generator().manual_seed(seed)
    segment: list[int] = []
    # transformers 5 renamed past_key_values to cache (argument and output); older versions know only the first.
    name = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
    inputs, past = torch.tensor([list(prompt)]), None
    for low, high in layout.segment_template(token_shape):
        out = model(input_ids=inputs, use_cache=True, **{name: past})
        logits, past = out.logits[0, -1], getattr(out, name)
        allowed = torch.full_like(logits, float("-inf"))
        allowed[low:high] = 0
        token = int(torch.multinomial(torch.softmax(logits + allowed, dim=-1), 1, generator=generator))
        segment.append(token)
        inputs = torch.tensor([[token]])
    return segment
