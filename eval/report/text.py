"""A report as Markdown tables, for terminals, benchmarks and READMEs: every system's rate and
headline metrics (means over the items), then the sweeps and the codec curves."""

from __future__ import annotations

from mmtok.health import describe_use

MAX_CODEBOOKS_LISTED = 4  # a residual tokenizer's later codebooks add lines, not information


def _cell(summary: dict, key: str) -> str:
    entry = summary.get(key)
    return "–" if not entry or entry.get("mean") is None else f"{entry['mean']:.4g}"


def _table(report: dict, rows: list[tuple[str, dict]]) -> list[str]:
    metrics = list(report["metrics"])
    lines = [f"| system | {report['rate_name']} | " + " | ".join(metrics) + " |", "|---" * (len(metrics) + 2) + "|"]
    for label, summary in rows:
        lines.append(f"| {label} | {_cell(summary, 'rate')} | " + " | ".join(_cell(summary, m) for m in metrics) + " |")
    return lines


def markdown_summary(report: dict, *, sweeps: bool = True) -> str:
    rows = []
    for tok in report["tokenizers"]:
        rows.append((f"**{tok['name']}**", tok["summary"]))
        rows += [(f"{codec} at {tok['name']}'s rate", group["summary"]) for codec, group in tok["matched"].items()]
    lines = _table(report, rows)
    speed = []
    for tok in report["tokenizers"]:
        pace, unit = tok["throughput"], tok["throughput"]["amount_name"]
        steps = [
            f"{step} {pace[f'{step}_items_per_s']:.3g} items/s ({pace[f'{step}_amount_per_s']:.3g} {unit}/s)"
            for step in ("encode", "decode")
            if pace[f"{step}_items_per_s"] is not None
        ]
        whole = "" if pace["encode_items_per_s"] is not None else " (the whole round trip)"
        speed.append(f"{tok['name']}: {', '.join(steps)}{whole}, {pace['threads']} threads")
    lines += ["", *speed]
    lines += [
        f"{tok['name']} codebook {index}: {describe_use(stats)}"
        for tok in report["tokenizers"]
        for index, stats in enumerate(tok["codebooks"][:MAX_CODEBOOKS_LISTED])
    ]
    lines += ar_probe_table(report)
    if sweeps:
        curve_rows = [
            (f"{tok['name']} {point['kind']}={point['value']}", point["summary"])
            for tok in report["tokenizers"]
            for point in tok["sweep"]
        ]
        curve_rows += [
            (f"{codec} {point['setting']}", point["summary"])
            for codec, curve in report["baselines"]["curves"].items()
            for point in curve
        ]
        if curve_rows:
            lines += ["", *_table(report, curve_rows)]
    return "\n".join(lines)


def ar_probe_table(report: dict) -> list[str]:
    probe = report.get("ar_probe")
    if not probe:
        return []
    rate = report["rate_name"]
    steps, seeds = probe["settings"]["steps"], len(probe["settings"]["seeds"])
    lines = [
        "",
        f"AR probe ({steps} steps, {seeds} seed(s); held-out bits per code token, 95 % interval over seeds):",
        "",
        f"| tokenizer | bits/token | raw bits/token | unigram entropy | LM {rate} | raw {rate} | LM/raw |",
        "|---|---|---|---|---|---|---|",
    ]
    for tok in probe["tokenizers"]:
        bits = tok["bits_per_token"]
        interval = f" ± {bits['ci95']:.3g}" if bits["ci95"] is not None else ""
        lines.append(
            f"| {tok['name']} | {bits['mean']:.4g}{interval} | {tok['raw_bits_per_token']:.4g} | "
            f"{tok['unigram_entropy_bits']:.4g} | {tok['lm_rate']:.4g} | {tok['raw_rate']:.4g} | "
            f"{tok['lm_to_raw']:.3f} |"
        )
    return lines
