"""`mmtok eval`: every tokenizer on the same held-out items through the one input path, the
classical codecs beside them, sweeps into rate-distortion curves, and the report folder.

For each tokenizer and item: the item is prepared by the tokenizer's own input spec, encoded and
decoded (timed; one untimed warm-up first), scored by the modality's suite (mmtok.eval.suites),
its ids counted for codebook health (mmtok.health.CodebookMonitor). Bits are the ids' positions x
sum over the used codebooks of log2(codebook size): an upper bound a plain entropy coder would beat.

Sweeps: a 1-D tokenizer's first k tokens (k = 1, 2, 4, ..., K; the prefix of its ids, which is
exactly what `encode(num_tokens=k)` gives); a residual tokenizer's first n codebooks (encoded
with `num_codebooks=n`); the codecs' quality settings on the first tokenizer's prepared items.
"""

from __future__ import annotations

import dataclasses
import math
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from mmtok.eval.aggregate import numeric_keys, summarise
from mmtok.eval.suites import Suite, suite_for
from mmtok.health import CodebookMonitor
from mmtok.quantize.base import bits_per_position

SAMPLE_IMAGES = "sample-images"  # DATA spelling for the bundled photos held out: sample-images[:N]


@dataclasses.dataclass
class EvalOptions:
    limit: int | None = None  # evaluate only the first N items
    sweep: bool = True
    baselines: bool = True
    media_items: int = 4  # items whose media (pictures, players) the report shows
    crop_size: int | None = None  # images and video: centred crops of at most this per side (None: the spec's)
    device: str = "cpu"  # where the tokenizers run; metrics and codecs run on the CPU
    lpips_weights: str | None = None  # a torchvision VGG16 state dict
    fid_weights: str | None = None  # a torchvision Inception v3 state dict
    probe_train: str | None = None  # EEG: labelled training trials (.ts) for linear probes on the tokens
    ar_probe: str | None = None  # training data for the AR probe (mmtok.eval.ar_probe); None: no probe
    ar_probe_steps: int = 200
    ar_probe_seeds: int = 1


def load_items(
    data: str, modality: str, *, reads_paths: bool = False, limit: int | None = None, training: bool = False
) -> list:
    """(name, media) pairs: "sample-images[:N]" is the bundled photos' N (default 3) held out, as
    the quickstart splits them (with `training`, the other photos: that split's training side); a
    single media file is one item (an EEG `.ts` file holds many trials); anything else is a source
    `mmtok tokenize` reads (folder, glob, tar, parquet, datasets:NAME), its items as encoded bytes
    (or local paths for specs that read paths)."""
    if str(data).startswith(SAMPLE_IMAGES):
        from mmtok.data.sample_images import DEFAULT_HELD_OUT, sample_images

        held_out = int(str(data).split(":", 1)[1]) if ":" in str(data) else DEFAULT_HELD_OUT
        items = sample_images(held_out=held_out)[0 if training else 1]
    elif Path(data).is_file() and Path(data).suffix.lower() not in (".tar", ".parquet"):
        items = [(Path(data).name, Path(data) if reads_paths else Path(data).read_bytes())]  # one media file
    else:
        from mmtok.data.sources import open_source

        source = open_source(data, modality=modality)
        local = getattr(source, "local_path", None) if reads_paths else None
        count = len(source) if limit is None else min(limit, len(source))
        items = [(source.key(i), (local(i) if local is not None else None) or source.read(i)) for i in range(count)]
    if not items:
        raise ValueError(f"{data} holds no {modality} items")
    return items[:limit] if limit else items


def _same_place(a: str, b: str) -> bool:
    """Whether two data specs name the same folder or file."""
    return str(a) == str(b) or (Path(a).exists() and Path(b).exists() and Path(a).resolve() == Path(b).resolve())


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "x"


def bits_of(ids: torch.Tensor, codebook_sizes: list[int]) -> float:
    """Bits of one example's ids (1, *positions, codebooks used)."""
    used = ids.shape[-1]
    return math.prod(ids.shape[1:-1]) * bits_per_position(used, codebook_sizes[:used])


def _aligned(x: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Audio and EEG decoders give whole frames: cut (or zero-pad) the last axis to the reference's."""
    x = x.float().cpu()
    if x.shape[-1] != reference.shape[-1]:
        x = torch.nn.functional.pad(x[..., : reference.shape[-1]], (0, max(0, reference.shape[-1] - x.shape[-1])))
    return x


def sweep_settings(frozen, x: torch.Tensor) -> list[tuple[str, int]]:
    """("k", k) for 1-D tokenizers, ("codebooks", n) for tokenizers that accept num_codebooks=n."""
    model = frozen.model
    if getattr(model, "max_num_tokens", None):
        total = model.max_num_tokens
        return [("k", k) for k in sorted({*(2**i for i in range(total.bit_length()) if 2**i <= total), total})]
    total = frozen.num_codebooks
    if total < 2:
        return []
    try:
        frozen.encode_tensor(x, num_codebooks=1)
    except (ValueError, TypeError, NotImplementedError):
        return []
    return [("codebooks", n) for n in sorted({*(2**i for i in range(total.bit_length()) if 2**i <= total), total})]


def _sweep_ids(frozen, x: torch.Tensor, ids: torch.Tensor, kind: str, value: int) -> torch.Tensor:
    return ids[:, :value] if kind == "k" else frozen.encode_tensor(x, num_codebooks=value)


def prepared_examples(
    frozen, items: list, crop_size: int | None = None, errors: list | None = None
) -> Iterator[tuple[str, torch.Tensor, dict]]:
    """Every item through the tokenizer's input spec (with `crop_size` where the spec crops), one
    example at a time (a file may hold several), so that only one is in memory. An item the input
    path refuses (a broken file, a clip too short) is left out and recorded in `errors`."""
    spec = frozen.input_spec
    if crop_size is not None and hasattr(spec, "crop_size"):
        spec = dataclasses.replace(spec, crop_size=crop_size)
    for name, media in items:
        try:
            prepared = spec.prepare(media)
        except ValueError as error:
            if errors is None:
                raise
            errors.append({"item": str(name), "error": str(error)})
            continue
        for b in range(prepared.tensor.shape[0]):
            label = name if prepared.tensor.shape[0] == 1 else f"{name}#{b}"
            yield str(label), prepared.tensor[b : b + 1], prepared.info[b]


def _clock(frozen) -> float:
    """perf_counter after the device's queued work is done (CUDA kernels run asynchronously)."""
    if frozen.device.type == "cuda":
        torch.cuda.synchronize(frozen.device)
    return time.perf_counter()


def _score_coded(suite: Suite, coded, reference: torch.Tensor, info: dict) -> dict:
    return {
        "codec": coded.codec,
        "setting": coded.setting,
        "rate": coded.rate,
        **suite.scores(reference, coded.decoded, info),
    }


@torch.inference_mode()
def evaluate_tokenizer(name: str, frozen, items: list, suite: Suite, options: EvalOptions, media: Path) -> dict:
    errors: list[dict] = []
    first = next(prepared_examples(frozen, items, options.crop_size, []), None)
    if first is None:
        raise ValueError(f"{name}: its input path refuses every item")
    monitor = CodebookMonitor(frozen.codebook_sizes, frozen.num_codebooks)
    settings = sweep_settings(frozen, first[1]) if options.sweep else []
    dataset = suite.dataset_metric()
    frozen.decode(frozen.encode_tensor(first[1]))  # warm-up, not timed
    rows, sweep_rows, matched_rows = [], {s: [] for s in settings}, []
    encode_seconds = decode_seconds = amount = 0.0
    examples = prepared_examples(frozen, items, options.crop_size, errors)
    for index, (label, x, info) in enumerate(tqdm(examples, desc=f"eval {name}", leave=False)):
        started = _clock(frozen)
        ids = frozen.encode_tensor(x)
        encoded = _clock(frozen)
        decoded = frozen.decode(ids)
        encode_seconds, decode_seconds = encode_seconds + encoded - started, decode_seconds + _clock(frozen) - encoded
        monitor.update(ids)
        reference = suite.reference(x).float().cpu()
        amount += suite.amount(reference, info)
        reconstruction = _aligned(decoded, reference)
        bits = bits_of(ids, frozen.codebook_sizes)
        rate = suite.rate(bits, reference, info)
        row = {"item": label, "bits": bits, "rate": rate, **suite.scores(reference, reconstruction, info)}
        if dataset is not None:
            dataset.update(reference, reconstruction)
        if index < options.media_items:
            row["media"] = suite.write_media(media, slug(f"{name}_{index}"), reconstruction, info, reference)
        rows.append(row)
        for kind, value in settings:
            if value == ids.shape[1 if kind == "k" else -1]:  # the full setting: the row above
                sweep_rows[(kind, value)].append({k: v for k, v in row.items() if k not in ("item", "media")})
                continue
            prefix_ids = _sweep_ids(frozen, x, ids, kind, value)
            recon = _aligned(frozen.decode(prefix_ids), reference)
            prefix_bits = bits_of(prefix_ids, frozen.codebook_sizes)
            scores = suite.scores(reference, recon, info)
            sweep_rows[(kind, value)].append(
                {"bits": prefix_bits, "rate": suite.rate(prefix_bits, reference, info), **scores}
            )
        if options.baselines:
            for coded in suite.matched(reference, info, rate):
                scored = {"item": label, **_score_coded(suite, coded, reference, info)}
                if index < options.media_items:
                    scored["media"] = suite.write_media(
                        media, slug(f"{name}_{coded.codec}_{index}"), coded.decoded, info, reference
                    )
                matched_rows.append(scored)
    metric_keys = [k for k in numeric_keys(rows) if k not in ("bits",)]
    return {
        "name": name,
        "path": str(frozen.path) if frozen.path else None,
        "family": frozen.family,
        "num_codebooks": frozen.num_codebooks,
        "codebook_sizes": frozen.codebook_sizes,
        "items": rows,
        "summary": summarise(rows, ["bits", *metric_keys]),
        "dataset_metrics": dataset.compute() if dataset is not None and len(rows) > 1 else {},
        "codebooks": monitor.compute(),
        "code_counts": [counts.tolist() for counts in monitor.counts],
        "throughput": {
            "encode_items_per_s": len(rows) / max(encode_seconds, 1e-9),
            "decode_items_per_s": len(rows) / max(decode_seconds, 1e-9),
            "encode_amount_per_s": amount / max(encode_seconds, 1e-9),
            "decode_amount_per_s": amount / max(decode_seconds, 1e-9),
            "amount_name": suite.amount_name,
            "encode_seconds": encode_seconds,
            "decode_seconds": decode_seconds,
            "threads": torch.get_num_threads(),
        },
        "sweep": [
            {"kind": kind, "value": value, "summary": summarise(values, numeric_keys(values))}
            for (kind, value), values in sweep_rows.items()
        ],
        "matched": _by_codec(matched_rows),
        "errors": errors,
    }


def _by_codec(rows: list[dict]) -> dict[str, dict]:
    grouped: dict[str, list[dict]] = {}
    for row in rows:
        grouped.setdefault(row["codec"], []).append(row)
    return {
        codec: {"items": group, "summary": summarise(group, numeric_keys(group))} for codec, group in grouped.items()
    }


def evaluate_baselines(frozen, items: list, suite: Suite, media: Path, options: EvalOptions) -> dict:
    """The codecs' quality sweeps on the items as `frozen` prepares them; the originals' media."""
    curves: dict[tuple[str, str], list[dict]] = {}
    originals, reference_rows = [], []
    for index, (label, x, info) in enumerate(prepared_examples(frozen, items, options.crop_size, [])):
        reference = suite.reference(x).float().cpu()
        reference_rows.append(suite.reference_scores(reference, info))
        if index < options.media_items:
            originals.append(
                {"item": label, "media": suite.write_media(media, slug(f"original_{index}"), reference, info)}
            )
        if options.baselines:
            for coded in suite.curve(reference, info):
                curves.setdefault((coded.codec, coded.setting), []).append(_score_coded(suite, coded, reference, info))
    codecs: dict[str, list[dict]] = {}
    for (codec, setting), rows in curves.items():
        codecs.setdefault(codec, []).append({"setting": setting, "summary": summarise(rows, numeric_keys(rows))})
    for points in codecs.values():
        points.sort(key=lambda p: p["summary"]["rate"]["mean"])
    reference_summary = summarise(reference_rows, numeric_keys(reference_rows))
    return {"curves": codecs, "originals": originals, "reference": reference_summary}


def run_eval(tokenizers: list[str], data: str, out: str | Path, options: EvalOptions | None = None) -> dict:
    """Evaluates every tokenizer (paths or hf: ids) on `data` and writes report.json, the plots and
    index.html under `out`. Returns the report."""
    from mmtok.artifact import load_tokenizer
    from mmtok.eval.plots import draw_plots
    from mmtok.eval.report_html import write_html

    options = options or EvalOptions()
    out = Path(out)
    media = out / "media"
    media.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    loaded = [(Path(str(t)).name or str(t), load_tokenizer(t, device=options.device)) for t in tokenizers]
    names = [slug(n) for n, _ in loaded]
    if len(set(names)) != len(names):  # two folders of one name: number them
        names = [f"{i + 1}_{n}" for i, n in enumerate(names)]
    modalities = {frozen.modality for _, frozen in loaded}
    if len(modalities) != 1:
        raise ValueError(f"the tokenizers are for different modalities: {sorted(modalities)}")
    modality = modalities.pop()
    suite = suite_for(modality, lpips_weights=options.lpips_weights, fid_weights=options.fid_weights)
    first = loaded[0][1]
    suite.configure(first)
    items = load_items(data, modality, reads_paths=first.input_spec.reads_paths, limit=options.limit)
    report: dict[str, Any] = {
        "modality": modality,
        "data": str(data),
        "rate_name": suite.rate_name,
        "metrics": suite.metrics,
        "items": [name for name, _ in items],
        "tokenizers": [evaluate_tokenizer(n, f, items, suite, options, media) for n, (_, f) in zip(names, loaded)],
        "baselines": evaluate_baselines(first, items, suite, media, options),
    }
    if options.probe_train:
        report["probes"] = suite.probes(list(zip(names, (f for _, f in loaded))), str(data), options.probe_train)
    if options.ar_probe:
        from mmtok.eval.ar_probe import run_ar_probe

        train_items = load_items(options.ar_probe, modality, reads_paths=first.input_spec.reads_paths, training=True)
        if not str(data).startswith(SAMPLE_IMAGES) and _same_place(options.ar_probe, data):
            raise ValueError(
                f"--ar-probe {options.ar_probe} is DATA itself: the probe must be scored on items it did not train on"
            )
        named = list(zip(names, (f for _, f in loaded)))
        report["ar_probe"] = run_ar_probe(named, train_items, items, suite, options, media)
    report["plots"] = draw_plots(report, out)
    report["seconds"] = time.perf_counter() - started
    write_html(report, out)
    return report
