"""A real client of the exported tokenizers: a tiny GPT-2 trained on interleaved text + media ids.

Builds a byte-level BPE text tokenizer offline (the `tokenizers` library, trained on local text),
extends it with frozen mmtok tokenizers (mmtok.vocab.extend_tokenizer), creates a small GPT-2
(random init, resized embeddings initialised from the codebooks), trains it on sequences
"caption <media> caption <media>", then samples media segments under the vocab layout's grammar
and decodes them back to media.

    python -m mmtok.eval.llm_client TOKENIZER_DIR [TOKENIZER_DIR ...] --steps 300
"""

from __future__ import annotations

import argparse
import inspect
import json
import random
from dataclasses import dataclass, field

import torch

from mmtok.llm_vocab import extend_tokenizer, init_media_embeddings, interleave
from mmtok.vocab import VocabLayout


def local_text() -> list[str]:
    """Training text that ships with Python itself: docstrings of a few standard modules."""
    import argparse as a  # noqa: E401
    import collections
    import json as j
    import pathlib
    import textwrap

    lines = []
    for module in (a, collections, j, pathlib, textwrap):
        for _, obj in inspect.getmembers(module):
            doc = inspect.getdoc(obj)
            if doc:
                lines.extend(line for line in doc.splitlines() if line.strip())
    return lines


def build_text_tokenizer(vocab_size: int = 400):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(local_text(), trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<|endoftext|>", pad_token="<|endoftext|>")


@dataclass
class ClientReport:
    first_loss: float
    last_loss: float
    steps: int
    vocab_size: int
    round_trips: int  # media segments whose ids survived to_llm_ids -> from_llm_ids unchanged
    sampled: list = field(default_factory=list)  # per tokenizer: shape of the decoded media


def build_examples(frozen, media: list, captions: list[str], text_tokenizer, layouts) -> tuple[list[list[int]], int]:
    """One sequence per media item: caption + media ids + caption; also counts exact round trips."""
    sequences, round_trips = [], 0
    for tokenizer, layout, items in zip(frozen, layouts, media):
        ids = tokenizer.encode(items)
        for example, caption in zip(ids, captions):
            llm_ids = layout.to_llm_ids(example)
            back = layout.media_segments(llm_ids)
            round_trips += int(len(back) == 1 and torch.equal(back[0], example.cpu()))
            sequences.append(interleave([f"{caption} ", llm_ids, f" {caption}."], text_tokenizer))
    return sequences, round_trips


def train_lm(
    sequences: list[list[int]],
    vocab_size: int,
    layouts,
    frozen,
    *,
    steps: int,
    seed: int = 0,
    width: int = 64,
    layers: int = 2,
    lr: float = 3e-3,
    batch_size: int = 8,
):
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    length = max(len(s) for s in sequences)
    config = GPT2Config(
        vocab_size=vocab_size,
        n_positions=length,
        n_embd=width,
        n_layer=layers,
        n_head=2,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
    )
    model = GPT2LMHeadModel(config)
    model.resize_token_embeddings(vocab_size)
    init_media_embeddings(model.get_input_embeddings().weight, layouts, method="codebook", frozen_tokenizers=frozen)
    pad = -100
    batch = torch.full((len(sequences), length), 0, dtype=torch.long)
    labels = torch.full((len(sequences), length), pad, dtype=torch.long)
    for row, seq in enumerate(sequences):
        batch[row, : len(seq)] = torch.tensor(seq)
        labels[row, : len(seq)] = torch.tensor(seq)
    attention = (labels != pad).long()
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    rng = random.Random(seed)
    losses = []
    model.train()
    for _ in range(steps):
        rows = rng.sample(range(len(sequences)), min(batch_size, len(sequences)))
        out = model(input_ids=batch[rows], attention_mask=attention[rows], labels=labels[rows])
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
        losses.append(float(out.loss.detach()))
    return model.eval(), losses


@torch.no_grad()
def sample_segment(model, prompt: list[int], layout: VocabLayout, token_shape, *, seed: int = 0) -> list[int]:
    """Samples one media segment after `prompt`, each step restricted to the ids the layout's
    grammar allows there (so the output always parses)."""
    generator = torch.Generator().manual_seed(seed)
    ids = list(prompt)
    segment = []
    for low, high in layout.segment_template(token_shape):
        logits = model(input_ids=torch.tensor([ids])).logits[0, -1]
        allowed = torch.full_like(logits, float("-inf"))
        allowed[low:high] = 0
        token = int(torch.multinomial(torch.softmax(logits + allowed, dim=-1), 1, generator=generator))
        ids.append(token)
        segment.append(token)
    return segment


def run_llm_client(frozen: list, media: list, captions: list[str], *, steps: int = 300, seed: int = 0) -> ClientReport:
    """`frozen`: FrozenTokenizers; `media[i]`: a batch of media for frozen[i] (one per caption)."""
    text_tokenizer = build_text_tokenizer()
    layouts = extend_tokenizer(text_tokenizer, *frozen)
    sequences, round_trips = build_examples(frozen, media, captions, text_tokenizer, layouts)
    model, losses = train_lm(sequences, len(text_tokenizer), layouts, frozen, steps=steps, seed=seed)
    report = ClientReport(
        first_loss=losses[0],
        last_loss=sum(losses[-10:]) / len(losses[-10:]),
        steps=steps,
        vocab_size=len(text_tokenizer),
        round_trips=round_trips,
    )
    for tokenizer, layout, items in zip(frozen, layouts, media):
        token_shape = tuple(tokenizer.encode(items[:1]).shape[1:-1])
        prompt = text_tokenizer.encode(f"{captions[0]} ", add_special_tokens=False)
        segment = sample_segment(model, prompt, layout, token_shape, seed=seed)
        [ids] = layout.media_segments(segment)
        decoded = tokenizer.decode_media(ids[None])
        report.sampled.append(tuple(decoded.shape))
    return report


def main() -> None:
    from mmtok import load_tokenizer

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tokenizers", nargs="+", help="exported tokenizer directories (image tokenizers)")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--image-size", type=int, default=32)
    args = parser.parse_args()
    from mmtok.data import sample_images
    from mmtok.data.image_io import center_crop_to_multiple

    frozen = [load_tokenizer(path) for path in args.tokenizers]
    photos = sample_images()[:8]
    captions = [f"a photo of {name}" for name, _ in photos]
    media = []
    for tokenizer in frozen:
        multiple = tokenizer.config["input"].get("multiple_of", 1)
        media.append([center_crop_to_multiple(p, args.image_size, multiple) for _, p in photos])
    report = run_llm_client(frozen, media, captions, steps=args.steps)
    print(json.dumps(report.__dict__, indent=2, default=str))


if __name__ == "__main__":
    main()
