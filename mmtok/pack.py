"""`mmtok pack`: tokenized shards (+ their captions or transcripts) -> the files LLM trainers read.

Each shard row becomes one document: the item's text and media ids interleaved by a template
("{text}{media}" by default: a caption, then the image framed by its layout's start/end tokens),
ending with the end-of-document id. The text vocabulary comes first; each tokenizer's layout is
placed after it (`extend_tokenizer`), so one id space holds text and every modality. Documents go
out in a fixed order (the inputs one after another, or with --shuffle a seeded mix of the inputs,
shuffled within windows of --shuffle-buffer documents) to every format asked for:

    OUT/pack.json                 settings, the joint vocabulary (layouts at their offsets, eod id),
                                  counts, outputs; written last: its presence means the pack is complete
    OUT/tokenizer/                the extended Hugging Face tokenizer (AutoTokenizer.from_pretrained)
    OUT/megatron/documents.{bin,idx}   a Megatron indexed dataset, one sequence per document (megatron's
                                  GPTDataset packs documents itself; its reset_attention_mask uses the eod id)
    OUT/parquet/part-*.parquet    rows of exactly seq_len ids packed under the document policy
                                  (mmtok.packing), with attention_mask, position_ids, document_lengths
    OUT/documents.parquet         where each document came from: input, key, index, its token counts
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from tqdm import tqdm

from mmtok import ragged
from mmtok.llm_vocab import END_OF_DOCUMENT, JointVocabulary, bare_text_tokenizer, extend_tokenizer
from mmtok.megatron import IndexedDatasetWriter, dtype_for_vocab
from mmtok.packed_parquet import PackedParquetWriter
from mmtok.packing import POLICIES, Packer
from mmtok.shards import read_manifest
from mmtok.storage import Folder, is_url
from mmtok.vocab import VocabLayout

log = logging.getLogger(__name__)

PACK_FILE, TOKENIZER_DIR, MEGATRON_PREFIX = "pack.json", "tokenizer", "megatron/documents"
PARQUET_DIR, DOCUMENTS_FILE = "parquet", "documents.parquet"
FORMATS = ("megatron", "parquet")
MISSING_TEXT = ("error", "drop", "keep")  # an item without text: refuse the job, leave it out, or keep its media
READ_BATCH = 1024  # shard rows framed per numpy call


@dataclasses.dataclass
class PackSettings:
    seq_len: int = 2048
    documents: str = "split"  # the boundary policy of the parquet rows (mmtok.packing.POLICIES)
    templates: dict[str, str] = dataclasses.field(default_factory=dict)  # modality ("" for any) -> template
    shuffle: bool = False
    seed: int = 0
    shuffle_buffer: int = 10_000  # documents held for shuffling
    bos: bool = False  # start each document with the text tokenizer's bos token
    missing_text: str = "error"
    formats: tuple[str, ...] = FORMATS
    rows_per_file: int = 10_000

    def __post_init__(self):
        if self.documents not in POLICIES:
            raise ValueError(f"documents must be one of {POLICIES}, got {self.documents!r}")
        if self.missing_text not in MISSING_TEXT:
            raise ValueError(f"missing_text must be one of {MISSING_TEXT}, got {self.missing_text!r}")
        unknown = set(self.formats) - set(FORMATS)
        if unknown or not self.formats:
            raise ValueError(f"formats must be some of {FORMATS}, got {list(self.formats)}")
        if self.seq_len < 2 or self.shuffle_buffer < 1 or self.rows_per_file < 1:
            raise ValueError("seq_len must be >= 2, shuffle_buffer and rows_per_file >= 1")
        self.formats = tuple(self.formats)


class ShardInput:
    """A finished `mmtok tokenize` folder, read as framed LLM ids of a layout placed elsewhere."""

    def __init__(self, location: str | Path):
        self.location = str(location)
        if not is_url(self.location) and not Path(location).is_dir():
            raise FileNotFoundError(f"shard folder {location} does not exist (give folders `mmtok tokenize` wrote)")
        self.folder = Folder(location)
        self.manifest = read_manifest(self.folder)
        self.layout = VocabLayout.from_json(self.manifest["vocab"])
        self.stored_llm_ids = bool(self.manifest["llm_ids"])
        self.num_samples = int(self.manifest["counts"]["samples"])

    @property
    def tokenizer_identity(self) -> str:
        """Inputs made by the same tokenizer share one place in the vocabulary."""
        placed = ("base_offset", "offsets", "special_tokens")  # where it sits, not what it is
        layout = {k: v for k, v in self.layout.to_json().items() if k not in placed}
        return json.dumps([self.manifest["tokenizer"].get("weights_sha256"), layout], sort_keys=True)

    def batches(self, layout: VocabLayout) -> Iterator[tuple[list[str], list[int], list[str], np.ndarray, np.ndarray]]:
        """(keys, indexes, sources, framed ids, their lengths) per batch of rows, in shard order."""
        import pyarrow.parquet as pq

        shift = layout.base_offset - self.layout.base_offset
        for name in self.manifest["shards"]:
            with self.folder.open(name) as f:
                columns = ["key", "index", "source", "ids", "token_shape"]
                for batch in pq.ParquetFile(f).iter_batches(batch_size=READ_BATCH, columns=columns):
                    ids = batch.column("ids")
                    offsets = ids.offsets.to_numpy()
                    values = ids.values.to_numpy()[offsets[0] : offsets[-1]].astype(np.int64)
                    lengths = np.diff(offsets).astype(np.int64)
                    if self.stored_llm_ids:  # framed already, at the stored offsets: same layout, moved
                        framed, framed_lengths = values + shift, lengths
                    else:
                        framed, framed_lengths = layout.frame_flat(
                            values, lengths, batch.column("token_shape").to_pylist()
                        )
                    yield (
                        batch.column("key").to_pylist(),
                        batch.column("index").to_pylist(),
                        batch.column("source").to_pylist(),
                        framed,
                        framed_lengths,
                    )


class Template:
    """ "{text}" and "{media}" between literal strings, e.g. "Caption: {text}\\n{media}"."""

    def __init__(self, text: str, text_tokenizer):
        self.text = text
        pieces = re.split(r"(\{text\}|\{media\})", text)
        if pieces.count("{media}") != 1 or pieces.count("{text}") > 1:
            raise ValueError(f"template {text!r} needs {{media}} exactly once and {{text}} at most once")
        self.uses_text = "{text}" in pieces
        self.parts: list = []  # "text", "media" or a literal's ids
        for piece in pieces:
            if piece in ("{text}", "{media}"):
                self.parts.append(piece[1:-1])
            elif piece:
                self.parts.append(np.asarray(text_tokenizer.encode(piece, add_special_tokens=False), dtype=np.int64))


@dataclasses.dataclass
class Documents:
    """A batch of documents: their ids back to back, and per document its length, input, key,
    row index and media token count."""

    ids: np.ndarray
    lengths: np.ndarray
    inputs: np.ndarray
    keys: list[str]
    indexes: np.ndarray
    media_tokens: np.ndarray

    def __len__(self) -> int:
        return len(self.lengths)

    def take(self, order: np.ndarray) -> Documents:
        ids, lengths = ragged.take(self.ids, self.lengths, order)
        keys = [self.keys[i] for i in order.tolist()]
        return Documents(ids, lengths, self.inputs[order], keys, self.indexes[order], self.media_tokens[order])

    @classmethod
    def join(cls, batches: list[Documents]) -> Documents:
        return cls(
            np.concatenate([b.ids for b in batches]),
            np.concatenate([b.lengths for b in batches]),
            np.concatenate([b.inputs for b in batches]),
            [key for b in batches for key in b.keys],
            np.concatenate([b.indexes for b in batches]),
            np.concatenate([b.media_tokens for b in batches]),
        )


class DocumentBuilder:
    """Shard rows -> documents, under the templates, the text source and the missing-text policy;
    a parquet batch at a time (mmtok.ragged), since a Python step per document was pack's bottleneck."""

    def __init__(self, settings: PackSettings, text_tokenizer, text_source, vocab: JointVocabulary):
        self.settings, self.text_tokenizer, self.text_source = settings, text_tokenizer, text_source
        default = "{text}{media}" if text_source is not None else "{media}"
        self.templates = {m: Template(t, text_tokenizer) for m, t in {"": default, **settings.templates}.items()}
        for template in self.templates.values():
            if template.uses_text and text_source is None:
                raise ValueError(f"template {template.text!r} uses {{text}}, but no text source was given")
        bos = text_tokenizer.bos_token_id if settings.bos else None
        if settings.bos and bos is None:
            raise ValueError("--bos: the text tokenizer has no bos token")
        self.head = np.asarray([] if bos is None else [bos], dtype=np.int64)
        self.tail = np.asarray([vocab.eod_id], dtype=np.int64)
        self.dropped: list[str] = []  # keys left out for want of text
        self.without_text = 0

    def documents(self, number: int, shard_input: ShardInput, layout: VocabLayout) -> Iterator[Documents]:
        template = self.templates.get(layout.modality, self.templates[""])
        for keys, indexes, sources, framed, lengths in shard_input.batches(layout):
            text, text_lengths, has_text = self._texts(template, keys, indexes, sources)
            parts = [(self.head, None)]
            for part in template.parts:
                if isinstance(part, np.ndarray):  # a literal's ids
                    parts.append((part, None))
                else:
                    parts.append((framed, lengths) if part == "media" else (text, text_lengths))
            ids, doc_lengths = ragged.concat_parts([*parts, (self.tail, None)], len(keys))
            batch = Documents(
                ids, doc_lengths, np.full(len(keys), number), list(keys), np.asarray(indexes, np.int64), lengths
            )
            if template.uses_text and not has_text.all():
                if self.settings.missing_text == "drop":
                    self.dropped += [k for k, present in zip(keys, has_text) if not present]
                    batch = batch.take(np.flatnonzero(has_text))
                else:
                    self.without_text += int((~has_text).sum())
            if len(batch):
                yield batch

    def _texts(self, template: Template, keys, indexes, sources):
        """The batch's text ids (flat), their lengths (0 where there is none) and which rows have text."""
        if not template.uses_text:
            return np.zeros(0, np.int64), np.zeros(len(keys), np.int64), np.ones(len(keys), bool)
        texts = [self.text_source.text(k, i, s) for k, i, s in zip(keys, indexes, sources)]
        has_text = np.asarray([t is not None for t in texts], dtype=bool)
        if not has_text.all() and self.settings.missing_text == "error":
            missing = [k for k, present in zip(keys, has_text) if not present]
            raise ValueError(
                f"{len(missing)} item(s) of this batch have no text, e.g. {missing[:3]} "
                "(--missing-text drop leaves them out, keep packs their media alone)"
            )
        encoded = [e if present else [] for e, present in zip(self._encode([t or "" for t in texts]), has_text)]
        lengths = np.asarray([len(e) for e in encoded], dtype=np.int64)
        flat = np.fromiter((v for e in encoded for v in e), dtype=np.int64, count=int(lengths.sum()))
        return flat, lengths, has_text

    def _encode(self, texts: list[str]) -> list[list[int]]:
        # A fast tokenizer's Rust core directly: transformers' per-item wrapping cost as much as the encoding.
        backend = getattr(self.text_tokenizer, "backend_tokenizer", None)
        if backend is not None:
            return [e.ids for e in backend.encode_batch(texts, add_special_tokens=False)]
        return self.text_tokenizer(texts, add_special_tokens=False)["input_ids"]


def _ordered(streams: list[Iterator[Documents]], counts: list[int], settings, rng) -> Iterator[Documents]:
    """The inputs one after another; or, with shuffle, windows of `shuffle_buffer` documents, each
    window's documents drawn from the inputs in proportion to what they have left (a random
    permutation of every document's input label: the same as drawing each next document's input
    with probability proportional to its remaining documents), then shuffled within the window."""
    if not settings.shuffle:
        for stream in streams:
            yield from stream
        return
    labels = rng.permutation(np.repeat(np.arange(len(streams)), counts))
    held: list[Documents | None] = [None] * len(streams)

    def draw(source: int, wanted: int) -> list[Documents]:
        taken, got = [], 0
        while got < wanted:
            if held[source] is None:
                held[source] = next(streams[source], None)
                if held[source] is None:  # fewer documents than the manifest counted (dropped): move on
                    break
            batch = held[source]
            n = min(wanted - got, len(batch))
            taken.append(batch.take(np.arange(n)))
            held[source] = batch.take(np.arange(n, len(batch))) if n < len(batch) else None
            got += n
        return taken

    def windows() -> Iterator[list[Documents]]:
        for start in range(0, len(labels), settings.shuffle_buffer):
            wanted = np.bincount(labels[start : start + settings.shuffle_buffer], minlength=len(streams))
            yield [b for source, n in enumerate(wanted.tolist()) for b in draw(source, n)]
        for source in range(len(streams)):  # anything the manifest's counts did not foresee
            yield draw(source, 2**62)

    for window in windows():
        if window:
            joined = Documents.join(window)
            yield joined.take(rng.permutation(len(joined)))


def load_text_tokenizer(path: str | None):
    """A transformers tokenizer from a local folder (no hub here), or the bare one (eod only)."""
    try:
        import transformers
    except ImportError as error:
        raise ImportError('mmtok pack needs transformers and tokenizers: pip install "mmtok[llm]"') from error
    if path is None:
        return bare_text_tokenizer()
    if not Path(path).is_dir():
        raise FileNotFoundError(f"text tokenizer {path} is not a folder written by save_pretrained")
    return transformers.AutoTokenizer.from_pretrained(path)


def joint_vocabulary(text_tokenizer, inputs: list[ShardInput]) -> tuple[JointVocabulary, list[VocabLayout]]:
    """Adds each distinct tokenizer's layout to `text_tokenizer` (eod first, if it has none);
    returns the vocabulary and each input's placed layout."""
    if text_tokenizer.eos_token_id is None:
        text_tokenizer.add_special_tokens({"eos_token": END_OF_DOCUMENT})
    text_size = len(text_tokenizer)
    distinct: dict[str, VocabLayout] = {}
    for shard_input in inputs:
        distinct.setdefault(shard_input.tokenizer_identity, shard_input.layout)
    placed = dict(zip(distinct, extend_tokenizer(text_tokenizer, *distinct.values())))
    vocab = JointVocabulary(text_size=text_size, eod_id=text_tokenizer.eos_token_id, layouts=list(placed.values()))
    return vocab, [placed[i.tokenizer_identity] for i in inputs]


def run_pack(
    inputs: list[str | Path],
    out_dir: str | Path,
    settings: PackSettings | None = None,
    *,
    text_source=None,
    text_tokenizer: str | None = None,
    overwrite: bool = False,
) -> dict:
    """Packs the shard folders `inputs` into `out_dir` (local); returns pack.json's content.
    Running it again with the same inputs and settings finds the pack complete and does nothing."""
    settings = settings or PackSettings()
    if is_url(str(out_dir)):
        raise ValueError(f"{out_dir}: mmtok pack writes a local folder (copy it to an object store afterwards)")
    out = Path(out_dir)
    shard_inputs = [ShardInput(location) for location in inputs]
    tokenizer = load_text_tokenizer(text_tokenizer)
    vocab, layouts = joint_vocabulary(tokenizer, shard_inputs)
    unknown = set(settings.templates) - {"", *(layout.modality for layout in layouts)}
    if unknown:
        raise ValueError(
            f"templates for {sorted(unknown)}, but the inputs hold {sorted({placed.modality for placed in layouts})}"
        )
    request = {
        "inputs": [
            {"path": i.location, "tokenizer": i.manifest["tokenizer"], "samples": i.num_samples} for i in shard_inputs
        ],
        "text": text_source.describe() if text_source is not None else None,
        "text_tokenizer": str(Path(text_tokenizer).resolve()) if text_tokenizer else None,
        "settings": dataclasses.asdict(settings),
    }
    request = json.loads(json.dumps(request))  # tuples as lists, as they come back from pack.json
    if (out / PACK_FILE).exists():
        done = json.loads((out / PACK_FILE).read_text())
        if {k: done.get(k) for k in request} == request and not overwrite:
            log.info("%s is complete for these inputs and settings: nothing to do", out)
            return done
        if not overwrite:
            raise ValueError(f"{out} holds a pack made from other inputs or settings; pass --overwrite to replace it")
    for stale in (PACK_FILE, TOKENIZER_DIR, "megatron", PARQUET_DIR, DOCUMENTS_FILE):
        target = out / stale
        shutil.rmtree(target) if target.is_dir() else target.unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    counts = _write_outputs(out, settings, shard_inputs, layouts, vocab, tokenizer, text_source)
    seconds = time.perf_counter() - started
    tokenizer.save_pretrained(out / TOKENIZER_DIR)
    record = {
        **request,
        "vocab": vocab.to_json(),
        "ids_dtype": dtype_for_vocab(vocab.size).name,
        "outputs": counts.pop("outputs"),
        "counts": counts,
        "seconds": seconds,
        "tokens_per_second": counts["tokens"] / max(seconds, 1e-9),
    }
    (out / PACK_FILE).write_text(json.dumps(record, indent=2) + "\n")
    return record


def _write_outputs(out: Path, settings, shard_inputs, layouts, vocab, tokenizer, text_source) -> dict:
    import pyarrow as pa
    import pyarrow.parquet as pq

    dtype = dtype_for_vocab(vocab.size)
    builder = DocumentBuilder(settings, tokenizer, text_source, vocab)
    streams = [builder.documents(n, i, layout) for n, (i, layout) in enumerate(zip(shard_inputs, layouts))]
    rng = np.random.default_rng(settings.seed)
    batches = _ordered(streams, [i.num_samples for i in shard_inputs], settings, rng)
    packer = Packer(settings.seq_len, settings.documents, pad_id=vocab.eod_id)
    provenance: dict[str, list] = {"input": [], "key": [], "index": [], "tokens": [], "media_tokens": []}
    rows = padding = 0
    megatron = IndexedDatasetWriter(out / MEGATRON_PREFIX, dtype) if "megatron" in settings.formats else None
    parquet = (
        PackedParquetWriter(out / PARQUET_DIR, dtype.name, settings.rows_per_file)
        if "parquet" in settings.formats
        else None
    )
    total = sum(i.num_samples for i in shard_inputs)
    with megatron or contextlib.nullcontext(), parquet or contextlib.nullcontext():
        with tqdm(total=total, desc="pack", unit="doc") as progress:
            for batch in batches:
                provenance["input"].append(batch.inputs)
                provenance["key"] += batch.keys
                provenance["index"].append(batch.indexes)
                provenance["tokens"].append(batch.lengths)
                provenance["media_tokens"].append(batch.media_tokens)
                if megatron is not None:
                    megatron.add_documents(batch.ids, batch.lengths)
                if parquet is not None:
                    rows, padding = _add_rows(parquet, packer.push(batch.ids, batch.lengths), rows, padding)
                progress.update(len(batch))
        if parquet is not None:
            rows, padding = _add_rows(parquet, packer.finish(), rows, padding)
    arrays = {k: np.concatenate(v) if k != "key" and v else v for k, v in provenance.items()}
    arrays["document"] = np.arange(len(arrays["key"]))
    pq.write_table(pa.table({k: arrays[k] for k in ("document", *provenance)}), out / DOCUMENTS_FILE)
    outputs = {}
    if megatron is not None:
        outputs["megatron"] = {"prefix": MEGATRON_PREFIX, "dtype": dtype.name}
    if parquet is not None:
        outputs["parquet"] = {"folder": PARQUET_DIR, "files": parquet.files, "seq_len": settings.seq_len}
    tokens = int(np.sum(arrays["tokens"]))
    media = int(np.sum(arrays["media_tokens"]))
    return {
        "documents": len(arrays["key"]),
        "tokens": tokens,
        "media_tokens": media,
        "text_tokens": tokens - media,
        "dropped_without_text": len(builder.dropped),
        "dropped_examples": builder.dropped[:10],
        "kept_without_text": builder.without_text,
        "rows": rows,
        "padding_tokens": padding,
        "documents_cut": packer.documents_cut,
        "outputs": outputs,
    }


def _add_rows(parquet: PackedParquetWriter, packed, rows: int, padding: int) -> tuple[int, int]:
    """Writes finished rows; returns the running row and padding counts."""
    parquet.add(packed)
    return rows + len(packed), padding + packed.padding
