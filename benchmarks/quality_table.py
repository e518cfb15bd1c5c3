"""The tables benchmarks/quality.py prints (markdown, pasted into the README as they come): each
recipe's `mmtok eval` report as its table (mmtok.eval.report.text), then the comparisons the
recipe is about."""

from __future__ import annotations

import json
from pathlib import Path

from mmtok.eval.report.text import markdown_summary


def _pct(values) -> str:
    return "/".join(f"{100 * v:.0f}%" for v in values)


def _mean(summary: dict, key: str) -> float:
    return summary[key]["mean"]


def _systems(report: dict) -> dict[str, dict]:
    return {tok["name"]: tok for tok in report["tokenizers"]}


def image_lines(systems: dict[str, dict]) -> list[str]:
    if "VQGAN" not in systems:
        return []
    ours, theirs = systems["mmtok"]["summary"], systems["VQGAN"]["summary"]
    kept = _mean(ours, "colour_kept") / max(_mean(theirs, "colour_kept"), 1e-9)
    return [
        f"mmtok - VQGAN: {_mean(ours, 'psnr') - _mean(theirs, 'psnr'):+.2f} dB PSNR, "
        f"{_mean(ours, 'ssim') - _mean(theirs, 'ssim'):+.3f} SSIM, colour kept x{kept:.2f}"
    ]


def image1d_lines(systems: dict[str, dict]) -> list[str]:
    sweep = systems["1-D"]["sweep"]
    psnrs = [_mean(point["summary"], "psnr") for point in sweep]
    rising = all(b > a for a, b in zip(psnrs, psnrs[1:]))
    lines = [f"1-D PSNR rises at every k: {'yes' if rising else 'no'} ({', '.join(f'{p:.2f}' for p in psnrs)})"]
    if "2-D" in systems:
        flat, full = systems["2-D"]["summary"], systems["1-D"]["summary"]
        bits = f"({_mean(full, 'bits'):.0f} bits) vs 2-D ({_mean(flat, 'bits'):.0f} bits)"
        gap = _mean(full, "psnr") - _mean(flat, "psnr")
        lines.append(f"1-D at k = {sweep[-1]['value']} {bits}: {gap:+.2f} dB")
    return lines


def audio_lines(systems: dict[str, dict]) -> list[str]:
    lines = []
    for name, tok in systems.items():
        mel = [(point["value"], _mean(point["summary"], "mel_distance")) for point in tok["sweep"]]
        steps = [f"{a:.3f} -> {b:.3f} ({100 * (b - a) / a:+.1f}%)" for (_, a), (_, b) in zip(mel, mel[1:])]
        lines.append(f"{name} mel distance at {', '.join(str(n) for n, _ in mel)} codebooks: " + ", ".join(steps))
    if "DAC" in systems:
        ours = {p["value"]: _mean(p["summary"], "mel_distance") for p in systems["mmtok"]["sweep"]}
        theirs = {p["value"]: _mean(p["summary"], "mel_distance") for p in systems["DAC"]["sweep"]}
        lines += [
            f"mmtok vs DAC at {n} codebooks: mel distance x{ours[n] / theirs[n]:.2f}" for n in ours if n in theirs
        ]
    return lines


LINES = {"run_image": image_lines, "run_image1d": image1d_lines, "run_audio": audio_lines}


def print_tables(results: dict, runners: dict[str, str]) -> None:
    """`runners`: each recipe's runner name (benchmarks/quality.py's Recipe.run)."""
    for name, result in results.items():
        report = json.loads(Path(result["report"]).read_text())
        peer = f", peer {result['peer_steps']} steps" if result.get("peer_steps") else ""
        use = f"code use: last training window {_pct(result['train_window_use'])}"
        if result.get("heldout_use"):
            use += f", held-out {_pct(result['heldout_use'])}"
        print(f"\n### {name}: {result['minutes']:g} min, mmtok {result['steps']} steps{peer}; {use}\n")
        print(markdown_summary(report))
        print("\n".join(LINES[runners[name]](_systems(report))))
