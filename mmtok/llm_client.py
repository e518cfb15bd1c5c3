"""A real client of `mmtok pack`: a tiny causal LM trained from the packed files, then sampled.

It reads the pack as a trainer would: the parquet rows (input_ids, attention_mask, position_ids)
through a plain torch DataLoader, with the vocabulary from pack.json and the extended tokenizer
beside it. The last rows are held out. It reports the held-out loss on media code positions in
bits per token next to the unigram entropy of those codes (an LM that learned nothing but code
frequencies scores about that), then samples one media segment per modality after a held-out
document's text, each step restricted to the ids the layout's grammar allows, and decodes it with
the tokenizer that made the shards.

    python -m mmtok.llm_client text-tokenizer OUT_DIR [--texts texts.jsonl]   # a small offline BPE
    python -m mmtok.llm_client train PACK_DIR --steps 300 --out runs/llm       # train, report, samples

`run_llm_client(frozen, media, captions)` does the whole path (files -> tokenize -> pack -> train)
for media held in memory.
"""

from __future__ import annotations

import argparse
import inspect
import json
import math
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from mmtok.llm_sampling import code_positions, sample_segment, unigram_entropy_bits
from mmtok.llm_vocab import JointVocabulary, init_media_embeddings
from mmtok.modalities import modality as modality_entry
from mmtok.pack import PACK_FILE, PARQUET_DIR, TOKENIZER_DIR
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


def build_text_tokenizer(vocab_size: int = 400, texts: list[str] | None = None):
    """A byte-level BPE trained offline on `texts` plus the standard library's docstrings."""
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
    bpe.train_from_iterator([*(texts or []), *local_text()], trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<|endoftext|>", pad_token="<|endoftext|>")


@dataclass
class ClientReport:
    first_loss: float
    last_loss: float
    steps: int
    vocab_size: int
    round_trips: int  # media segments of the packed rows that parse back to their shard's ids
    heldout_media_bits: dict = field(default_factory=dict)  # per modality: held-out loss on code positions, bits
    unigram_entropy_bits: dict = field(default_factory=dict)  # per modality: entropy of the training codes
    sampled: list = field(default_factory=list)  # per layout: shape of the decoded media
    samples: list = field(default_factory=list)  # files written, when an output folder was given
    prompts: list = field(default_factory=list)  # per sample: the held-out text it followed


class PackedRows(torch.utils.data.Dataset):
    """The parquet rows of a pack, as tensors a causal LM takes (labels are -100 on padding)."""

    def __init__(self, tensors: dict[str, torch.Tensor]):
        self.tensors = tensors

    @classmethod
    def read(cls, pack_dir: str | Path) -> PackedRows:
        import pyarrow as pa
        import pyarrow.parquet as pq

        files = sorted((Path(pack_dir) / PARQUET_DIR).glob("part-*.parquet"))
        if not files:
            raise FileNotFoundError(f"{pack_dir} has no parquet rows (was it packed with --formats megatron only?)")
        table = pa.concat_tables(
            [pq.read_table(f, columns=["input_ids", "attention_mask", "position_ids"]) for f in files]
        )
        return cls(
            {
                name: torch.from_numpy(np.stack(table.column(name).to_numpy(zero_copy_only=False)).astype(np.int64))
                for name in table.column_names
            }
        )

    def subset(self, rows: slice) -> PackedRows:
        return PackedRows({name: t[rows] for name, t in self.tensors.items()})

    def __len__(self) -> int:
        return len(self.tensors["input_ids"])

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        item = {name: t[i] for name, t in self.tensors.items()}
        item["labels"] = item["input_ids"].masked_fill(item["attention_mask"] == 0, -100)
        return item


def small_lm(vocab_size: int, seq_len: int, eod_id: int, *, width=64, layers=2, heads=2, seed=0):
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    config = GPT2Config(
        vocab_size=vocab_size,
        n_positions=seq_len,
        bos_token_id=eod_id,
        eos_token_id=eod_id,
        n_embd=width,
        n_layer=layers,
        n_head=heads,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
    )
    return GPT2LMHeadModel(config)


@torch.no_grad()
def heldout_bits(model, rows: PackedRows, layout: VocabLayout, batch_size: int = 8) -> float:
    """Mean next-token loss in bits over the held-out rows' code positions of `layout`."""
    total, count = 0.0, 0
    for start in range(0, len(rows), batch_size):
        batch = {k: t[start : start + batch_size] for k, t in rows.tensors.items()}
        # The positions it was trained with: restarting at each document of the row.
        inputs = {k: batch[k] for k in ("input_ids", "attention_mask", "position_ids")}
        logits = model(**inputs).logits[:, :-1]
        targets = batch["input_ids"][:, 1:]
        mask = code_positions(targets, layout) & (batch["attention_mask"][:, 1:] == 1)
        losses = torch.nn.functional.cross_entropy(logits.transpose(1, 2), targets, reduction="none")
        total, count = total + float(losses[mask].sum()), count + int(mask.sum())
    return total / max(count, 1) / math.log(2)


def _documents(rows: PackedRows, eod: int) -> list[list[int]]:
    stream = rows.tensors["input_ids"][rows.tensors["attention_mask"] == 1].tolist()
    documents, current = [], []
    for token in stream:
        current.append(token)
        if token == eod:
            documents.append(current)
            current = []
    return documents


def train_on_pack(
    pack_dir: str | Path,
    *,
    steps: int = 300,
    seed: int = 0,
    heldout_fraction: float = 0.1,
    batch_size: int = 8,
    lr: float = 3e-3,
    width: int = 64,
    layers: int = 2,
    out: str | Path | None = None,
) -> ClientReport:
    """Trains the tiny LM on a pack's rows and reports; samples are written under `out` if given."""
    from mmtok.artifact import load_tokenizer

    pack_dir = Path(pack_dir)
    record = json.loads((pack_dir / PACK_FILE).read_text())
    vocab = JointVocabulary.from_json(record["vocab"])
    all_rows = PackedRows.read(pack_dir)
    rows_total = len(all_rows)
    heldout = min(rows_total - 1, max(1, round(rows_total * heldout_fraction))) if heldout_fraction > 0 else 0
    train_rows = all_rows.subset(slice(0, rows_total - heldout))
    test_rows = all_rows.subset(slice(rows_total - heldout, rows_total)) if heldout else train_rows
    seq_len = train_rows.tensors["input_ids"].shape[1]
    frozen = {
        layout.modality: load_tokenizer(item["tokenizer"]["path"])
        for layout, item in zip(_layouts_of_inputs(record, vocab), record["inputs"])
    }
    model = small_lm(vocab.size, seq_len, vocab.eod_id, width=width, layers=layers, seed=seed)
    init_media_embeddings(
        model.get_input_embeddings().weight,
        vocab.layouts,
        method="codebook",
        frozen_tokenizers=[frozen[layout.modality] for layout in vocab.layouts],
    )
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    loader = torch.utils.data.DataLoader(
        train_rows, batch_size=batch_size, shuffle=True, generator=torch.Generator().manual_seed(seed), drop_last=False
    )
    losses: list[float] = []
    model.train()
    while len(losses) < steps:
        for batch in loader:
            out_ = model(**batch)
            optimizer.zero_grad()
            out_.loss.backward()
            optimizer.step()
            losses.append(float(out_.loss.detach()))
            if len(losses) == steps:
                break
    model.eval()
    report = ClientReport(
        first_loss=losses[0],
        last_loss=sum(losses[-10:]) / len(losses[-10:]),
        steps=steps,
        vocab_size=vocab.size,
        round_trips=_round_trips(_documents(all_rows, vocab.eod_id), vocab),
    )
    train_ids = train_rows.tensors["input_ids"][train_rows.tensors["attention_mask"] == 1]
    for layout in vocab.layouts:
        report.unigram_entropy_bits[layout.modality] = unigram_entropy_bits(train_ids, layout)
        report.heldout_media_bits[layout.modality] = heldout_bits(model, test_rows, layout)
    documents = _documents(test_rows, vocab.eod_id) + _documents(train_rows, vocab.eod_id)  # held-out first
    from transformers import AutoTokenizer

    text_tokenizer = AutoTokenizer.from_pretrained(pack_dir / TOKENIZER_DIR)
    _sample(model, vocab, frozen, documents, report, out, seed, text_tokenizer)
    return report


def _layouts_of_inputs(record: dict, vocab: JointVocabulary) -> list[VocabLayout]:
    """Each input's placed layout (inputs of one tokenizer share a layout)."""
    by_modality = {layout.modality: layout for layout in vocab.layouts}
    return [by_modality[item["tokenizer"]["modality"]] for item in record["inputs"]]


def _round_trips(documents: list[list[int]], vocab: JointVocabulary) -> int:
    return sum(1 for document in documents for part in vocab.split(document) if isinstance(part, tuple))


def _sample(model, vocab: JointVocabulary, frozen: dict, documents: list[list[int]], report, out, seed, text_tokenizer):
    """One segment per layout, after the text that precedes that modality's media in a document."""
    for layout in vocab.layouts:
        start = layout.special_tokens[f"<|{layout.modality}_start|>"]
        example = next((d for d in documents if start in d), None)
        if example is None:
            continue
        prompt = example[: example.index(start)]
        (_, ids), *_ = [p for p in vocab.split(example) if isinstance(p, tuple) and p[0] == layout.modality]
        prompt = prompt[-model.config.n_positions // 2 :] or [vocab.eod_id]
        shape = list(ids.shape[:-1])
        if None in layout.token_shape:  # a variable axis (audio frames): as many as fit after the prompt
            axis = layout.token_shape.index(None)
            room = (model.config.n_positions - len(prompt) - 2) // (math.prod(shape) // shape[axis] * ids.shape[-1])
            shape[axis] = max(1, min(shape[axis], room))
        segment = sample_segment(model, prompt, layout, tuple(shape), seed=seed)
        report.prompts.append(text_tokenizer.decode([t for t in prompt if t < vocab.text_size and t != vocab.eod_id]))
        [sampled] = layout.media_segments(segment)
        tokenizer = frozen[layout.modality]
        decoded = tokenizer.decode_media(sampled[None])
        report.sampled.append(tuple(decoded.shape))
        if out is not None:
            report.samples.append(str(_write_sample(Path(out), layout.modality, decoded, tokenizer)))


def _write_sample(out: Path, modality: str, decoded: torch.Tensor, tokenizer) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"sample_{modality}{modality_entry(modality).sample_suffix}"
    tokenizer.input_spec.write_file(decoded[0], path)
    return path


def run_llm_client(frozen: list, media: list, captions: list[str], *, steps: int = 300, seed: int = 0) -> ClientReport:
    """The whole path for media in memory: `frozen`: FrozenTokenizers; `media[i]`: items for
    frozen[i] (uint8 HxWx3 images, or 1-D / (1, T) float audio at the tokenizer's rate), one per
    caption. Writes them as files, tokenizes, packs with the captions and trains."""
    from mmtok.pack import PackSettings, run_pack
    from mmtok.pack_text import open_text
    from mmtok.tokenize import tokenize

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        texts, shards = [], []
        for t, (tokenizer, items) in enumerate(zip(frozen, media)):
            folder = tmp / f"media_{t}"
            folder.mkdir()
            for i, (item, caption) in enumerate(zip(items, captions)):
                name = f"{t}_{i:04d}{modality_entry(tokenizer.modality).sample_suffix}"
                tokenizer.input_spec.write_file(item, folder / name)
                texts.append({"key": name, "text": caption})
            tokenize(tokenizer.path, folder, tmp / f"shards_{t}", num_workers=0, progress=False)
            shards.append(tmp / f"shards_{t}")
        (tmp / "texts.jsonl").write_text("".join(json.dumps(t) + "\n" for t in texts))
        build_text_tokenizer(texts=captions).save_pretrained(tmp / "text_tokenizer")
        longest = _longest_document(shards)
        run_pack(
            shards,
            tmp / "pack",
            PackSettings(seq_len=longest + 64, documents="whole", shuffle=True, seed=seed),
            text_source=open_text(str(tmp / "texts.jsonl")),
            text_tokenizer=str(tmp / "text_tokenizer"),
        )
        return train_on_pack(tmp / "pack", steps=steps, seed=seed, heldout_fraction=0.0)


def _longest_document(shards: list[Path]) -> int:
    """The most ids one item's media takes (framed), over the shards: rows must hold a whole item."""
    import pyarrow.compute as pc

    from mmtok.shards import shard_files

    longest = 0
    for folder in shards:
        for path in shard_files(folder):
            import pyarrow.parquet as pq

            lengths = pc.list_value_length(pq.read_table(path, columns=["ids"]).column("ids"))
            longest = max(longest, int(pc.max(lengths).as_py()))
    return longest + 16  # start, end and row markers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    text = sub.add_parser("text-tokenizer", help="train a small byte-level BPE offline and save it")
    text.add_argument("out_dir")
    text.add_argument("--texts", default=None, help="a jsonl table whose 'text' fields join the training text")
    text.add_argument("--vocab-size", type=int, default=1000)
    train = sub.add_parser("train", help="train the tiny LM on a pack, report, sample media")
    train.add_argument("pack_dir")
    train.add_argument("--steps", type=int, default=300)
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--batch-size", type=int, default=8)
    train.add_argument("--width", type=int, default=128)
    train.add_argument("--layers", type=int, default=2)
    train.add_argument("--out", default=None, help="where the sampled media go")
    args = parser.parse_args()
    if args.command == "text-tokenizer":
        texts = [json.loads(line)["text"] for line in Path(args.texts).read_text().splitlines()] if args.texts else []
        build_text_tokenizer(args.vocab_size, texts).save_pretrained(args.out_dir)
        print(f"text tokenizer in {args.out_dir}")
        return
    report = train_on_pack(
        args.pack_dir,
        steps=args.steps,
        seed=args.seed,
        batch_size=args.batch_size,
        width=args.width,
        layers=args.layers,
        out=args.out,
    )
    print(json.dumps(report.__dict__, indent=2, default=str))


if __name__ == "__main__":
    main()
