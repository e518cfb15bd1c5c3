"""`mmtok eval`: every system (a tokenizer, or a peer with a reconstruct and a bit count:
mmtok.eval.systems) on the same held-out items through the one input path, the classical codecs
beside them, sweeps into rate-distortion curves, and the report folder.

For each system and item: the item is prepared by the system's own input spec, run through the
system (encode and decode timed; one untimed warm-up first), scored by the modality's suite
(mmtok.eval.suites), its ids counted for codebook health (mmtok.health.CodebookMonitor). Bits are
the ids' positions x sum over the used codebooks of log2(codebook size): an upper bound a plain
entropy coder would beat.

Sweeps: a 1-D tokenizer's first k tokens (k = 1, 2, 4, ..., K; the prefix of its ids, which is
exactly what `encode(num_tokens=k)` gives); a residual tokenizer's first n codebooks (encoded
with `num_codebooks=n`); the codecs' quality settings on the first tokenizer's prepared items.
"""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from mmtok.eval.aggregate import numeric_keys, summarise
from mmtok.eval.suites import Suite, suite_for
from mmtok.eval.systems import System, TokenizerSystem
from mmtok.health import CodebookMonitor

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
    ar_probe: str | None = None  # training data for the AR probe (mmtok.eval.probes.ar); None: no probe
    ar_probe_steps: int = 200
    ar_probe_seeds: int = 1
    # Speech transcripts for the word error rate (mmtok.eval.metrics.transcripts); None: those in the DATA folder.
    transcripts: str | None = None


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


def _aligned(x: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Audio and EEG decoders give whole frames: cut (or zero-pad) the last axis to the reference's."""
    x = x.float().cpu()
    if x.shape[-1] != reference.shape[-1]:
        x = torch.nn.functional.pad(x[..., : reference.shape[-1]], (0, max(0, reference.shape[-1] - x.shape[-1])))
    return x


def prepared_examples(
    system, items: list, crop_size: int | None = None, errors: list | None = None
) -> Iterator[tuple[str, torch.Tensor, dict]]:
    """Every item through the system's input spec (with `crop_size` where the spec crops), one
    example at a time (a file may hold several), so that only one is in memory. An item the input
    path refuses (a broken file, a clip too short) is left out and recorded in `errors`."""
    spec = system.input_spec
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
            yield str(label), prepared.tensor[b : b + 1], {**prepared.info[b], "item": str(label)}


def _summary(suite: Suite, rows: list[dict], keys: list[str] | None = None) -> dict[str, dict]:
    """Means with intervals of the rows' numbers, and the suite's set figures derived from them."""
    summary = summarise(rows, numeric_keys(rows) if keys is None else keys)
    return {**summary, **suite.derived(summary)}


def _score_coded(suite: Suite, coded, reference: torch.Tensor, info: dict) -> dict:
    return {
        "codec": coded.codec,
        "setting": coded.setting,
        "rate": coded.rate,
        **suite.scores(reference, coded.decoded, info),
    }


def _throughput(suite: Suite, items: int, amount: float, encode_seconds: float | None, decode_seconds: float) -> dict:
    """Items and media amount per second; a system that does not split encode from decode has its
    whole round trip under decode and no encode figures."""

    def per_second(value: float, seconds: float | None):
        return None if seconds is None else value / max(seconds, 1e-9)

    return {
        "encode_items_per_s": per_second(items, encode_seconds),
        "decode_items_per_s": per_second(items, decode_seconds),
        "encode_amount_per_s": per_second(amount, encode_seconds),
        "decode_amount_per_s": per_second(amount, decode_seconds),
        "amount_name": suite.amount_name,
        "encode_seconds": encode_seconds,
        "decode_seconds": decode_seconds,
        "threads": torch.get_num_threads(),
    }


@torch.inference_mode()
def evaluate_system(system: System, items: list, suite: Suite, options: EvalOptions, media: Path) -> dict:
    name = system.name
    errors: list[dict] = []
    first = next(prepared_examples(system, items, options.crop_size, []), None)
    if first is None:
        raise ValueError(f"{name}: its input path refuses every item")
    monitor = CodebookMonitor(system.codebook_sizes, system.num_codebooks) if system.codebook_sizes else None
    settings = system.settings(first[1]) if options.sweep else []
    dataset = suite.dataset_metric()
    system.run(first[1])  # warm-up, not timed
    rows, sweep_rows, matched_rows = [], {s: [] for s in settings}, []
    encode_seconds, decode_seconds, amount = 0.0, 0.0, 0.0
    examples = prepared_examples(system, items, options.crop_size, errors)
    for index, (label, x, info) in enumerate(tqdm(examples, desc=f"eval {name}", leave=False)):
        coded = system.run(x)
        if coded.encode_seconds is None:
            encode_seconds = None
        elif encode_seconds is not None:
            encode_seconds += coded.encode_seconds
        decode_seconds += coded.decode_seconds
        if monitor is not None:
            monitor.update(coded.ids)
        reference = suite.reference(x).float().cpu()
        amount += suite.amount(reference, info)
        reconstruction = _aligned(coded.decoded, reference)
        rate = suite.rate(coded.bits, reference, info)
        row = {"item": label, "bits": coded.bits, "rate": rate, **suite.scores(reference, reconstruction, info)}
        if dataset is not None:
            dataset.update(reference, reconstruction)
        if index < options.media_items:
            row["media"] = suite.write_media(media, slug(f"{name}_{index}"), reconstruction, info, reference)
        rows.append(row)
        for setting in settings:
            if system.is_full(setting, coded.ids):  # the row above
                sweep_rows[setting].append({k: v for k, v in row.items() if k not in ("item", "media")})
                continue
            lower = system.run(x, setting)
            scores = suite.scores(reference, _aligned(lower.decoded, reference), info)
            sweep_rows[setting].append({"bits": lower.bits, "rate": suite.rate(lower.bits, reference, info), **scores})
        if options.baselines:
            for baseline in suite.matched(reference, info, rate):
                scored = {"item": label, **_score_coded(suite, baseline, reference, info)}
                if index < options.media_items:
                    scored["media"] = suite.write_media(
                        media, slug(f"{name}_{baseline.codec}_{index}"), baseline.decoded, info, reference
                    )
                matched_rows.append(scored)
    metric_keys = [k for k in numeric_keys(rows) if k not in ("bits",)]
    return {
        "name": name,
        "path": system.path,
        "family": system.family,
        "num_codebooks": system.num_codebooks,
        "codebook_sizes": system.codebook_sizes,
        "items": rows,
        "summary": _summary(suite, rows, ["bits", *metric_keys]),
        "dataset_metrics": dataset.compute() if dataset is not None and len(rows) > 1 else {},
        "codebooks": monitor.compute() if monitor is not None else [],
        "code_counts": [counts.tolist() for counts in monitor.counts] if monitor is not None else [],
        "throughput": _throughput(suite, len(rows), amount, encode_seconds, decode_seconds),
        "sweep": [
            {"kind": kind, "value": value, "summary": _summary(suite, values)}
            for (kind, value), values in sweep_rows.items()
        ],
        "matched": _by_codec(suite, matched_rows),
        "errors": errors,
    }


def _by_codec(suite: Suite, rows: list[dict]) -> dict[str, dict]:
    grouped: dict[str, list[dict]] = {}
    for row in rows:
        grouped.setdefault(row["codec"], []).append(row)
    return {codec: {"items": group, "summary": _summary(suite, group)} for codec, group in grouped.items()}


def evaluate_baselines(system: System, items: list, suite: Suite, media: Path, options: EvalOptions) -> dict:
    """The codecs' quality sweeps on the items as `system` prepares them; the originals' media."""
    curves: dict[tuple[str, str], list[dict]] = {}
    originals, reference_rows = [], []
    for index, (label, x, info) in enumerate(prepared_examples(system, items, options.crop_size, [])):
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
        codecs.setdefault(codec, []).append({"setting": setting, "summary": _summary(suite, rows)})
    for points in codecs.values():
        points.sort(key=lambda p: p["summary"]["rate"]["mean"])
    reference_summary = summarise(reference_rows, numeric_keys(reference_rows))
    return {"curves": codecs, "originals": originals, "reference": reference_summary}


def as_systems(tokenizers: list, device: str = "cpu") -> list[System]:
    """Paths or hf: ids (loaded as frozen tokenizers) and ready systems -> systems with distinct
    names (a folder's name; two folders of one name are numbered)."""
    from mmtok.artifact import load_tokenizer

    systems = [
        t if isinstance(t, System) else TokenizerSystem(Path(str(t)).name or str(t), load_tokenizer(t, device=device))
        for t in tokenizers
    ]
    names = [slug(s.name) for s in systems]
    if len(set(names)) != len(names):
        names = [f"{i + 1}_{n}" for i, n in enumerate(names)]
    for system, name in zip(systems, names):
        system.name = name
    return systems


def run_eval(tokenizers: list, data: str, out: str | Path, options: EvalOptions | None = None) -> dict:
    """Evaluates every tokenizer (paths, hf: ids, or ready `System`s) on `data` (a source spec, see
    `load_items`) and writes report.json, the plots and index.html under `out`. Returns the report."""
    options = options or EvalOptions()
    systems = as_systems(tokenizers, options.device)
    modality = _one_modality(systems)
    items = load_items(data, modality, reads_paths=systems[0].input_spec.reads_paths, limit=options.limit)
    return evaluate(systems, items, out, options, data=str(data))


def _transcripts(path: str | None, data: str) -> dict[str, str]:
    """--transcripts, else whatever transcripts a local DATA folder holds (none for other sources)."""
    from mmtok.eval.metrics.transcripts import read_transcripts

    if path is not None:
        if not Path(path).exists():
            raise FileNotFoundError(f"--transcripts: {path} does not exist")
        return read_transcripts(path)
    return read_transcripts(data) if data and Path(data).is_dir() else {}


def _one_modality(systems: list[System]) -> str:
    modalities = {system.modality for system in systems}
    if len(modalities) != 1:
        raise ValueError(f"the systems are for different modalities: {sorted(modalities)}")
    return modalities.pop()


def evaluate(
    systems: list, items: list, out: str | Path, options: EvalOptions | None = None, *, data: str = ""
) -> dict:
    """`run_eval` on items already in hand ((name, media) pairs, media as the input specs take them:
    paths, bytes or arrays): every system scored by the modality's suite, the codecs beside the
    first, the report written under `out`. `data` names the items' source in the report."""
    from mmtok.eval.report.html import write_html
    from mmtok.eval.report.plots import draw_plots

    options = options or EvalOptions()
    systems = as_systems(systems, options.device)
    out = Path(out)
    media = out / "media"
    media.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    modality = _one_modality(systems)
    suite = suite_for(modality, lpips_weights=options.lpips_weights, fid_weights=options.fid_weights)
    first = systems[0]
    suite.configure(first)
    if suite.uses_transcripts:
        suite.transcripts = _transcripts(options.transcripts, data)
    items = items[: options.limit] if options.limit else items
    report: dict[str, Any] = {
        "modality": modality,
        "data": data,
        "rate_name": suite.rate_name,
        "metrics": suite.metrics,
        "items": [name for name, _ in items],
        "tokenizers": [evaluate_system(system, items, suite, options, media) for system in systems],
        "baselines": evaluate_baselines(first, items, suite, media, options),
    }
    tokenizers = [(system.name, system.frozen) for system in systems if isinstance(system, TokenizerSystem)]
    if options.probe_train:
        report["probes"] = suite.probes(tokenizers, data, options.probe_train)
    if options.ar_probe:
        from mmtok.eval.probes.ar import run_ar_probe

        train_items = load_items(options.ar_probe, modality, reads_paths=first.input_spec.reads_paths, training=True)
        if not data.startswith(SAMPLE_IMAGES) and _same_place(options.ar_probe, data):
            raise ValueError(
                f"--ar-probe {options.ar_probe} is DATA itself: the probe must be scored on items it did not train on"
            )
        report["ar_probe"] = run_ar_probe(tokenizers, train_items, items, suite, options, media)
    report["plots"] = draw_plots(report, out)
    report["seconds"] = time.perf_counter() - started
    write_html(report, out)
    return report
