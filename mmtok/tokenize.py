"""`mmtok tokenize`: run a frozen tokenizer over a media dataset into parquet shards.

The plan is a pure function of the sorted input listing and the shard size: shard i holds items
[i*S, (i+1)*S) and is written by process i % world_size, in batches that never cross a shard. So
the rows (ids included: every shard is encoded in the same batches) do not depend on the number of
processes or on restarts. A shard file appears only when complete (written under a .tmp name,
then renamed, or on an object store copied to its final key), and a restarted job redoes exactly
the shards that have no committed file yet: nothing lost, nothing twice. The input and the output
directory may be local paths or fsspec URLs (mmtok.storage); the input may also be a Hugging Face
`datasets` dataset ("datasets:NAME_OR_PATH"). Layout of the output directory: see mmtok.shards.

What real corpora hold, and what the job does with it:
- an item that fails anywhere (reading, decoding, preparing, encoding, framing its LLM ids) is an
  error line naming it and the reason (errors.jsonl); a batch that fails is encoded again item by
  item, so only the bad item is listed and every item gets the same row or error in any batch;
- a long recording or video (more than STREAM_ABOVE prepared values) is read, prepared and
  encoded piece by piece through the tokenizer's streaming path, so memory follows the piece (the
  ids of a causal tokenizer equal the whole item's; tokenizers that do not stream, such as
  converted pretrained codecs, encode every item whole);
- files the listing passes over (other extensions, link loops) are counted by reason in the
  manifest's `skipped`; links are followed and a dangling one is an error line;
- one job at a time holds an output folder (mmtok.job_lock); a restarted job redoes the shards
  whose inputs changed since they were written (size and modification time, or the object
  store's version), as well as those never committed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import os
import re
import signal
import time
from collections.abc import Iterator
from contextlib import nullcontext
from pathlib import Path
from typing import NamedTuple

import torch
from torch.utils.data import DataLoader, Dataset

from mmtok.cpu_threads import limit_threads_per_process
from mmtok.data.sources import open_source
from mmtok.job_lock import FolderLock
from mmtok.shards import (
    ERRORS_DIR,
    ERRORS_FILE,
    JOB_FILE,
    MANIFEST_FILE,
    SHARD_PATTERN,
    ShardWriter,
    errors_name,
    ids_dtype,
    read_manifest,
    shard_name,
    shard_stats,
)
from mmtok.storage import Folder, is_url

logger = logging.getLogger("mmtok.tokenize")

# A prepared item of more values than this (16 MiB of float32: about 3 minutes of 24 kHz mono, or
# 21 frames of 256 x 256) is prepared and encoded in pieces of STREAM_PIECE values instead of whole.
STREAM_ABOVE = 2**22
STREAM_PIECE = 2**18
# --deterministic's encode shape when none is given: every encode call is a batch of this many.
DETERMINISTIC_BATCH = 16
LOGGED_ERRORS = 10  # errors also logged as they happen; the rest go to errors.jsonl only
# Model settings that decide how a long input is cut into pieces (written in the encode policy).
LONG_MEDIA_SETTINGS = ("chunk_seconds", "chunk_latent_frames", "window_patches", "context_patches")


class TokenizeInterrupted(RuntimeError):
    """Ctrl-C or SIGTERM stopped the job after a completed shard; running it again resumes."""


# -- decoding, in DataLoader workers --------------------------------------------------------------
class _Item(NamedTuple):
    index: int
    tensor: torch.Tensor | None  # one prepared example, without batch axis
    info: dict | None  # its metadata from the input spec, plus num_bytes
    error: str | None
    streamed: bool = False  # too long to prepare whole: the main process streams it (_encode_streamed)


def _reason(error: BaseException) -> str:
    # Reprs in messages (PIL's "<_io.BytesIO object at 0x...>") would make errors.jsonl differ per run.
    return re.sub(r" at 0x[0-9a-fA-F]+", "", f"{type(error).__name__}: {error}")


class _PreparedItems(Dataset):
    """Item i of the source through the tokenizer's input spec; a failure becomes a record."""

    def __init__(self, source, spec, streams: bool = False):
        self.source, self.spec, self.streams = source, spec, streams

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, index: int) -> _Item:
        try:
            with self.source.open(index) as file:
                size = self.spec.stream_size(file) if self.streams else None
                if size is not None and size > STREAM_ABOVE:
                    return _Item(index, None, {"num_bytes": file.seek(0, os.SEEK_END)}, None, streamed=True)
                data = file.read()
            # A spec that reads companion files (BrainVision EEG) gets the file's path where there is one.
            local_path = getattr(self.source, "local_path", None) if self.spec.reads_paths else None
            path = local_path(index) if local_path is not None else None
            prepared = self.spec.prepare(data if path is None else path)
            if prepared.tensor.shape[0] != 1:
                raise ValueError(f"one input decoded to {prepared.tensor.shape[0]} examples")
            return _Item(index, prepared.tensor[0], {**prepared.info[0], "num_bytes": len(data)}, None)
        except Exception as error:  # whatever a decoder raises, the job records it and goes on
            return _Item(index, None, None, _reason(error))


def _keep_items(items: list[_Item]) -> list[_Item]:
    return items  # examples of different sizes: FrozenTokenizer.encode_many batches them


def _encode_items(frozen, tensors: list[torch.Tensor], options: dict) -> list[torch.Tensor | str]:
    """Ids (on the CPU) per prepared example, or the reason it cannot be encoded. A batch that
    fails in any way (a size the tokenizer refuses, a kernel error, running out of memory) is
    encoded again one example at a time, so only the examples that fail alone are refused (with
    `fixed_batch` in `options`, at the batch's shape, so their ids are those of the batch)."""
    try:
        return [ids.cpu() for ids in frozen.encode_many(tensors, **options)]
    except Exception as error:
        if len(tensors) == 1:  # already alone: its error is the answer
            return [f"encode: {_reason(error)}"]
        return [_encode_alone(frozen, x, options) for x in tensors]


def _encode_alone(frozen, x: torch.Tensor, options: dict) -> torch.Tensor | str:
    try:
        return frozen.encode_many([x], **options)[0].cpu()
    except Exception as error:
        return f"encode: {_reason(error)}"


class ShardEncoder:
    """One planned batch of prepared items -> its shard rows and its error records: the encode
    step both engines run (DataLoader batches here, Ray actors in mmtok.tokenize_ray)."""

    def __init__(self, frozen, source, vocab, *, llm_ids: bool, dtype: str, precision: str, options: dict, fixed_batch):
        self.frozen, self.source, self.vocab = frozen, source, vocab
        self.llm_ids, self.dtype, self.options, self.fixed_batch = llm_ids, dtype, options, fixed_batch
        self.batch_options = options if fixed_batch is None else {**options, "fixed_batch": fixed_batch}
        device = frozen.device.type
        self.autocast = torch.autocast(device, dtype=torch.bfloat16) if precision == "bf16" else nullcontext()
        # With a fixed encode batch, items wait here by bucket until fixed_batch of them can fill a
        # call: otherwise a planned batch of many lengths would be one call per bucket, each filled
        # with copies (48 speech clips: 37 s -> over 12 min). At most buckets x fixed_batch wait.
        self.waiting: dict[tuple, list[_Item]] = {}

    def encode(self, batch: list[_Item]) -> tuple[list[dict], list[tuple[int, str]]]:
        """(rows, [(index, reason)]) for the items of `batch`, in any order; with a fixed encode
        batch, for those items (of this batch or earlier ones) whose bucket is full: `flush` gives
        the rest."""
        errors = [(item.index, item.error) for item in batch if item.error is not None]
        whole = [item for item in batch if item.error is None and not item.streamed]
        if self.fixed_batch is not None:
            whole = self._full_buckets(whole)
        rows, more_errors = self._encode(whole, [item for item in batch if item.streamed])
        return rows, errors + more_errors

    def flush(self) -> tuple[list[dict], list[tuple[int, str]]]:
        """Rows and errors of the items still waiting for their bucket to fill (at a shard's end)."""
        waiting = [item for group in self.waiting.values() for item in group]
        self.waiting.clear()
        return self._encode(waiting, [])

    def _full_buckets(self, items: list[_Item]) -> list[_Item]:
        ready = []
        for item in items:
            group = self.waiting.setdefault(self.frozen.model.batch_key(item.tensor, bucketed=True), [])
            group.append(item)
            if len(group) == self.fixed_batch:
                ready += group
                group.clear()
        return ready

    def _encode(self, whole: list[_Item], streamed: list[_Item]) -> tuple[list[dict], list[tuple[int, str]]]:
        with self.autocast:
            encoded = _encode_items(self.frozen, [item.tensor for item in whole], self.batch_options) if whole else []
            results = list(zip(whole, encoded))
            for item in streamed:
                try:
                    ids, info = _encode_streamed(self.frozen, self.source, item.index, self.options)
                    results.append((item._replace(info={**info, **item.info}), ids))
                except Exception as error:  # the same isolation, and reason, as a whole item's
                    results.append((item, _reason(error)))
        rows, errors = [], []
        for item, ids in results:
            if isinstance(ids, str):
                errors.append((item.index, ids))
                continue
            try:
                flat = self.vocab.to_llm_ids(ids) if self.llm_ids else self.vocab.flatten_ids(ids)
            except Exception as error:  # e.g. a token grid the layout cannot frame
                errors.append((item.index, f"llm ids: {_reason(error)}"))
                continue
            row = {"index": item.index, "ids": flat.numpy().astype(self.dtype), "token_shape": list(ids.shape)}
            rows.append({**row, "info": item.info})
        return rows, errors


def encode_batch(job: dict) -> int | None:
    """The fixed encode batch of a --deterministic job (job.json), or None."""
    deterministic = job.get("deterministic")
    return None if deterministic is None else deterministic["encode_batch"]


def deterministic_batch(deterministic: bool | int) -> int | None:
    """`deterministic` as an encode batch: False -> None, True -> DETERMINISTIC_BATCH, n -> n."""
    if deterministic is False or deterministic is None:
        return None
    if deterministic is True:
        return DETERMINISTIC_BATCH
    if int(deterministic) != deterministic or deterministic < 1:
        raise ValueError(f"deterministic must be True, False or a positive encode batch, got {deterministic!r}")
    return int(deterministic)


def encode_policy(frozen, job: dict, batch_size: int) -> dict:
    """Everything besides the inputs and the weights that the ids depend on, for the manifest and
    each shard's metadata: precision, batch shape and padding rule, how long media are cut, and
    the library versions and device that ran the arithmetic."""
    import numpy as np

    from mmtok.artifact import mmtok_version

    fixed_batch = encode_batch(job)
    deterministic = fixed_batch is not None
    device = frozen.device
    versions = {"mmtok": mmtok_version(), "torch": torch.__version__, "numpy": np.__version__}
    if device.type == "cuda":
        versions |= {"cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version()}
    long_media = {k: v for k, v in frozen.config.get("model", {}).items() if k in LONG_MEDIA_SETTINGS}
    return {
        "precision": job["precision"],
        "batch_size": batch_size,
        "deterministic": deterministic,
        "encode_batch": fixed_batch,
        "padding": (
            f"every encode call a batch of {fixed_batch}; along the padding axis each input padded to its own bucket"
            " (Tokenizer.bucketed_length)"
            if deterministic
            else "inputs of one shape share a batch; causal models pad shorter inputs to the longest of their batch"
        ),
        "batches": "planned per shard: batch_size inputs in listing order, never across a shard"
        + (f"; each encoded in calls of exactly {fixed_batch}" if deterministic else ""),
        "stream_above_values": STREAM_ABOVE,
        "stream_piece_values": STREAM_PIECE,
        "long_media": long_media,
        "device": device.type if device.type != "cuda" else torch.cuda.get_device_name(device),
        "versions": versions,
    }


def _encode_streamed(frozen, source, index: int, options: dict) -> tuple[torch.Tensor, dict]:
    """An item too long to prepare whole: prepared and encoded piece by piece, memory following the
    piece (a causal tokenizer's ids equal the whole item's; a non-causal codec's are its
    `encode_long` windows'). Returns its ids and info."""
    stream = frozen.input_spec.prepare_stream(lambda: source.open(index), source.describe(index), STREAM_PIECE)
    ids = frozen.encode_stream(_trimmed(stream), **options)[0].cpu()
    return ids, dict(stream.info)


def _libc_malloc_trim():
    """glibc's malloc_trim, or None (musl, macOS: their allocators' own policy stays)."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None
    return getattr(libc, "malloc_trim", None)


_malloc_trim = _libc_malloc_trim()


def _trimmed(pieces):
    """The pieces, giving freed heap memory back to the OS after each one.

    glibc raises its mmap threshold to the size of each large block freed, so after the first chunk
    of a long recording every chunk-sized activation comes from the heap, which fragments and does
    not shrink by itself: peak RSS grew 20 % from a 1- to a 60-minute recording
    (benchmarks/tokenize_memory.py). A fixed 1 MiB threshold kept it flat but tripled the time in
    page faults; trimming once per piece costs little. No library does this for torch on CPU."""
    for piece in pieces:
        yield piece
        if _malloc_trim is not None:
            _malloc_trim(0)


def _ignore_interrupts(worker_id: int) -> None:
    # Ctrl-C reaches the whole process group; workers keep decoding so the current shard can finish.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _shard_batches(shards: list[int], shard_size: int, num_items: int, batch_size: int) -> Iterator[list[int]]:
    """Input indices batch by batch, shard after shard; a batch never spans two shards."""
    for shard in shards:
        items = _shard_items(shard, shard_size, num_items)
        for start in range(0, len(items), batch_size):
            yield list(items[start : start + batch_size])


# -- stopping cleanly --------------------------------------------------------------------------------
class _StopAfterShard:
    """The first Ctrl-C (or SIGTERM) asks the job to stop once the shard in progress is written; a
    second Ctrl-C stops at once (that shard is then redone on restart)."""

    def __init__(self):
        self.requested_at: float | None = None
        self._previous: dict = {}

    @property
    def requested(self) -> bool:
        return self.requested_at is not None

    def _handle(self, signum, frame):
        # `accelerate launch` forwards the Ctrl-C it got too, and a cluster may follow SIGINT with
        # SIGTERM: only a Ctrl-C pressed a second later means "now".
        if self.requested and signum == signal.SIGINT and time.monotonic() - self.requested_at > 1.0:
            raise KeyboardInterrupt
        if not self.requested:
            self.requested_at = time.monotonic()
            logger.warning("stopping after the shard in progress (press Ctrl-C again to stop at once)")

    def __enter__(self) -> _StopAfterShard:
        try:
            self._previous = {s: signal.signal(s, self._handle) for s in (signal.SIGINT, signal.SIGTERM)}
        except ValueError:  # not the main thread: signals stay as they are
            pass
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def _check_job(output_dir: Folder, job: dict) -> None:
    if output_dir.exists(JOB_FILE):
        previous = json.loads(output_dir.read_text(JOB_FILE))
        changed = sorted(k for k in job.keys() | previous.keys() if job.get(k) != previous.get(k))
        if changed:
            raise ValueError(
                f"{output_dir} holds a tokenize job with other settings ({', '.join(changed)} differ: "
                f"{ {k: previous.get(k) for k in changed} } there, { {k: job.get(k) for k in changed} } now); "
                "resume it with the same command, or write to a new OUTPUT_DIR"
            )


def _shard_items(shard: int, shard_size: int, num_items: int) -> range:
    return range(shard * shard_size, min((shard + 1) * shard_size, num_items))


def _inputs_digest(source, items: range) -> str:
    """What a shard was made from: its inputs' keys and fingerprints (size and modification time,
    or an object store's version), so a restart can tell a replaced input from an unchanged one."""
    digest = hashlib.sha256()
    for i in items:
        digest.update(f"{source.key(i)}\t{source.fingerprint(i)}\n".encode())
    return digest.hexdigest()


def _changed_shards(output_dir: Folder, source, shards: list[int], shard_size: int, num_items: int) -> list[int]:
    """Committed shards among `shards` whose inputs are not what they were when it was written."""
    changed = []
    for shard in shards:
        stored = shard_stats(output_dir, shard_name(shard)).get("inputs_sha256")
        if stored is not None and stored != _inputs_digest(source, _shard_items(shard, shard_size, num_items)):
            changed.append(shard)
    return changed


class ErrorLog:
    """Logs the first LOGGED_ERRORS refused items as they happen; the rest go to errors.jsonl only."""

    def __init__(self, source):
        self.source, self.count = source, 0

    def __call__(self, errors: list[tuple[int, str]]) -> None:
        for index, reason in errors:
            self.count += 1
            if self.count <= LOGGED_ERRORS:
                more = " (further errors go to errors.jsonl only)" if self.count == LOGGED_ERRORS else ""
                logger.warning("%s: %s%s", self.source.describe(index), reason, more)


def _run_shards(
    acc,
    encoder: ShardEncoder,
    writer: ShardWriter,
    shards: list[int],
    *,
    num_items: int,
    shard_size: int,
    batch_size: int,
    num_workers: int,
    progress: bool,
    policy: dict,
) -> dict:
    """Encodes and writes `shards` (this process's unfinished ones); returns what it wrote."""
    from tqdm.auto import tqdm

    source, frozen = encoder.source, encoder.frozen
    remaining = {s: len(_shard_items(s, shard_size, num_items)) for s in shards}  # inputs not yet seen
    rows: dict[int, list[dict]] = {s: [] for s in shards}
    errors: dict[int, list[tuple[int, str]]] = {s: [] for s in shards}
    done = {"samples": 0, "tokens": 0, "errors": 0, "shards": 0}
    if not shards:
        return done
    loader = DataLoader(
        _PreparedItems(source, frozen.input_spec, streams=frozen.streams),
        batch_sampler=_shard_batches(shards, shard_size, num_items, batch_size),
        num_workers=num_workers,
        collate_fn=_keep_items,
        worker_init_fn=_ignore_interrupts,
        pin_memory=acc.device.type == "cuda",
    )
    bar = tqdm(
        total=sum(remaining.values()),
        unit="sample",
        desc=f"tokenize ({acc.num_processes} processes)",
        disable=not (progress and acc.is_main_process),
        dynamic_ncols=True,
    )
    log_errors = ErrorLog(source)
    with _StopAfterShard() as stop, bar:
        for batch in loader:
            shard, count = batch[0].index // shard_size, len(batch)
            batch_rows, batch_errors = encoder.encode(batch)
            log_errors(batch_errors)
            rows[shard] += batch_rows
            errors[shard] += batch_errors
            del batch, batch_rows  # a long item's ids, no longer needed once its row holds them
            bar.update(count)
            remaining[shard] -= count
            if remaining[shard] == 0:
                del remaining[shard]
                last_rows, last_errors = encoder.flush()
                log_errors(last_errors)
                rows[shard] += last_rows
                errors[shard] += last_errors
                stats = {"process": acc.process_index, "encode_policy": policy}
                items = _shard_items(shard, shard_size, num_items)
                written = write_shard(writer, shard, items, rows.pop(shard), errors.pop(shard), stats)
                for key in ("samples", "tokens", "errors"):
                    done[key] += written[key]
                done["shards"] += 1
                bar.set_postfix(errors=done["errors"], refresh=False)
                if stop.requested and remaining:
                    break
    if remaining:
        raise TokenizeInterrupted(
            f"process {acc.process_index} stopped after writing {done['shards']} of its "
            f"{len(shards)} shard(s); run the same command again to resume"
        )
    return done


def write_shard(writer: ShardWriter, shard: int, items: range, rows: list[dict], errors: list, stats: dict) -> dict:
    """Commits one finished shard (inputs `items`) with `stats` and what it was made from."""
    inputs = _inputs_digest(writer.source, items)
    return writer.write(shard, rows, errors, {**stats, "inputs_sha256": inputs})


# -- the job ---------------------------------------------------------------------------------------------
ENGINES = ("accelerate", "ray")


@dataclasses.dataclass
class _Job:
    """What both engines share once the inputs are listed: the plan's settings and the writers' parts."""

    frozen: object
    source: object
    output_dir: Folder
    settings: dict  # job.json: what fixes which rows exist and what they hold
    vocab: object
    options: dict  # encode options (num_codebooks)
    input: str
    started: float

    @property
    def num_shards(self) -> int:
        return math.ceil(self.settings["num_items"] / self.settings["shard_size"])

    def encoder(self, batch_size: int) -> ShardEncoder:
        fixed = encode_batch(self.settings)
        s = self.settings
        return ShardEncoder(
            self.frozen, self.source, self.vocab, llm_ids=s["llm_ids"], dtype=s["ids_dtype"],
            precision=s["precision"], options=self.options, fixed_batch=fixed,
        )  # fmt: skip

    def writer(self) -> ShardWriter:
        return ShardWriter(self.output_dir, self.source, self.frozen.input_spec.info_fields, self.settings["ids_dtype"])

    def start(self) -> None:
        """Creates the output folder and writes job.json (one process)."""
        self.output_dir.makedirs(ERRORS_DIR)
        self.output_dir.write_text_atomic(JOB_FILE, json.dumps(self.settings, indent=2) + "\n")

    def unfinished(self, shards: list[int]) -> list[int]:
        """Those of `shards` without a committed file, or whose inputs changed since it was written."""
        num_items, shard_size = self.settings["num_items"], self.settings["shard_size"]
        committed = set(self.output_dir.names(SHARD_PATTERN))  # one listing, however many shards
        done = [s for s in shards if shard_name(s) in committed]
        changed = _changed_shards(self.output_dir, self.source, done, shard_size, num_items)
        if changed:
            logger.warning(
                "%d committed shard(s) hold inputs that changed since they were written (size or modification "
                "time; first: %s in %s): redoing them",
                len(changed),
                self.source.key(changed[0] * shard_size),
                shard_name(changed[0]),
            )
        return [s for s in shards if shard_name(s) not in committed or s in changed]

    def finish(self, run: dict, policy: dict) -> dict:
        """After every worker is done: errors.jsonl and manifest.json, and a summary in the log."""
        seconds = time.perf_counter() - self.started
        run = {
            **run,
            "seconds": round(seconds, 3),
            "samples_per_second": run["samples"] / seconds,
            "tokens_per_second": run["tokens"] / seconds,
        }
        self.output_dir.remove_temporaries()  # every worker is done writing
        manifest = _write_manifest(self, run, policy)
        counts = manifest["counts"]
        logger.info(
            "tokenized %d samples in %.1f s (%.1f samples/s, %.0f tokens/s, %s engine); %s holds %d rows, "
            "%d tokens, %d errors (errors.jsonl), %d files passed over",
            run["samples"],
            seconds,
            run["samples_per_second"],
            run["tokens_per_second"],
            run["engine"],
            self.output_dir,
            counts["samples"],
            counts["tokens"],
            counts["errors"],
            counts["skipped"],
        )
        return manifest


def tokenize(
    tokenizer_dir: str | Path,
    input: str | Path,
    output_dir: str | Path,
    *,
    batch_size: int = 32,
    num_workers: int = 4,
    shard_size: int = 10_000,
    llm_ids: bool = False,
    num_codebooks: int | None = None,
    limit: int | None = None,
    column: str | None = None,
    split: str | None = None,
    streaming: bool = False,
    precision: str = "auto",
    deterministic: bool | int = False,
    engine: str = "accelerate",
    ray: dict | None = None,
    break_lock: bool = False,
    progress: bool = True,
) -> dict:
    """Tokenizes every item of `input` (a folder, glob, .tar or .parquet, local or an fsspec URL;
    or "datasets:NAME_OR_PATH", a Hugging Face dataset's `split`, streamed when `streaming`) into
    shards in `output_dir` (a local folder or an fsspec URL). Returns the manifest.

    engine="accelerate": this process's part of the plan; under `accelerate launch` on all of them.
    engine="ray": the whole plan on a Ray cluster (mmtok.tokenize_ray; `ray` holds its settings:
    address, actors, actor_cpus, actor_gpus, decode_cpus, prefetch). Either engine resumes the
    other's folder. `deterministic` (True, or an encode batch n; True: DETERMINISTIC_BATCH): every
    encode call at one fixed shape (a batch of n, bucketed lengths), so ids do not depend on how
    inputs were grouped (batch_size, shard_size, processes, engine), in bf16 too.
    `num_codebooks=n` stores the first n codebooks of a residual tokenizer (a coarser rate; the
    manifest's vocab layout says so). Raises TokenizeInterrupted after Ctrl-C / SIGTERM (completed
    shards kept), FolderLocked when another live job holds `output_dir` (`break_lock` removes a
    lock its dead owner left)."""
    started = time.perf_counter()
    if batch_size < 1 or shard_size < 1 or num_workers < 0:
        raise ValueError("batch_size and shard_size must be positive and num_workers >= 0")
    resolve_precision(precision, gpu=False)  # refused before anything starts
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    if ray is not None and engine != "ray":
        raise ValueError("ray settings are for engine='ray'")
    settings = dict(
        batch_size=batch_size, shard_size=shard_size, llm_ids=llm_ids, num_codebooks=num_codebooks, limit=limit,
        column=column, split=split, streaming=streaming, deterministic=deterministic, started=started,
    )  # fmt: skip
    if engine == "ray":
        from mmtok.tokenize_ray import RaySettings, tokenize_on_ray

        ray_settings = RaySettings(**(ray or {}))
        cluster_has_gpus = ray_settings.connect()
        precision = resolve_precision(precision, gpu=cluster_has_gpus)
        job = _open_job(tokenizer_dir, input, output_dir, device="cpu", precision=precision, **settings)
        with FolderLock(job.output_dir, break_lock=break_lock, what="tokenize job"):
            job.start()
            run, policy = tokenize_on_ray(job, tokenizer_dir, ray_settings, batch_size=batch_size, progress=progress)
            return job.finish(run, policy)
    return _tokenize_with_accelerate(
        tokenizer_dir, input, output_dir, precision, settings, num_workers, break_lock, progress
    )


def _tokenize_with_accelerate(
    tokenizer_dir, input, output_dir, precision: str, settings: dict, num_workers: int, break_lock: bool, progress: bool
) -> dict:
    from accelerate import Accelerator
    from accelerate.utils import broadcast_object_list

    # Without a GPU, accelerate forms a real multi-process (gloo) group only when built with cpu=True.
    acc = Accelerator(cpu=not torch.cuda.is_available())
    limit_threads_per_process()
    precision = resolve_precision(precision, gpu=acc.device.type == "cuda")
    job = _open_job(tokenizer_dir, input, output_dir, device=acc.device, precision=precision, **settings)
    lock, refusal = None, [None]
    if acc.is_main_process:
        try:
            lock = FolderLock(job.output_dir, break_lock=break_lock, what="tokenize job").acquire()
        except Exception as error:
            refusal = [error]
    if acc.num_processes > 1:  # every process stops on the main one's refusal, with its message
        broadcast_object_list(refusal)
    if refusal[0] is not None:
        raise refusal[0]
    try:
        return _run_job(acc, job, batch_size=settings["batch_size"], num_workers=num_workers, progress=progress)
    finally:
        if lock is not None:
            lock.release()


def _open_job(
    tokenizer_dir, input, output_dir, *, device, precision: str, batch_size: int, shard_size: int, llm_ids: bool,
    num_codebooks, limit, column, split, streaming: bool, deterministic: bool | int, started: float,
) -> _Job:  # fmt: skip
    """Loads the tokenizer, lists the inputs and checks the settings against the folder's job.json."""
    from mmtok.artifact import load_tokenizer

    fixed_batch = deterministic_batch(deterministic)
    frozen = load_tokenizer(tokenizer_dir, device=device)
    vocab, options, dtype = stored_ids(frozen, num_codebooks, llm_ids)
    source = open_source(
        input, modality=frozen.modality, column=column, in_memory=False, split=split, streaming=streaming, limit=limit
    )
    num_items = len(source) if limit is None else min(limit, len(source))
    if num_items == 0:
        passed = f" ({source.passed_over.total} files passed over: {source.passed_over.to_json()})"
        raise ValueError(f"no {frozen.modality} inputs in {input}{passed if source.passed_over.total else ''}")
    settings = {
        "tokenizer_sha256": frozen.config["weights_sha256"],
        "num_items": num_items,
        "first_key": source.key(0),
        "last_key": source.key(num_items - 1),
        "column": column,
        "split": split,
        "shard_size": shard_size,
        "llm_ids": llm_ids,
        "num_codebooks": num_codebooks,
        "ids_dtype": dtype,
        "precision": precision,
        # The encode shape: another one would give other ids, so a resume must keep it.
        "deterministic": None if fixed_batch is None else {"encode_batch": fixed_batch},
    }
    for optional in ("num_codebooks", "deterministic"):  # job.json files written before these stay valid
        if settings[optional] is None:
            del settings[optional]
    output_dir = Folder(output_dir)
    _check_job(output_dir, settings)  # every process, before any barrier, so a mismatch stops them all
    where = str(input) if is_url(input) or str(input).startswith("datasets:") else os.path.abspath(input)
    return _Job(frozen, source, output_dir, settings, vocab, options, where, started)


class StoredIds(NamedTuple):
    vocab: object  # the VocabLayout of the stored ids
    options: dict  # encode options that give them
    dtype: str  # their stored integer type


def stored_ids(frozen, num_codebooks: int | None, llm_ids: bool) -> StoredIds:
    """What ids a job stores: the tokenizer's layout, or its first n codebooks' (the same LLM ids
    for those codebooks, since codebook i's range never depends on later ones), the encode options
    for them and the narrowest type that holds them (framed LLM ids with `llm_ids`)."""
    vocab = frozen.vocab
    if num_codebooks is not None:
        if isinstance(num_codebooks, bool) or not 1 <= int(num_codebooks) <= vocab.num_codebooks:
            raise ValueError(
                f"num_codebooks must be in [1, {vocab.num_codebooks}] for this tokenizer, got {num_codebooks}"
            )
        vocab = dataclasses.replace(vocab, codebook_sizes=vocab.codebook_sizes[: int(num_codebooks)])
    options = {} if num_codebooks is None else {"num_codebooks": num_codebooks}
    return StoredIds(vocab, options, ids_dtype(vocab.end_offset if llm_ids else max(vocab.codebook_sizes)))


def resolve_precision(precision: str, gpu: bool) -> str:
    """ "auto" -> bf16 on a GPU, fp32 otherwise; anything but auto, bf16 or fp32 is refused."""
    if precision not in ("auto", "bf16", "fp32"):
        raise ValueError(f"precision must be auto, bf16 or fp32, got {precision!r}")
    return precision if precision != "auto" else "bf16" if gpu else "fp32"


def _run_job(acc, job: _Job, *, batch_size: int, num_workers: int, progress: bool) -> dict:
    """The accelerate engine once this process holds the output folder: plan, encode, manifest."""
    if acc.is_main_process:
        job.start()
    acc.wait_for_everyone()
    mine = job.unfinished(list(range(acc.process_index, job.num_shards, acc.num_processes)))
    policy = encode_policy(job.frozen, job.settings, batch_size)
    done = _run_shards(
        acc,
        job.encoder(batch_size),
        job.writer(),
        mine,
        num_items=job.settings["num_items"],
        shard_size=job.settings["shard_size"],
        batch_size=batch_size,
        num_workers=num_workers,
        progress=progress,
        policy=policy,
    )
    # This run's counts from every process, for the throughput in the manifest and summary.
    this_run = acc.reduce(torch.tensor([done[k] for k in done], device=acc.device), "sum").tolist()
    acc.wait_for_everyone()
    if acc.is_main_process:
        run = {
            **dict(zip(done, this_run)),
            "engine": "accelerate",
            "world_size": acc.num_processes,
            "device": acc.device.type,
            "batch_size": batch_size,
            "num_workers": num_workers,
        }
        job.finish(run, policy)
    acc.wait_for_everyone()
    return read_manifest(job.output_dir)


def _write_manifest(job: _Job, run: dict, policy: dict) -> dict:
    """After every process is done: errors.jsonl from the per-shard files, then manifest.json."""
    from mmtok.artifact import mmtok_version

    output_dir, frozen, vocab, passed_over = job.output_dir, job.frozen, job.vocab, job.source.passed_over
    input, num_shards, job = job.input, job.num_shards, job.settings
    names = [shard_name(i) for i in range(num_shards)]
    committed = set(output_dir.names(SHARD_PATTERN))
    missing = [name for name in names if name not in committed]
    if missing:
        raise RuntimeError(f"{len(missing)} shard(s) missing after every process finished, e.g. {missing[:3]}")
    stats = [shard_stats(output_dir, name) for name in names]
    counts = {"inputs": job["num_items"], **{k: sum(s[k] for s in stats) for k in ("samples", "tokens", "errors")}}
    counts["skipped"] = passed_over.total
    if counts["samples"] + counts["errors"] != counts["inputs"]:
        raise RuntimeError(
            f"shards hold {counts['samples']} rows and {counts['errors']} errors for {counts['inputs']} inputs"
        )
    with_errors = [name for name, s in zip(names, stats) if s["errors"]]
    output_dir.write_text_atomic(ERRORS_FILE, "".join(output_dir.read_text(errors_name(n)) for n in with_errors))
    manifest = {
        "mmtok_version": mmtok_version(),
        "tokenizer": {
            "path": os.path.abspath(frozen.path),
            "family": frozen.family,
            "modality": frozen.modality,
            "weights_sha256": frozen.config["weights_sha256"],
            "input": frozen.config.get("input", {}),
        },
        "vocab": vocab.to_json(),
        "llm_ids": job["llm_ids"],
        "num_codebooks": vocab.num_codebooks,
        "ids_dtype": job["ids_dtype"],
        "precision": job["precision"],
        "input": input,
        "column": job["column"],
        "split": job["split"],
        "shard_size": job["shard_size"],
        "num_shards": num_shards,
        "shards": names,
        "counts": counts,
        "skipped": passed_over.to_json(),  # files the listing left out, by reason, with examples
        "encode_policy": policy,  # this run's; each shard's own is in its parquet metadata
        "run": run,
    }
    output_dir.write_text_atomic(MANIFEST_FILE, json.dumps(manifest, indent=2) + "\n")
    return manifest
