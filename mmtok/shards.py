"""The token shard format: its writer, and a torch dataset that reads it back for LLM training.

`mmtok tokenize` (mmtok.tokenize) writes into its output directory (a local folder or an fsspec
URL such as s3://bucket/shards), through `ShardWriter` and `mmtok.storage.Folder.write_atomic`:

    shard-000000.parquet, ...   one row per sample: key, ids, token_shape, source, index, and the
                                media's metadata from its input spec (size, sample rate, gain_db, ...)
    errors/shard-000000.jsonl   the inputs of that shard that failed (only where some did)
    errors.jsonl                all of them, in shard order (written at the end)
    job.json                    the settings that fix which rows exist (checked on every restart)
    manifest.json               tokenizer checksum, vocab layout, counts, throughput (written at the end)

`ids` is one example's ids flattened in the vocab layout's order (codebook-minor or -major), or,
for a job run with --llm-ids, that example's framed LLM ids (`VocabLayout.to_llm_ids`).
`token_shape` is the ids' shape before flattening, codebook axis included. Each shard's own counts
sit in its parquet schema metadata, so the manifest is written without rereading the ids.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from mmtok import distributed
from mmtok.storage import Folder
from mmtok.vocab import VocabLayout

MANIFEST_FILE, ERRORS_FILE, JOB_FILE, ERRORS_DIR = "manifest.json", "errors.jsonl", "job.json", "errors"
SHARD_PATTERN = "shard-*.parquet"
SHARD_NAME = re.compile(r"shard-[0-9]{6,}\.parquet")  # what shard_name writes: a bare name, never a path


def shard_name(index: int) -> str:
    return f"shard-{index:06d}.parquet"


def errors_name(shard: str) -> str:
    """Where a shard's failed inputs are recorded, relative to the output directory."""
    return f"{ERRORS_DIR}/{shard.removesuffix('.parquet')}.jsonl"


def shard_files(output_dir: str | Path | Folder) -> list[Path | str]:
    """The completed shards of an output directory, in order (for `datasets` or `pyarrow.dataset`):
    local Paths, or URLs for a directory on an object store."""
    folder = output_dir if isinstance(output_dir, Folder) else Folder(output_dir)
    return [folder.file(name) for name in folder.names(SHARD_PATTERN)]


def read_manifest(output_dir: str | Path | Folder) -> dict:
    """manifest.json of a finished job; every shard it names must be a shard file of this folder
    (a manifest edited to name "../elsewhere.parquet" would make readers open files outside it)."""
    folder = output_dir if isinstance(output_dir, Folder) else Folder(output_dir)
    if not folder.exists(MANIFEST_FILE):
        raise FileNotFoundError(
            f"{folder.file(MANIFEST_FILE)} is missing: the tokenize job writing {folder} has not finished"
        )
    manifest = json.loads(folder.read_text(MANIFEST_FILE))
    shards = manifest.get("shards")
    if not isinstance(shards, list):
        raise ValueError(f"{folder.file(MANIFEST_FILE)} lists no shards")
    for name in shards:
        if not isinstance(name, str) or not SHARD_NAME.fullmatch(name):
            raise ValueError(
                f"{folder.file(MANIFEST_FILE)} names shard {name!r}, which is not a shard file of this folder "
                "(shard-NNNNNN.parquet)"
            )
    return manifest


def ids_dtype(id_limit: int) -> str:
    """The narrowest stored integer type for ids below `id_limit`."""
    return "uint16" if id_limit <= 2**16 else "int32"


STATS_KEY = b"mmtok"  # parquet schema metadata: the shard's own counts


def shard_stats(folder: Folder, name: str) -> dict:
    """A finished shard's counts (samples, tokens, errors, process), from its schema metadata."""
    import pyarrow.parquet as pq

    with folder.open(name) as f:
        return json.loads(pq.read_schema(f).metadata[STATS_KEY])


class ShardWriter:
    """Writes one shard's rows (and its errors) atomically. `info_fields` are the input spec's
    per-example metadata (name -> int, float or str), each a column."""

    def __init__(self, output_dir: Folder, source, info_fields: dict[str, type], dtype: str):
        import pyarrow as pa

        self.output_dir, self.source, self.dtype = output_dir, source, dtype
        self.info_fields = [*info_fields, "num_bytes"]
        columns = [
            ("key", pa.string()),
            ("ids", pa.list_(getattr(pa, dtype)())),
            ("token_shape", pa.list_(pa.int32())),
            ("source", pa.string()),
            ("index", pa.int64()),
        ]
        arrow_types = {float: pa.float64(), str: pa.string()}  # int otherwise
        columns += [(name, arrow_types.get(kind, pa.int64())) for name, kind in info_fields.items()]
        self.schema = pa.schema([*columns, ("num_bytes", pa.int64())])

    def write(self, shard: int, rows: list[dict], errors: list[tuple[int, str]], stats: dict) -> dict:
        """rows: {"index", "ids" (1-D numpy), "token_shape", "info"}; errors: (index, reason)."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        rows = sorted(rows, key=lambda r: r["index"])
        lengths = np.array([len(r["ids"]) for r in rows], dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
        values = np.concatenate([r["ids"] for r in rows]) if rows else np.zeros(0, self.dtype)
        columns = {
            "key": pa.array([self.source.key(r["index"]) for r in rows], pa.string()),
            "ids": pa.ListArray.from_arrays(pa.array(offsets), pa.array(values.astype(self.dtype))),
            "token_shape": pa.array([r["token_shape"] for r in rows], pa.list_(pa.int32())),
            "source": pa.array([self.source.describe(r["index"]) for r in rows], pa.string()),
            "index": pa.array([r["index"] for r in rows], pa.int64()),
            **{name: [r["info"][name] for r in rows] for name in self.info_fields},
        }
        stats = {**stats, "samples": len(rows), "tokens": int(lengths.sum()), "errors": len(errors)}
        table = pa.table(columns, schema=self.schema.with_metadata({STATS_KEY: json.dumps(stats)}))
        name = shard_name(shard)
        # The error file goes first: a committed shard means its errors are committed too.
        if errors:
            lines = [
                {"key": self.source.key(i), "source": self.source.describe(i), "reason": reason}
                for i, reason in sorted(errors)
            ]
            self.output_dir.write_text_atomic(errors_name(name), "".join(json.dumps(line) + "\n" for line in lines))
        else:
            self.output_dir.remove(errors_name(name))
        self.output_dir.write_atomic(name, lambda f: pq.write_table(table, f, compression="zstd"))
        return stats


class ShardDataset(IterableDataset):
    """The rows of a finished tokenize job, for training a language model.

    Yields {"key", "ids" (1-D LongTensor), "token_shape"} per sample, shards in order; or, with
    `pack_to`, LongTensor blocks of exactly `pack_to` ids made by concatenating the samples' ids
    with no padding (the last incomplete block is dropped).

    llm_ids=True gives framed LLM ids (start, codes at their vocabulary offsets, end) whatever the
    shards store; False gives plain codebook ids. `vocab` places them elsewhere in the LLM
    vocabulary (e.g. after a text vocabulary: `layout.with_base_offset(len(text_tokenizer))`);
    by default the tokenizer's own layout from the manifest.

    Shards are split across torch.distributed ranks and then DataLoader workers, so every shard is
    read exactly once per pass (ranks and workers beyond the number of shards get nothing).
    """

    def __init__(
        self,
        output_dir: str | Path,
        *,
        llm_ids: bool = True,
        pack_to: int | None = None,
        vocab: VocabLayout | None = None,
        rank: int | None = None,
        world_size: int | None = None,
    ):
        super().__init__()
        if pack_to is not None and pack_to < 1:
            raise ValueError(f"pack_to must be positive, got {pack_to}")
        self.output_dir = output_dir if isinstance(output_dir, Folder) else Folder(output_dir)
        manifest = read_manifest(self.output_dir)
        self.shards = list(manifest["shards"])
        self.stored_vocab = VocabLayout.from_json(manifest["vocab"])
        self.stored_llm_ids = bool(manifest["llm_ids"])
        self.vocab = vocab or self.stored_vocab
        self.llm_ids, self.pack_to = llm_ids, pack_to
        self.num_samples = manifest["counts"]["samples"]
        self.rank = distributed.rank() if rank is None else rank
        self.world_size = distributed.world_size() if world_size is None else world_size

    def _my_shards(self) -> list[str]:
        worker = get_worker_info()
        workers, worker_id = (worker.num_workers, worker.id) if worker else (1, 0)
        return self.shards[self.rank * workers + worker_id :: self.world_size * workers]

    def _convert(self, flat: torch.Tensor, token_shape: list[int]) -> torch.Tensor:
        if self.llm_ids == self.stored_llm_ids and self.vocab == self.stored_vocab:
            return flat
        if self.stored_llm_ids:
            ids = self.stored_vocab.media_segments(flat)[0]
        else:
            ids = self.stored_vocab.unflatten_ids(flat, token_shape)
        return self.vocab.to_llm_ids(ids) if self.llm_ids else self.vocab.flatten_ids(ids)

    def samples(self) -> Iterator[dict]:
        import pyarrow.parquet as pq

        for name in self._my_shards():
            with self.output_dir.open(name) as f:
                for batch in pq.ParquetFile(f).iter_batches(batch_size=1024, columns=["key", "ids", "token_shape"]):
                    ids = batch.column("ids")
                    offsets = ids.offsets.to_numpy()
                    values = ids.flatten().to_numpy().astype(np.int64)
                    offsets = offsets - offsets[0]  # a batch may be a slice of the column
                    shapes = batch.column("token_shape").to_pylist()
                    for row, key in enumerate(batch.column("key").to_pylist()):
                        flat = torch.from_numpy(values[offsets[row] : offsets[row + 1]])
                        yield {"key": key, "ids": self._convert(flat, shapes[row]), "token_shape": tuple(shapes[row])}

    def __iter__(self) -> Iterator:
        if self.pack_to is None:
            yield from self.samples()
            return
        pending: list[torch.Tensor] = []
        held = 0
        for sample in self.samples():
            pending.append(sample["ids"])
            held += len(sample["ids"])
            if held >= self.pack_to:
                stream = torch.cat(pending)
                cut = len(stream) // self.pack_to * self.pack_to
                yield from stream[:cut].split(self.pack_to)
                pending, held = [stream[cut:]], len(stream) - cut
