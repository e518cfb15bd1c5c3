"""The report folder's `index.html` and `report.json`: one static page (no server, no network, no
script library) with the tables, the rate-distortion curves, the media of a few items side by side
(pictures, audio players with spectrograms, video strips, EEG traces) and each tokenizer's code use.

A few lines of inline script mark the <body> with how many pictures loaded and how many are
broken (`data-images-loaded`, `data-images-broken`), so a headless browser can check the page.
"""

from __future__ import annotations

import html
import json
import math
from pathlib import Path

STYLE = """
body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1400px}
table{border-collapse:collapse;margin:8px 0 20px}td,th{border:1px solid #ccc;padding:4px 8px;font-size:13px}
th{background:#f2f2f2}td.num{text-align:right;font-variant-numeric:tabular-nums}.ci{color:#888;font-size:11px}
img{max-width:100%}.plots img{width:480px;margin:4px}.media td{vertical-align:top;text-align:center}
.media img{max-width:220px;display:block;margin:auto}.media img.trace{max-width:420px}
audio{width:220px}h2{margin-top:28px}
"""
SCRIPT = """
window.addEventListener('load',()=>{const images=[...document.images];
document.body.dataset.imagesLoaded=images.filter(i=>i.complete&&i.naturalWidth>0).length;
document.body.dataset.imagesBroken=images.filter(i=>!(i.complete&&i.naturalWidth>0)).length;});
"""


def _e(text) -> str:
    return html.escape(str(text))


def _value(entry: dict | None, digits: int = 4) -> str:
    if not entry or entry.get("mean") is None:
        return "–"
    mean, low, high = entry["mean"], entry["low"], entry["high"]
    ci = f' <span class="ci">[{low:.{digits}g}, {high:.{digits}g}]</span>' if high > low else ""
    return f"{mean:.{digits}g}{ci}"


def _speed(speed: dict, step: str) -> str:
    if speed[f"{step}_items_per_s"] is None:  # a system that does not split encode from decode
        return "–"
    amount = f"<br><span class='ci'>{speed[f'{step}_amount_per_s']:.3g} {_e(speed['amount_name'])}</span>"
    return f"{speed[f'{step}_items_per_s']:.3g} items" + amount


def _summary_table(report: dict) -> str:
    metrics = list(report["metrics"])
    head = ["system", report["rate_name"], *metrics, "encode /s", "decode /s", "code use", "perplexity"]
    lines = ["<table id='summary'><tr>" + "".join(f"<th>{_e(h)}</th>" for h in head) + "</tr>"]
    for tok in report["tokenizers"]:
        health = tok["codebooks"]
        use = ", ".join(f"{c['utilization']:.0%} ({c['use_vs_uniform']:.0%} of uniform)" for c in health[:4])
        use += " …" if len(health) > 4 else ""
        perplexity = ", ".join(f"{c['perplexity']:.0f}" for c in health[:4]) + (" …" if len(health) > 4 else "")
        cells = [_value(tok["summary"].get("rate"))] + [_value(tok["summary"].get(m)) for m in metrics]
        speed = tok["throughput"]
        cells += [_speed(speed, "encode"), _speed(speed, "decode"), use, perplexity]
        lines.append(f"<tr><th>{_e(tok['name'])}</th>" + "".join(f"<td class='num'>{c}</td>" for c in cells) + "</tr>")
        for codec, group in tok["matched"].items():
            summary = group["summary"]
            cells = [_value(summary.get("rate"))] + [_value(summary.get(m)) for m in metrics] + ["", "", "", ""]
            label = f"{codec} at {tok['name']}'s rate"
            lines.append(f"<tr><td>{_e(label)}</td>" + "".join(f"<td class='num'>{c}</td>" for c in cells) + "</tr>")
    reference = report["baselines"].get("reference") or {}
    if reference:
        cells = ["–"] + [_value(reference.get(m)) if m in reference else "–" for m in metrics] + ["", "", "", ""]
        lines.append("<tr><td>original (uncoded)</td>" + "".join(f"<td class='num'>{c}</td>" for c in cells) + "</tr>")
    lines.append("</table>")
    return "\n".join(lines)


def _extra_metrics_table(report: dict) -> str:
    """Every other per-item number (band errors, DNSMOS parts, ...) and set-level metrics (FID)."""
    shown = {"rate", "bits", *report["metrics"]}
    keys = sorted({k for tok in report["tokenizers"] for k in tok["summary"] if k not in shown})
    dataset_keys = sorted({k for tok in report["tokenizers"] for k in tok["dataset_metrics"]})
    if not keys and not dataset_keys:
        return ""
    head = ["tokenizer", *keys, *dataset_keys]
    lines = ["<table id='more-metrics'><tr>" + "".join(f"<th>{_e(h)}</th>" for h in head) + "</tr>"]
    for tok in report["tokenizers"]:
        cells = [_value(tok["summary"].get(k)) for k in keys]
        cells += [f"{tok['dataset_metrics'][k]:.4g}" if k in tok["dataset_metrics"] else "–" for k in dataset_keys]
        lines.append(f"<tr><th>{_e(tok['name'])}</th>" + "".join(f"<td class='num'>{c}</td>" for c in cells) + "</tr>")
    return "\n".join([*lines, "</table>"])


def _sweep_table(report: dict) -> str:
    metrics = list(report["metrics"])
    lines = []
    for tok in report["tokenizers"]:
        if not tok["sweep"]:
            continue
        head = ["setting", report["rate_name"], *metrics]
        lines.append(f"<h3>{_e(tok['name'])}</h3><table class='sweep'><tr>")
        lines.append("".join(f"<th>{_e(h)}</th>" for h in head) + "</tr>")
        for point in tok["sweep"]:
            cells = [_value(point["summary"].get(k)) for k in ("rate", *metrics)]
            label = f"{point['kind']} = {point['value']}"
            lines.append(f"<tr><td>{_e(label)}</td>" + "".join(f"<td class='num'>{c}</td>" for c in cells) + "</tr>")
        lines.append("</table>")
    for codec, curve in report["baselines"]["curves"].items():
        lines.append(f"<h3>{_e(codec)}</h3><table class='sweep'><tr><th>setting</th><th>{_e(report['rate_name'])}</th>")
        lines.append("".join(f"<th>{_e(m)}</th>" for m in metrics) + "</tr>")
        for point in curve:
            cells = [_value(point["summary"].get(k)) for k in ("rate", *metrics)]
            lines.append(f"<tr><td>{_e(point['setting'])}</td>" + "".join(f"<td class='num'>{c}</td>" for c in cells))
            lines.append("</tr>")
        lines.append("</table>")
    return "\n".join(lines)


def _probe_table(report: dict) -> str:
    probes = report.get("probes")
    if not probes:
        return ""
    keys = list(next(iter(probes.values())))
    lines = ["<h2>Linear probes</h2><table id='probes'><tr><th>features</th>"]
    lines.append("".join(f"<th>{_e(k)}</th>" for k in keys) + "</tr>")
    for name, scores in probes.items():
        lines.append(f"<tr><td>{_e(name)}</td>" + "".join(f"<td class='num'>{scores[k]:.3f}</td>" for k in keys))
        lines.append("</tr>")
    return "\n".join([*lines, "</table>"])


def _ar_probe_section(report: dict) -> str:
    probe = report.get("ar_probe")
    if not probe:
        return ""
    rate = _e(report["rate_name"])
    settings = probe["settings"]
    lines = [
        "<h2>AR probe: how learnable the tokens are</h2>",
        f"<p>A {settings['layers']}-layer, {settings['width']}-wide causal LM trained for {settings['steps']} steps "
        f"of {settings['batch_size']} x {settings['block']} ids on each tokenizer's training stream, seeds "
        f"{_e(list(settings['seeds']))}; held-out bits per code token (± 95 % interval over seeds).</p>",
        "<table id='ar-probe'><tr><th>tokenizer</th><th>bits/token</th><th>raw bits/token</th>"
        f"<th>unigram entropy</th><th>LM {rate}</th><th>raw {rate}</th><th>LM/raw</th><th>samples</th></tr>",
    ]
    for tok in probe["tokenizers"]:
        bits = tok["bits_per_token"]
        interval = f" ± {bits['ci95']:.3g}" if bits["ci95"] is not None else ""
        samples = "".join(_media_parts(sample) for sample in tok["samples"])
        lines.append(
            f"<tr><td>{_e(tok['name'])}</td><td class='num'>{bits['mean']:.4g}{interval}</td>"
            f"<td class='num'>{tok['raw_bits_per_token']:.4g}</td>"
            f"<td class='num'>{tok['unigram_entropy_bits']:.4g}</td>"
            f"<td class='num'>{tok['lm_rate']:.4g}</td><td class='num'>{tok['raw_rate']:.4g}</td>"
            f"<td class='num'>{tok['lm_to_raw']:.3f}</td><td>{samples}</td></tr>"
        )
    return "\n".join([*lines, "</table>"])


def _media_parts(media: dict) -> str:
    parts = []
    for kind in ("image", "strip", "trace", "spectrogram"):
        if kind in media:
            parts.append(f"<img class='{kind}' src='media/{_e(media[kind])}' alt='{_e(kind)}' loading='eager'>")
    if "audio" in media:
        parts.append(f"<audio controls preload='none' src='media/{_e(media['audio'])}'></audio>")
    return "".join(parts)


def _media_cell(media: dict | None, caption: str = "") -> str:
    if not media:
        return "<td>–</td>"
    return f"<td>{_media_parts(media)}<div class='ci'>{_e(caption)}</div></td>"


def _media_table(report: dict) -> str:
    originals = report["baselines"]["originals"]
    if not originals:
        return ""
    columns = ["item", "original", *(t["name"] for t in report["tokenizers"])]
    matched = report["tokenizers"][0]["matched"] if report["tokenizers"] else {}
    columns += [f"{codec} at {report['tokenizers'][0]['name']}'s rate" for codec in matched]
    lines = ["<table class='media' id='reconstructions'><tr>" + "".join(f"<th>{_e(c)}</th>" for c in columns) + "</tr>"]
    metric = next(iter(report["metrics"]), None)
    systems = [{row["item"]: row for row in t["items"]} for t in report["tokenizers"]]
    systems += [{row["item"]: row for row in g["items"]} for g in matched.values()]
    for original in originals:
        cells = [f"<td>{_e(original['item'])}</td>", _media_cell(original["media"])]
        for rows in systems:
            row = rows.get(original["item"])
            if row is None:
                cells.append("<td>–</td>")
                continue
            caption = f"{row['rate']:.3g} {report['rate_name']}" + (
                f", {metric} {row[metric]:.3g}" if metric in row else ""
            )
            cells.append(_media_cell(row.get("media"), caption))
        lines.append("<tr>" + "".join(cells) + "</tr>")
    return "\n".join([*lines, "</table>"])


def _errors(report: dict) -> str:
    rows = [(t["name"], e["item"], e["error"]) for t in report["tokenizers"] for e in t.get("errors", [])]
    if not rows:
        return ""
    lines = ["<h2>Items left out</h2><table id='errors'><tr><th>tokenizer</th><th>item</th><th>why</th></tr>"]
    lines += [f"<tr><td>{_e(a)}</td><td>{_e(b)}</td><td>{_e(c)}</td></tr>" for a, b, c in rows]
    return "\n".join([*lines, "</table>"])


def _finite(value):
    """NaN and infinities (a score that could not be computed, PSNR of identical images) as null:
    strict JSON, which browsers and jq read."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_html(report: dict, out: Path) -> Path:
    """Writes out/report.json (without the raw code counts, which the histograms show) and out/index.html."""
    out = Path(out)
    public = {
        **report,
        "tokenizers": [{k: v for k, v in t.items() if k != "code_counts"} for t in report["tokenizers"]],
    }
    (out / "report.json").write_text(json.dumps(_finite(public), indent=2, allow_nan=False, default=float) + "\n")
    plots = report["plots"]
    curves = "".join(f"<img src='{_e(p)}' alt='{_e(m)} curve'>" for m, p in plots["rate_distortion"].items())
    codebooks = "".join(f"<img src='{_e(p)}' alt='{_e(n)} code use'>" for n, p in plots["codebooks"].items())
    grid = f"<h2>Reconstruction grid</h2><img src='{_e(plots['grid'])}' alt='grid'>" if "grid" in plots else ""
    names = ", ".join(t["name"] for t in report["tokenizers"])
    page = f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>mmtok eval: {_e(names)} on {_e(report["data"])}</title><style>{STYLE}</style><script>{SCRIPT}</script></head>
<body><h1>mmtok eval: {_e(report["modality"])}</h1>
<p>{len(report["items"])} items from <code>{_e(report["data"])}</code>; tokenizers: {_e(names)}.
Means with 95 % confidence intervals over the items; rate in {_e(report["rate_name"])} (ids counted at
log2 of the codebook size; codecs at their encoded size). Built in {report.get("seconds", 0):.1f} s.</p>
<h2>Summary</h2>{_summary_table(report)}
{_extra_metrics_table(report)}
{_probe_table(report)}
{_ar_probe_section(report)}
{_errors(report)}
<h2>Rate–distortion</h2><div class="plots">{curves}</div>
<h2>Sweeps</h2>{_sweep_table(report)}
<h2>Reconstructions</h2>{_media_table(report)}
{grid}
<h2>Codebook use</h2><div class="plots">{codebooks}</div>
<p class="ci">Full numbers: <a href="report.json">report.json</a>.</p>
</body></html>
"""
    path = out / "index.html"
    path.write_text(page)
    return path
