"""An mmtok tokenizer as two stages of your own Ray Data pipeline (callable classes for
`Dataset.map_batches`): decoding on CPU workers, encoding on an actor pool with one tokenizer
load per actor.

    import ray
    from mmtok.ray_data import EncodeMedia, PrepareMedia

    tok = "/shared/tokenizers/image-fsq"  # every node must see it
    ds = ray.data.read_binary_files("s3://bucket/photos/", include_paths=True)  # columns: bytes, path
    ds = ds.map_batches(PrepareMedia, fn_constructor_kwargs={"tokenizer_dir": tok},
                        batch_size=64, compute=ray.data.ActorPoolStrategy(size=16))
    ds = ds.map_batches(EncodeMedia, fn_constructor_kwargs={"tokenizer_dir": tok, "deterministic": True},
                        batch_size=32, num_gpus=1, compute=ray.data.ActorPoolStrategy(size=8))
    ds.write_parquet("s3://bucket/photo-ids/")  # path, ids, token_shape, error (and the media's info)

Ray Data forms the batches, so their composition changes from run to run; with `deterministic`
(True, or an encode batch n) EncodeMedia encodes every call at one shape (a batch of n, 16 for
True, lengths bucketed), and an input's ids are then the same bits whatever batch it came in, and
equal to those of `mmtok tokenize --deterministic n`. A file that cannot be decoded or encoded
gets its reason in `error` and empty ids; the pipeline goes on.

`mmtok tokenize --engine ray` (mmtok.tokenize_ray) runs the whole job, shards and manifest
included, on the same machinery; use these stages when the ids go into a pipeline of your own.
"""

from __future__ import annotations

import io

import numpy as np

PREPARED, ERROR = "prepared", "error"


def _columns(batch) -> dict[str, list]:
    """A map_batches batch (pyarrow Table, pandas DataFrame or dict of arrays) as lists."""
    if hasattr(batch, "to_pydict"):
        return batch.to_pydict()
    if hasattr(batch, "to_dict"):
        return batch.to_dict("list")
    return {name: list(values) for name, values in batch.items()}


def _table(columns: dict[str, list], types: dict):
    import pyarrow as pa

    return pa.table({name: pa.array(values, types.get(name)) for name, values in columns.items()})


class PrepareMedia:
    """Encoded media (column `column`: file bytes) -> the tokenizer's prepared input: `prepared`
    (the tensor, as .npy bytes), the input spec's info fields and `error`. The media column is
    dropped, every other column kept."""

    def __init__(self, tokenizer_dir, column: str = "bytes"):
        from mmtok.artifact import load_tokenizer

        self.spec, self.column = load_tokenizer(tokenizer_dir).input_spec, column

    def __call__(self, batch):
        import pyarrow as pa

        from mmtok.tokenize import _reason

        columns = _columns(batch)
        if self.column not in columns:
            raise KeyError(f"PrepareMedia reads column {self.column!r}; the batch has {sorted(columns)}")
        media = columns.pop(self.column)
        fields = [*self.spec.info_fields]
        prepared, errors, info = [], [], {name: [] for name in fields}
        for data in media:
            try:
                out = self.spec.prepare(bytes(data))
                if out.tensor.shape[0] != 1:
                    raise ValueError(f"one input decoded to {out.tensor.shape[0]} examples")
                buffer = io.BytesIO()
                np.save(buffer, out.tensor[0].numpy(), allow_pickle=False)
                prepared.append(buffer.getvalue())
                errors.append(None)
                row_info = out.info[0]
            except Exception as error:  # the item's reason, as `mmtok tokenize` records it
                prepared.append(None)
                errors.append(_reason(error))
                row_info = {}
            for name in fields:
                info[name].append(row_info.get(name))
        kinds = {float: pa.float64(), str: pa.string()}
        types = {name: kinds.get(kind, pa.int64()) for name, kind in self.spec.info_fields.items()}
        columns |= {PREPARED: prepared, **info, ERROR: errors}
        return _table(columns, {**types, PREPARED: pa.binary(), ERROR: pa.string()})


class EncodeMedia:
    """`prepared` (from PrepareMedia) -> `ids` (one example's ids flattened in the vocab layout's
    order, or its framed LLM ids with `llm_ids`), `token_shape` and `error`; `prepared` is dropped,
    every other column kept. Runs on the GPU where the actor has one (bf16 there by default)."""

    def __init__(
        self,
        tokenizer_dir,
        *,
        deterministic: bool | int = False,
        precision: str = "auto",
        llm_ids: bool = False,
        num_codebooks: int | None = None,
    ):
        import torch

        from mmtok.artifact import load_tokenizer
        from mmtok.tokenize import ShardEncoder, deterministic_batch, resolve_precision, stored_ids

        gpu = torch.cuda.is_available()
        precision = resolve_precision(precision, gpu=gpu)
        frozen = load_tokenizer(tokenizer_dir, device="cuda" if gpu else "cpu")
        vocab, options, self.dtype = stored_ids(frozen, num_codebooks, llm_ids)
        self.encoder = ShardEncoder(
            frozen, None, vocab, llm_ids=llm_ids, dtype=self.dtype, precision=precision, options=options,
            fixed_batch=deterministic_batch(deterministic),
        )  # fmt: skip

    def __call__(self, batch):
        import pyarrow as pa
        import torch

        from mmtok.tokenize import _Item

        columns = _columns(batch)
        prepared, errors = columns.pop(PREPARED), columns.pop(ERROR, None) or [None] * len(columns[PREPARED])
        items = []
        for index, (data, error) in enumerate(zip(prepared, errors)):
            if error is not None or data is None:
                items.append(_Item(index, None, None, error or "no prepared input"))
            else:
                tensor = torch.from_numpy(np.load(io.BytesIO(data), allow_pickle=False))
                items.append(_Item(index, tensor, {}, None))
        rows, refused = self.encoder.encode(items)
        last_rows, last_refused = self.encoder.flush()  # every input of this batch gets its row now
        rows, refused = rows + last_rows, refused + last_refused
        ids, shapes, reasons = [np.zeros(0, self.dtype)] * len(items), [[]] * len(items), [None] * len(items)
        for row in rows:
            ids[row["index"]], shapes[row["index"]] = row["ids"], row["token_shape"]
        for index, reason in refused:
            reasons[index] = reason
        columns |= {"ids": ids, "token_shape": shapes, ERROR: reasons}
        types = {"ids": pa.list_(getattr(pa, self.dtype)()), "token_shape": pa.list_(pa.int32()), ERROR: pa.string()}
        return _table(columns, types)
