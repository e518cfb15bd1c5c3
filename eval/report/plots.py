"""The report's pictures (matplotlib, Agg through `Figure`, no pyplot state): one rate-distortion
plot per metric with every tokenizer and codec on it, each tokenizer's codebook use, and for images
a grid of reconstructions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import FormatStrFormatter
from PIL import Image

from mmtok.modalities import modality

MAX_CODEBOOKS_DRAWN = 4


def _mean(summary: dict, key: str):
    entry = summary.get(key)
    return None if entry is None else entry["mean"]


def rate_distortion(report: dict, metric: str, path: Path) -> bool:
    """PSNR (etc.) against rate: tokenizer sweeps as lines (their full setting as a larger marker with
    its 95 % interval), codec quality sweeps as dashed lines. False when nothing has the metric."""
    figure = Figure(figsize=(6.4, 4.2), layout="constrained")
    axis = figure.subplots()
    drawn = False
    for index, tok in enumerate(report["tokenizers"]):
        colour = f"C{index}"
        points = [(_mean(s["summary"], "rate"), _mean(s["summary"], metric), s) for s in tok["sweep"]]
        points = [(r, m, s) for r, m, s in points if r is not None and m is not None]
        if points:
            axis.plot([p[0] for p in points], [p[1] for p in points], marker=".", color=colour, alpha=0.7)
            for r, m, s in points:
                axis.annotate(
                    f"{s['kind']}={s['value']}", (r, m), textcoords="offset points", xytext=(3, -9), fontsize=7
                )
        rate, value = _mean(tok["summary"], "rate"), tok["summary"].get(metric)
        if rate is not None and value and value["mean"] is not None:
            error = [[value["mean"] - value["low"]], [value["high"] - value["mean"]]]
            axis.errorbar(
                [rate], [value["mean"]], yerr=error, marker="o", ms=7, color=colour, capsize=3, label=tok["name"]
            )
            drawn = True
    for index, (codec, curve) in enumerate(report["baselines"]["curves"].items()):
        points = [(_mean(p["summary"], "rate"), _mean(p["summary"], metric)) for p in curve]
        points = [p for p in points if p[0] is not None and p[1] is not None]
        if points:
            axis.plot(*zip(*points), linestyle="--", marker="s", ms=3, color=f"C{index + 5}", label=codec)
            drawn = True
    if not drawn:
        return False
    axis.set_xscale("log")
    axis.xaxis.set_major_formatter(FormatStrFormatter("%g"))
    axis.xaxis.set_minor_formatter(FormatStrFormatter("%g"))
    axis.tick_params(axis="x", which="minor", labelsize=7)
    axis.set_xlabel(report["rate_name"])
    better = "higher" if report["metrics"].get(metric, True) else "lower"
    axis.set_ylabel(f"{metric} ({better} is better)")
    axis.grid(True, alpha=0.3)
    axis.legend(fontsize=8)
    axis.set_title(f"{metric} vs {report['rate_name']} on {len(report['items'])} items")
    figure.savefig(path, dpi=90)
    return True


def codebook_use(tok: dict, path: Path) -> None:
    """How often each code is used, codes sorted from most to least used, per codebook (log scale):
    a flat line is even use, a cliff into zeros is dead codes."""
    figure = Figure(figsize=(6.4, 3.2), layout="constrained")
    axis = figure.subplots()
    for index, (counts, stats) in enumerate(zip(tok["code_counts"], tok["codebooks"])):
        if index == MAX_CODEBOOKS_DRAWN:
            break
        ordered = np.sort(np.asarray(counts))[::-1]
        label = (
            f"codebook {index}: {stats['utilization']:.0%} used ({stats['use_vs_uniform']:.0%} of uniform), "
            f"perplexity {stats['perplexity']:.0f}"
        )
        axis.step(np.arange(1, ordered.size + 1), np.maximum(ordered, 0.8), where="mid", label=label)
    axis.set_xscale("log")
    axis.set_yscale("log")
    axis.set_xlabel("code rank")
    axis.set_ylabel("uses")
    axis.legend(fontsize=7)
    axis.set_title(f"{tok['name']}: code use on the evaluated items", fontsize=9)
    figure.savefig(path, dpi=90)


def image_grid(report: dict, out: Path, path: Path, max_side: int = 160) -> bool:
    """Rows: items; columns: original, each tokenizer, each codec at the first tokenizer's rate."""
    names = [o["item"] for o in report["baselines"]["originals"]]
    columns = [("original", [o["media"].get("image") for o in report["baselines"]["originals"]])]

    def images_of(rows: list[dict]) -> list[str | None]:
        by_item = {row["item"]: row.get("media", {}).get("image") for row in rows}
        return [by_item.get(name) for name in names]

    for tok in report["tokenizers"]:
        columns.append((tok["name"], images_of(tok["items"])))
    if report["tokenizers"]:
        first = report["tokenizers"][0]
        for codec, group in first["matched"].items():
            columns.append((f"{codec} at {first['name']}'s rate", images_of(group["items"])))
    rows = len(columns[0][1])
    if rows == 0:
        return False
    figure = Figure(figsize=(1.6 * len(columns), 1.6 * rows + 0.3), layout="constrained")
    axes = np.asarray(figure.subplots(rows, len(columns), squeeze=False))
    for c, (title, files) in enumerate(columns):
        for r in range(rows):
            axis = axes[r, c]
            axis.set_axis_off()
            if r < len(files) and files[r]:
                image = Image.open(out / "media" / files[r])
                image.thumbnail((max_side, max_side))
                axis.imshow(np.asarray(image))
            if r == 0:
                axis.set_title(title, fontsize=8)
    figure.savefig(path, dpi=80)
    return True


def draw_plots(report: dict, out: Path) -> dict:
    """Writes the PNGs under out/plots; returns their paths relative to `out`, by kind."""
    folder = out / "plots"
    folder.mkdir(parents=True, exist_ok=True)
    plots = {"rate_distortion": {}, "codebooks": {}}
    for metric in report["metrics"]:
        if rate_distortion(report, metric, folder / f"rd_{metric}.png"):
            plots["rate_distortion"][metric] = f"plots/rd_{metric}.png"
    for tok in report["tokenizers"]:
        if not tok["codebooks"]:  # a system without ids (a peer given as functions)
            continue
        codebook_use(tok, folder / f"codebooks_{tok['name']}.png")
        plots["codebooks"][tok["name"]] = f"plots/codebooks_{tok['name']}.png"
    if "grid" in modality(report["modality"]).figures and image_grid(report, out, folder / "reconstructions.png"):
        plots["grid"] = "plots/reconstructions.png"
    return plots
