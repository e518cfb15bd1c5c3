"""The tables benchmarks/quality.py prints (markdown, pasted into the README as they come)."""

from __future__ import annotations


def _pct(values) -> str:
    return "/".join(f"{100 * v:.0f}%" for v in values)


def print_image(name: str, result: dict) -> None:
    methods = result["methods"]
    print(
        f"\n### {name}: {result['minutes']:g} min, mmtok {result['steps']} steps, VQGAN {result['peer_steps']} steps; "
        f"code use: last training window {_pct(result['train_window_use'])}, held-out {_pct(result['heldout_use'])}"
    )
    print("| method | bits per pixel | PSNR dB | SSIM | colour kept |\n|---|---:|---:|---:|---:|")
    for label, entry in methods.items():
        m = entry["mean"]
        print(f"| {label} | {m['bpp']:.3f} | {m['psnr']:.2f} | {m['ssim']:.3f} | {100 * m['colour_kept']:.0f}% |")
    ours, peer = methods["mmtok"]["mean"], methods["VQGAN"]["mean"]
    print(
        f"mmtok - VQGAN: {ours['psnr'] - peer['psnr']:+.2f} dB PSNR, {ours['ssim'] - peer['ssim']:+.3f} SSIM, "
        f"colour kept x{ours['colour_kept'] / max(peer['colour_kept'], 1e-9):.2f}"
    )


def print_image1d(name: str, result: dict) -> None:
    print(
        f"\n### {name}: {result['minutes']:g} min, {result['steps']} steps, code use {_pct(result['train_window_use'])}"
    )
    print("| k | bits | PSNR dB | SSIM |\n|---:|---:|---:|---:|")
    for row in result["rows"]:
        print(f"| {row['k']} | {row['bits']:.0f} | {row['psnr']:.2f} | {row['ssim']:.3f} |")
    reference = result.get("reference_2d")
    if reference:
        print(f"| 2-D | {reference['bits']:.0f} | {reference['psnr']:.2f} | |")
    psnrs = [row["psnr"] for row in result["rows"]]
    rising = all(b > a for a, b in zip(psnrs, psnrs[1:]))
    print(f"PSNR rises at every k: {'yes' if rising else 'no'}")


def print_audio(name: str, result: dict) -> None:
    print(
        f"\n### {name}: {result['minutes']:g} min, mmtok {result['steps']} steps, DAC {result['peer_steps']} steps, "
        f"{result['clips']} held-out clips; code use {_pct(result['train_window_use'])}"
    )
    print("| codec | kbps | mel distance | STOI | PESQ-WB | SI-SDR dB |\n|---|---:|---:|---:|---:|---:|")
    for label, entry in result["methods"].items():
        m = entry["mean"]
        scores = f"{m['mel']:.3f} | {m['stoi']:.3f} | {m['pesq']:.2f} | {m['si_sdr']:.2f}"
        print(f"| {label} | {entry['kbps']:.2f} | {scores} |")
    mel = {label: entry["mean"]["mel"] for label, entry in result["methods"].items()}
    ours = [label for label in mel if label.startswith("mmtok")]
    steps = [f"{mel[a]:.3f} -> {mel[b]:.3f} ({100 * (mel[a] - mel[b]) / mel[a]:+.1f}%)" for a, b in zip(ours, ours[1:])]
    print("mmtok mel distance as codebooks are added: " + ", ".join(steps))
    for label in ours:
        peer = label.replace("mmtok", "DAC")
        print(f"{label} vs {peer}: mel distance x{mel[label] / max(mel[peer], 1e-9):.2f}")


PRINTERS = {"image": print_image, "image1d": print_image1d, "audio": print_audio}


def print_tables(report: dict) -> None:
    for name, result in report.items():
        kind = "audio" if "clips" in result else "image1d" if "rows" in result else "image"
        PRINTERS[kind](name, result)
