"""The AR probe (`mmtok eval --ar-probe TRAIN_DATA`): how learnable a tokenizer's ids are.

A small causal transformer (a transformers Llama, a couple of million parameters on CPU) is
trained from scratch on the token stream of a training split: every training item through the
tokenizer's own input path, its ids framed by the vocab layout at base 0 (start, codes, row
markers, end) and the examples concatenated; random windows of `block` ids, a fixed number of
steps. The budget (steps x batch x block), the model and the seeds are the same for every
tokenizer of a report, so the figures compare.

Reported per tokenizer:
- held-out bits per token: the model's mean next-token loss, in bits, on the code positions of
  the held-out items (the eval DATA) -- start, end and row markers are left out, they carry no
  information; scored with a sliding window so every position sees at least half a window of context;
- the LM rate: each held-out item's summed code bits in the report's rate unit (bits per pixel,
  per second, ...) beside the raw rate (log2 of the codebook size per token, the harness's bits);
- the unigram entropy of the training codes (what a model of code frequencies alone would pay);
- with several seeds, the mean and a 95 % t-interval of held-out bits per token over seeds;
- a few sequences sampled from the model under the layout's grammar, decoded back to media.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
import time
from pathlib import Path

import torch

from mmtok.llm_sampling import code_positions, sample_segment, unigram_entropy_bits
from mmtok.vocab import VocabLayout


@dataclasses.dataclass
class ProbeSettings:
    steps: int = 200
    batch_size: int = 8
    block: int = 256  # ids per training window (and the model's context)
    width: int = 128
    layers: int = 2
    heads: int = 4
    lr: float = 2e-3
    seeds: tuple[int, ...] = (0,)
    samples: int = 2  # sequences drawn and decoded per tokenizer (first seed's model)


def small_llama(vocab_size: int, settings: ProbeSettings, seed: int):
    try:
        from transformers import LlamaConfig, LlamaForCausalLM
    except ImportError as error:
        raise ImportError('the AR probe needs transformers: pip install "mmtok[llm]"') from error
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=settings.width,
        intermediate_size=4 * settings.width,
        num_hidden_layers=settings.layers,
        num_attention_heads=settings.heads,
        num_key_value_heads=settings.heads,
        max_position_embeddings=settings.block,
        tie_word_embeddings=True,
        bos_token_id=None,
        eos_token_id=None,
        pad_token_id=None,
    )
    return LlamaForCausalLM(config)


def train_probe(stream: torch.Tensor, vocab_size: int, settings: ProbeSettings, seed: int):
    """The model after `settings.steps` AdamW steps on random windows of `stream` (1-D ids)."""
    model = small_llama(vocab_size, settings, seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings.lr, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=settings.lr, total_steps=settings.steps, pct_start=0.1
    )
    generator = torch.Generator().manual_seed(seed)
    block = min(settings.block, len(stream) - 1)
    if block < 2:
        raise ValueError(f"the AR probe's training stream holds {len(stream)} ids: give it more training items")
    model.train()
    for _ in range(settings.steps):
        starts = torch.randint(0, len(stream) - block, (settings.batch_size,), generator=generator)
        windows = torch.stack([stream[s : s + block + 1] for s in starts.tolist()])
        loss = model(input_ids=windows[:, :-1], labels=windows[:, :-1]).loss  # transformers shifts labels
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
    return model.eval()


@torch.no_grad()
def token_bits(model, stream: torch.Tensor, block: int) -> torch.Tensor:
    """Bits the model pays for each id of `stream` after the first (index i: stream[i + 1]),
    scored in windows of `block` that overlap by half, each id from the window where it has the
    most context."""
    bits = torch.zeros(len(stream) - 1, dtype=torch.float64)
    stride = max(1, block // 2)
    start = 0
    while True:
        window = stream[start : start + block + 1]
        logits = model(input_ids=window[None, :-1]).logits[0].double()
        losses = torch.nn.functional.cross_entropy(logits, window[1:], reduction="none") / math.log(2)
        keep = 0 if start == 0 else block - stride  # earlier ids were scored with more context already
        bits[start + keep : start + len(losses)] = losses[keep:]
        if start + block + 1 >= len(stream):
            return bits
        start += stride


def _framed(frozen, layout: VocabLayout, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A prepared example's codes and its framed LLM ids."""
    ids = frozen.encode_tensor(x)[0].cpu()
    return ids, layout.to_llm_ids(ids)


def probe_tokenizer(name: str, frozen, train_examples, heldout_examples, suite, settings: ProbeSettings, media: Path):
    """One tokenizer's probe figures (see the module docstring)."""
    from mmtok.eval.harness import slug
    from mmtok.eval.systems import bits_of

    started = time.perf_counter()
    layout = frozen.vocab_layout().with_base_offset(0)
    train_streams = [_framed(frozen, layout, x)[1] for _, x, _ in train_examples]  # streamed: inputs not kept
    heldout_streams, heldout_meta = [], []  # meta: (codes, reference, info) for rates and samples
    for _, x, info in heldout_examples:
        ids, stream = _framed(frozen, layout, x)
        heldout_streams.append(stream)
        heldout_meta.append((ids, suite.reference(x).float().cpu(), info))
    if not train_streams or not heldout_streams:
        raise ValueError(f"{name}: the AR probe needs training and held-out items its input path accepts")
    train = torch.cat(train_streams)
    per_seed, lm_rates, first_model = [], [], None
    for seed in settings.seeds:
        model = train_probe(train, layout.size, settings, seed)
        item_bits, total_bits, total_codes = [], 0.0, 0
        for stream in heldout_streams:  # each item from its own start token: no other item as context
            bits = token_bits(model, stream, settings.block)
            is_code = code_positions(stream[1:], layout)
            item_bits.append(float(bits[is_code].sum()))
            total_bits, total_codes = total_bits + item_bits[-1], total_codes + int(is_code.sum())
        per_seed.append(total_bits / max(total_codes, 1))
        lm_rates.append([suite.rate(b, ref, info) for b, (_, ref, info) in zip(item_bits, heldout_meta)])
        if first_model is None:  # the samples come from the first seed's model
            first_model = model
    raw_rates = [suite.rate(bits_of(ids[None], frozen.codebook_sizes), ref, info) for ids, ref, info in heldout_meta]
    samples = _samples(first_model, frozen, layout, heldout_meta[0], suite, settings, media, slug(f"arprobe_{name}"))
    lm_rate = statistics.fmean(statistics.fmean(rates) for rates in lm_rates)
    raw_rate = statistics.fmean(raw_rates)
    return {
        "name": name,
        "bits_per_token": {"mean": statistics.fmean(per_seed), "per_seed": per_seed, "ci95": _interval(per_seed)},
        "lm_rate": lm_rate,
        "lm_rate_per_seed": [statistics.fmean(rates) for rates in lm_rates],
        "raw_rate": raw_rate,
        "lm_to_raw": lm_rate / raw_rate if raw_rate else float("nan"),
        "raw_bits_per_token": statistics.fmean(
            math.log2(size) for size in frozen.codebook_sizes[: ids_used(heldout_meta)]
        ),
        "unigram_entropy_bits": unigram_entropy_bits(train, layout),
        "train_tokens": len(train),
        "heldout_tokens": total_codes,
        "seconds": time.perf_counter() - started,
        "samples": samples,
    }


def ids_used(meta) -> int:
    """How many codebooks the held-out ids carry."""
    return meta[0][0].shape[-1]


def _interval(values: list[float]) -> float | None:
    """Half-width of the 95 % t-interval of the mean; None for one value."""
    if len(values) < 2:
        return None
    from scipy.stats import t

    return float(t.ppf(0.975, len(values) - 1) * statistics.stdev(values) / math.sqrt(len(values)))


def _samples(model, frozen, layout, first, suite, settings: ProbeSettings, media: Path, stem: str) -> list[dict]:
    """`settings.samples` segments shaped like the first held-out item's ids (a variable axis cut
    to what fits in the context), decoded and written as the suite writes media."""
    ids, _, info = first
    shape = list(ids.shape[:-1])
    # The first axis (rows of a grid, frames of audio) is cut so a sample fits in the context the
    # model was trained with: ids per step of that axis, row marker included.
    per_step = math.prod(shape[1:]) * ids.shape[-1] + (1 if layout.row_markers else 0)
    shape[0] = max(1, min(shape[0], (settings.block - 3) // per_step))
    end = layout.special_tokens[f"<|{layout.modality}_end|>"]
    written = []
    for index in range(settings.samples):
        segment = sample_segment(model, [end], layout, shape, seed=index)
        [codes] = layout.media_segments(segment)
        decoded = frozen.decode(codes[None].to(frozen.device)).float().cpu()
        written.append(suite.write_media(media, f"{stem}_{index}", decoded, info))
    return written


def run_ar_probe(tokenizers: list[tuple[str, object]], train_items: list, heldout_items: list, suite, options, media):
    """The probe for every tokenizer of a report, with one budget and one set of seeds."""
    from mmtok.eval.harness import prepared_examples

    settings = ProbeSettings(steps=options.ar_probe_steps, seeds=tuple(range(options.ar_probe_seeds)))
    results = [
        probe_tokenizer(
            name,
            frozen,
            prepared_examples(frozen, train_items, options.crop_size, []),
            prepared_examples(frozen, heldout_items, options.crop_size, []),
            suite,
            settings,
            media,
        )
        for name, frozen in tokenizers
    ]
    return {"settings": dataclasses.asdict(settings), "tokenizers": results}
