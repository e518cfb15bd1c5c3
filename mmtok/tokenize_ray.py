"""The Ray Data engine of `mmtok tokenize` (`--engine ray`): the accelerate engine's plan, shard
format, manifest and errors.jsonl, on a cluster whose nodes may come and go.

The driver lists the inputs, writes job.json and finds the unfinished shards exactly as the
accelerate engine does (mmtok.tokenize), so either engine resumes the other's folder. A Ray Dataset
of those shard numbers then goes through `map_batches(ShardTokenizer, compute=ActorPoolStrategy,
num_gpus=...)`: each actor loads the tokenizer once and, for each shard it is given (one call per
planned shard), has the shard's planned batches decoded ahead of it (`prefetch` in flight: in Ray
CPU tasks that may run on other nodes, or on a CPU-only cluster in threads of the actor), encodes
those same batches (so the ids equal the accelerate engine's) and commits the shard atomically from
the worker. Only each shard's counts come back to the driver, whose memory therefore does not
grow with the ids.

Faults: Ray retries a decode task whose worker died, and restarts a dead actor and hands it the
shard again (Ray Data's actor pools default to max_restarts=-1, max_task_retries=-1). A shard is
written under a temporary name and renamed, and writing it again gives the same rows, so every row
ends up exactly once. A driver killed whole leaves its committed shards; the same command resumes.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from collections import deque

import numpy as np

from mmtok.storage import Folder
from mmtok.tokenize import (
    ErrorLog,
    _Item,
    _Job,
    _PreparedItems,
    _shard_batches,
    _shard_items,
    encode_policy,
    stored_ids,
    write_shard,
)

logger = logging.getLogger("mmtok.tokenize")


@dataclasses.dataclass
class RaySettings:
    """Where and how the Ray engine runs; every field has a default that fits the cluster it finds."""

    address: str | None = None  # "auto", "ray://head:10001", ...; None: $RAY_ADDRESS, else a local cluster
    actors: int | None = None  # encoding actors; None: one per GPU, or on a CPU-only cluster one per actor_cpus
    actor_cpus: float = 1.0  # CPUs each actor holds (and torch threads it uses)
    actor_gpus: float | None = None  # None: 1 where the cluster has GPUs, else 0
    # CPUs each decode task holds; None: 1 with GPUs, 0 on a CPU-only cluster, where the actors hold
    # every core: 0 decodes in threads of the actor instead of Ray tasks (a task beyond the CPUs
    # would need a fresh worker process, which Ray stops again after a second of idleness: the
    # torch import each time stalled a 2-CPU job for 11 s).
    decode_cpus: float | None = None
    prefetch: int = 2  # decode tasks in flight per actor

    def __post_init__(self):
        if self.actors is not None and self.actors < 1:
            raise ValueError(f"ray actors must be positive, got {self.actors}")
        if self.prefetch < 1:
            raise ValueError(f"ray prefetch must be positive, got {self.prefetch}")

    def connect(self) -> bool:
        """Joins (or starts) the cluster; True when it has GPUs."""
        try:
            import ray
        except ImportError as error:
            raise ModuleNotFoundError("--engine ray needs Ray: pip install 'mmtok[ray]'") from error

        if not ray.is_initialized():
            ray.init(address=self.address, logging_level=logging.WARNING, log_to_driver=True)
        return ray.cluster_resources().get("GPU", 0) > 0

    def resolved(self, shards: int) -> dict:
        """Actor count and resources for a job of `shards` shards on the connected cluster."""
        import ray

        resources = ray.cluster_resources()
        gpus, cpus = resources.get("GPU", 0), resources.get("CPU", 1)
        actor_gpus = self.actor_gpus if self.actor_gpus is not None else (1.0 if gpus else 0.0)
        if self.actors is not None:
            actors = self.actors
        elif actor_gpus:
            actors = max(1, int(gpus // actor_gpus))
        else:
            actors = max(1, int(cpus // self.actor_cpus))
        decode_cpus = self.decode_cpus if self.decode_cpus is not None else (1.0 if gpus else 0.0)
        return {
            "actors": max(1, min(actors, shards)),
            "actor_cpus": self.actor_cpus,
            "actor_gpus": actor_gpus,
            "decode_cpus": decode_cpus,
            "prefetch": self.prefetch,
        }


def tokenize_on_ray(job: _Job, tokenizer_dir, settings: RaySettings, *, batch_size: int, progress: bool):
    """Runs the job's unfinished shards on the connected cluster; returns (run, encode policy)."""
    import ray
    from tqdm.auto import tqdm

    from mmtok.shards import shard_name, shard_stats

    todo = job.unfinished(list(range(job.num_shards)))
    placement = settings.resolved(len(todo))
    done = {"samples": 0, "tokens": 0, "errors": 0, "shards": 0}
    policy = None  # this run's, as the first actor to finish a shard reports it
    if todo:
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False  # the driver's own bar counts samples
        shards = ray.data.from_items([{"shard": s} for s in todo], override_num_blocks=len(todo))
        results = shards.map_batches(
            ShardTokenizer,
            fn_constructor_kwargs={
                "tokenizer_dir": os.path.abspath(tokenizer_dir) if os.path.isdir(tokenizer_dir) else str(tokenizer_dir),
                "source": job.source,
                "output_dir": str(job.output_dir),
                "settings": job.settings,
                "batch_size": batch_size,
                "decode_cpus": placement["decode_cpus"],
                "prefetch": placement["prefetch"],
            },
            batch_size=1,
            compute=ray.data.ActorPoolStrategy(size=placement["actors"]),
            num_cpus=placement["actor_cpus"],
            num_gpus=placement["actor_gpus"],
        )
        items = sum(len(_shard_items(s, job.settings["shard_size"], job.settings["num_items"])) for s in todo)
        actors = placement["actors"]
        with tqdm(total=items, unit="sample", desc=f"tokenize (ray, {actors} actors)", disable=not progress) as bar:
            for row in results.iter_rows():  # one small row per committed shard
                for key in ("samples", "tokens", "errors"):
                    done[key] += int(row[key])
                done["shards"] += 1
                policy = policy or json.loads(row["policy"])
                bar.update(int(row["samples"]) + int(row["errors"]))
    if policy is None:  # nothing was left to do: the policy the first shard was written with
        policy = shard_stats(job.output_dir, shard_name(0)).get("encode_policy")
    run = {**done, "engine": "ray", "batch_size": batch_size, **placement}
    return run, policy


def _prepare(items: _PreparedItems, indices: list[int]) -> list[_Item]:
    """A decode task: one planned batch read and prepared (a failure is the item's error record)."""
    return [items[i] for i in indices]


class ShardTokenizer:
    """A Ray Data actor (`map_batches` with a callable class): loads the tokenizer once, then for
    each shard number in a batch decodes its planned batches in CPU tasks, encodes them and commits
    the shard. Returns one row of counts per shard."""

    def __init__(self, tokenizer_dir, source, output_dir: str, settings: dict, batch_size: int, decode_cpus, prefetch):
        import ray
        import torch

        from mmtok.artifact import load_tokenizer

        frozen = load_tokenizer(tokenizer_dir, device="cuda" if torch.cuda.is_available() else "cpu")
        if frozen.config["weights_sha256"] != settings["tokenizer_sha256"]:
            raise ValueError(
                f"{tokenizer_dir} on this worker holds other weights than the driver's tokenizer: every node must "
                "see the same tokenizer directory"
            )
        vocab, options, _ = stored_ids(frozen, settings.get("num_codebooks"), settings["llm_ids"])
        job = _Job(frozen, source, Folder(output_dir), settings, vocab, options, input="", started=0.0)
        self.source, self.settings, self.batch_size, self.prefetch = source, settings, batch_size, prefetch
        self.encoder, self.writer = job.encoder(batch_size), job.writer()
        self.policy = encode_policy(frozen, settings, batch_size)
        self.log_errors = ErrorLog(source)
        items = _PreparedItems(source, frozen.input_spec, streams=frozen.streams)
        if decode_cpus:  # CPU tasks anywhere in the cluster; the source goes to the object store once
            task, items_ref = ray.remote(num_cpus=decode_cpus)(_prepare), ray.put(items)
            self.decode = lambda indices: task.remote(items_ref, indices)
            self.result = ray.get
        else:  # threads here, beside the encoder (decoders and torch release the GIL)
            from concurrent.futures import ThreadPoolExecutor

            threads = ThreadPoolExecutor(max_workers=prefetch, thread_name_prefix="mmtok-decode")
            self.decode = lambda indices: threads.submit(_prepare, items, indices)
            self.result = lambda future: future.result()
        self.where = f"ray:{ray.get_runtime_context().get_node_id()[:12]}:{os.getpid()}"

    def __call__(self, batch: dict) -> dict:
        counts = {"shard": [], "samples": [], "tokens": [], "errors": [], "policy": []}
        for shard in batch["shard"]:
            written = self._tokenize_shard(int(shard))
            counts["shard"].append(int(shard))
            for key in ("samples", "tokens", "errors"):
                counts[key].append(written[key])
            counts["policy"].append(json.dumps(self.policy))
        return {key: np.array(values) for key, values in counts.items()}

    def _tokenize_shard(self, shard: int) -> dict:
        shard_size, num_items = self.settings["shard_size"], self.settings["num_items"]
        planned = iter(_shard_batches([shard], shard_size, num_items, self.batch_size))
        pending: deque = deque()
        rows, errors = [], []

        def submit() -> None:
            indices = next(planned, None)
            if indices is not None:
                pending.append(self.decode(indices))

        for _ in range(self.prefetch):
            submit()
        while pending:
            prepared = self.result(pending.popleft())
            submit()  # the next batch decodes while this one encodes
            batch_rows, batch_errors = self.encoder.encode(prepared)
            self.log_errors(batch_errors)
            rows += batch_rows
            errors += batch_errors
            del prepared
        last_rows, last_errors = self.encoder.flush()
        self.log_errors(last_errors)
        rows += last_rows
        errors += last_errors
        stats = {"process": self.where, "encode_policy": self.policy}
        return write_shard(self.writer, shard, _shard_items(shard, shard_size, num_items), rows, errors, stats)
