"""`mmtok eval` end to end on tiny random-weight tokenizers and generated media: the report's
numbers, its sweeps, and its page as headless Chromium renders it."""

import json
import math
import os
import re
import shutil
import subprocess

import numpy as np
import pytest
import soundfile as sf
from audio_helpers import speech_like
from PIL import Image
from train_helpers import TINY_AUDIO_MODEL, TINY_IMAGE1D_MODEL, TINY_IMAGE_MODEL, write_images

from mmtok.eval.harness import EvalOptions, run_eval
from mmtok.models import build_tokenizer

IMAGE_SIZE = 48
TINY_RVQ_IMAGE = {
    **TINY_IMAGE_MODEL,
    "quantizer": {"kind": "rvq", "options": {"codebook_size": 16, "num_codebooks": 2}},
}
BROWSER_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def image_report(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval-image")
    write_images(root / "images", 3, size=IMAGE_SIZE)
    (root / "images" / "broken.png").write_bytes(b"not a picture")  # left out, and said so
    grid = build_tokenizer(TINY_RVQ_IMAGE).save_pretrained(root / "grid")
    flexible = build_tokenizer(TINY_IMAGE1D_MODEL).save_pretrained(root / "flexible")
    out = root / "report"
    report = run_eval([grid, flexible], str(root / "images"), out, EvalOptions(media_items=2))
    return report, out


def test_report_rates_and_scores(image_report):
    report, out = image_report
    grid, flexible = report["tokenizers"]
    assert [grid["name"], flexible["name"]] == ["grid", "flexible"]
    # 2x downsampling, 2 codebooks of 16 codes: (48/2)^2 positions x 8 bits over 48^2 pixels = 2 bpp.
    assert grid["summary"]["rate"]["mean"] == pytest.approx(2.0)
    # The 1-D tokenizer's input path centre-crops to its 16 px: 8 tokens x log2(512) bits over 16^2 pixels.
    assert flexible["summary"]["rate"]["mean"] == pytest.approx(8 * 9 / 16**2)
    for tok in (grid, flexible):
        psnr = tok["summary"]["psnr"]
        assert psnr["n"] == 3 and psnr["low"] <= psnr["mean"] <= psnr["high"]
        assert set(tok["matched"]) >= {"JPEG", "WebP"}
        for group in tok["matched"].values():  # every codec at the tokenizer's rate, on every item
            assert [row["item"] for row in group["items"]] == [row["item"] for row in tok["items"]]
        health = tok["codebooks"]
        tokens = 3 * (IMAGE_SIZE // 2) ** 2 if tok is grid else 3 * 8  # every position of every item, once
        assert [c["total"] for c in health] == [tokens] * tok["num_codebooks"]
        assert all(c["use_vs_uniform"] == pytest.approx(c["utilization"] / c["uniform_utilization"]) for c in health)
        speed = tok["throughput"]  # pixels per second of encoding: items per second x the item size
        assert speed["amount_name"] == "Mpx" and speed["encode_amount_per_s"] == pytest.approx(
            speed["encode_items_per_s"] * (IMAGE_SIZE**2 if tok is grid else 16**2) / 1e6
        )
        assert [error["item"] for error in tok["errors"]] == ["broken.png"]

    def refuse(constant):
        raise AssertionError(f"report.json holds {constant}, which strict JSON readers refuse")

    saved = json.loads((out / "report.json").read_text(), parse_constant=refuse)
    assert saved["tokenizers"][0]["summary"]["rate"]["mean"] == pytest.approx(2.0)
    assert (out / "plots" / "rd_psnr.png").is_file()


def test_sweeps_give_monotone_bits(image_report):
    report, _ = image_report
    grid, flexible = report["tokenizers"]
    assert [(p["kind"], p["value"]) for p in grid["sweep"]] == [("codebooks", 1), ("codebooks", 2)]
    assert [p["value"] for p in flexible["sweep"]] == [1, 2, 4, 8]
    for tok in (grid, flexible):
        bits = [p["summary"]["bits"]["mean"] for p in tok["sweep"]]
        assert all(a < b for a, b in zip(bits, bits[1:]))
        assert bits[-1] == pytest.approx(tok["summary"]["bits"]["mean"])  # the full setting is the last point
    assert flexible["sweep"][0]["summary"]["bits"]["mean"] == pytest.approx(9)  # one token of 512 codes
    for curve in report["baselines"]["curves"].values():
        rates = [p["summary"]["rate"]["mean"] for p in curve]
        assert rates == sorted(rates) and len(set(rates)) == len(rates)


def _browser():
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        if os.environ.get("MMTOK_REQUIRE_BROWSER"):
            pytest.fail("chromium is not installed (apt-get install -y chromium); .ci/run installs it")
        pytest.skip("chromium is not installed")
    return found


def test_report_page_renders_in_headless_chromium(image_report, tmp_path):
    report, out = image_report
    browser = _browser()
    page = (out / "index.html").resolve().as_uri()
    flags = [*BROWSER_FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1200,1800"]
    shot = tmp_path / "report.png"
    subprocess.run([browser, *flags, f"--screenshot={shot}", page], check=True, capture_output=True, timeout=120)
    dom = subprocess.run(
        [browser, *flags, "--virtual-time-budget=5000", "--dump-dom", page],
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout

    pixels = np.asarray(Image.open(shot).convert("L"), dtype=np.float64)
    assert pixels.shape == (1800, 1200) and pixels.std() > 10  # a page was drawn, not a blank window
    summary = re.search(r"<table id=\"summary\">(.*?)</table>", dom, re.S)
    assert summary, "the summary table is missing"
    for name in ("grid", "flexible", "JPEG at grid's rate", "WebP at flexible's rate"):
        assert name in summary.group(1)
    images = re.findall(r"<img [^>]*src=\"([^\"]+)\"", dom)
    # The curves, the code-use histograms, the grid and 2 items x (original, 2 tokenizers, codecs).
    assert len(images) >= len(report["plots"]["rate_distortion"]) + 2 + 1 + 2 * 3
    loaded = re.search(r'data-images-loaded="(\d+)"', dom)
    broken = re.search(r'data-images-broken="(\d+)"', dom)
    assert loaded and broken, "the page's load script did not run"
    assert int(broken.group(1)) == 0 and int(loaded.group(1)) == len(images)


@pytest.fixture(scope="module")
def audio_report(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval-audio")
    (root / "clips").mkdir()
    for index in range(2):
        sf.write(root / "clips" / f"clip{index}.wav", speech_like(1.0, seed=index), 16_000)
    codec = build_tokenizer(TINY_AUDIO_MODEL).save_pretrained(root / "codec")
    out = root / "report"
    return run_eval([codec], str(root / "clips"), out, EvalOptions(media_items=2)), out


def test_audio_report_players_point_at_files(audio_report):
    report, out = audio_report
    page = (out / "index.html").read_text()
    sources = re.findall(r"<audio [^>]*src='([^']+)'", page)
    assert len(sources) == 2 * 3  # 2 items x (original, the codec, Opus at its rate)
    for source in sources:
        samples, rate = sf.read(out / source)
        assert rate == 16_000 and samples.shape[0] == 16_000
    tok = report["tokenizers"][0]
    # 8x downsampling at 16 kHz: 2,000 frames/s x 2 codebooks x 6 bits = 24 kbps.
    assert tok["summary"]["rate"]["mean"] == pytest.approx(24.0, rel=1e-3)
    assert [p["value"] for p in tok["sweep"]] == [1, 2]
    assert tok["sweep"][0]["summary"]["rate"]["mean"] == pytest.approx(12.0, rel=1e-3)
    opus = tok["matched"]["Opus"]["summary"]
    assert opus["rate"]["mean"] >= 24.0 and math.isfinite(opus["mel_distance"]["mean"])  # at least the same bits
    # A random-weight codec against Opus at at least its bits: every metric has to tell them apart.
    for key in ("dnsmos_ovrl", "speaker_similarity", "stoi", "si_sdr"):
        assert tok["summary"][key]["mean"] < opus[key]["mean"], key
    # DNSMOS needs no reference, so the originals get a score too: the ceiling, on its own row.
    assert report["baselines"]["reference"]["dnsmos_ovrl"]["mean"] > tok["summary"]["dnsmos_ovrl"]["mean"]
    assert "original (uncoded)" in page


def test_video_and_eeg_reports_set_video_codecs_and_dct_beside_the_tokenizer(tmp_path):
    from eeg_helpers import TINY_EEG, recording, write_npz
    from video_helpers import TINY_VIDEO, moving_frames, write_clip

    (tmp_path / "clips").mkdir()
    write_clip(tmp_path / "clips" / "moving.mp4", moving_frames(9))
    video = run_eval(
        [build_tokenizer(TINY_VIDEO).save_pretrained(tmp_path / "video")], str(tmp_path / "clips"), tmp_path / "v"
    )
    tok = video["tokenizers"][0]
    assert set(tok["summary"]) >= {"psnr", "ssim", "temporal_error"}
    for codec in ("H.264", "AV1"):
        assert tok["matched"][codec]["items"][0]["setting"].startswith("CRF")
        crf_rates = [p["summary"]["rate"]["mean"] for p in video["baselines"]["curves"][codec]]
        assert crf_rates == sorted(crf_rates) and len(crf_rates) == 5
    strip = Image.open(tmp_path / "v" / "media" / tok["items"][0]["media"]["strip"])
    assert strip.size == (6 * 32, 32)  # 6 of the 9 frames side by side

    (tmp_path / "recordings").mkdir()
    for seed in range(2):
        write_npz(tmp_path / "recordings" / f"r{seed}.npz", recording(seed=seed))
    eeg = run_eval(
        [build_tokenizer(TINY_EEG).save_pretrained(tmp_path / "eeg")], str(tmp_path / "recordings"), tmp_path / "e"
    )
    tok = eeg["tokenizers"][0]
    # 2 codebooks of 16 codes per 50-sample patch at 200 Hz: 4 patches/s x 8 bits = 32 bits per channel-second.
    assert tok["summary"]["rate"]["mean"] == pytest.approx(32.0)
    assert [p["summary"]["rate"]["mean"] for p in tok["sweep"]] == pytest.approx([16.0, 32.0])
    dct = tok["matched"]["DCT"]["summary"]
    assert dct["rate"]["mean"] <= 32.0 and 0 <= dct["nmse"]["mean"] < 1
    assert (tmp_path / "e" / "media" / tok["items"][0]["media"]["trace"]).is_file()


def _write_ts(path, trials: list[tuple[np.ndarray, str]]) -> None:
    header = "@problemName Rhythms\n@timestamps false\n@univariate false\n@equalLength true\n"
    header += f"@seriesLength {trials[0][0].shape[1]}\n@classLabel true alpha beta\n@data\n"
    lines = [
        ":".join(",".join(f"{v:.3f}" for v in channel) for channel in data) + f":{label}" for data, label in trials
    ]
    path.write_text(header + "\n".join(lines) + "\n")


def test_eeg_token_probes_beside_the_band_power_probe(tmp_path):
    from eeg_helpers import TINY_EEG

    rng = np.random.default_rng(0)
    seconds = np.arange(400) / 200

    def trials(count):
        made = []
        for index in range(count):
            label, hz = ("alpha", 10.0) if index % 2 == 0 else ("beta", 22.0)
            signal = 20 * np.sin(2 * np.pi * hz * seconds + rng.uniform(0, 6)) + rng.normal(0, 3, (2, 400))
            made.append((signal, label))
        return made

    folder = tmp_path / "sets" / "Rhythms"
    folder.mkdir(parents=True)
    (tmp_path / "sets" / "auxiliary").mkdir()
    (tmp_path / "sets" / "auxiliary" / "Rhythms.json").write_text('{"sfreq": 200, "channels": ["O1", "O2"]}')
    _write_ts(folder / "Rhythms_TRAIN.ts", trials(20))
    _write_ts(folder / "Rhythms_TEST.ts", trials(6))
    tokenizer = build_tokenizer(TINY_EEG).save_pretrained(tmp_path / "eeg")
    options = EvalOptions(probe_train=str(folder / "Rhythms_TRAIN.ts"), sweep=False, media_items=1)
    report = run_eval([tokenizer], str(folder / "Rhythms_TEST.ts"), tmp_path / "report", options)
    assert report["items"] == ["Rhythms_TEST.ts"]
    assert [row["item"] for row in report["tokenizers"][0]["items"]] == [f"Rhythms_TEST.ts#{i}" for i in range(6)]
    probes = report["probes"]
    assert probes["band powers (raw signal)"]["balanced_accuracy"] == 1.0  # alpha vs beta power separates them
    # Even random-weight tokens depend on the rhythm, so their probe beats chance (0.5) on the 6 trials.
    assert probes["eeg tokens"]["balanced_accuracy"] > 0.5 and probes["eeg tokens"]["kappa"] > 0
    assert "<table id='probes'>" in (tmp_path / "report" / "index.html").read_text()


def test_a_converted_pretrained_codec_goes_through_the_same_harness(tmp_path):
    pytest.importorskip("transformers")
    from pretrained_models import save

    from mmtok.pretrained import convert

    codec = convert(save("hf-encodec", tmp_path / "source"), tmp_path / "encodec")
    (tmp_path / "clips").mkdir()
    sf.write(tmp_path / "clips" / "speech.wav", speech_like(1.0), 16_000)
    report = run_eval([codec], str(tmp_path / "clips"), tmp_path / "report", EvalOptions(baselines=False))
    tok = report["tokenizers"][0]
    assert tok["family"] == "hf-encodec" and tok["summary"]["mel_distance"]["n"] == 1
    rates = [point["summary"]["rate"]["mean"] for point in tok["sweep"]]  # its residual codebooks, 1..all
    assert [point["value"] for point in tok["sweep"]] == [1, 2] and rates[0] < rates[1]
    assert rates[1] == pytest.approx(tok["summary"]["rate"]["mean"])


def test_the_eval_command(image_report, capsys):
    from mmtok.cli import main

    _, out = image_report
    root, report = out.parent, out.parent / "cli-report"
    argv = ["eval", str(root / "grid"), str(root / "images"), "--report", str(report), "--no-sweep", "--limit", "2"]
    assert main([*argv, "--no-baselines"]) == 0
    printed = capsys.readouterr().out
    assert "| **grid** | 2 |" in printed and f"report: {report}/index.html" in printed
    saved = json.loads((report / "report.json").read_text())
    tok = saved["tokenizers"][0]
    # The first 2 items in key order: the broken file (left out, listed) and one image.
    assert [row["item"] for row in tok["items"]] == ["img_000.png"] and tok["errors"][0]["item"] == "broken.png"
    assert tok["sweep"] == [] and tok["matched"] == {} and saved["baselines"]["curves"] == {}
    with pytest.raises(SystemExit):  # DATA alone, no tokenizer
        main(["eval", str(root / "images"), "--report", str(report)])


def test_a_peer_given_as_functions_shares_the_tables_curves_and_grid(image_report, tmp_path):
    import torch.nn.functional as F

    from mmtok.eval.harness import evaluate, load_items
    from mmtok.eval.report.text import markdown_summary
    from mmtok.eval.systems import ReconstructionSystem, TokenizerSystem

    report, out = image_report
    root = out.parent
    grid = TokenizerSystem("grid", __import__("mmtok").load_tokenizer(root / "grid"))

    def blur(x, setting):  # averages f x f blocks: a coarser setting loses more
        factor = 4 if setting is None else setting[1]
        return F.interpolate(F.avg_pool2d(x, factor), scale_factor=factor, mode="nearest")

    peer = ReconstructionSystem(
        "blocks",
        "image",
        grid.input_spec,
        blur,
        bits=lambda x, setting: x.shape[-2] * x.shape[-1] * 24 / (4 if setting is None else setting[1]) ** 2,
        settings=[("factor", 8), ("factor", 4)],
        full_setting=("factor", 4),
    )
    items = load_items(str(root / "images"), "image")
    peer_report = evaluate([grid, peer], items, tmp_path / "report", EvalOptions(media_items=2, baselines=False))
    ours, theirs = peer_report["tokenizers"]
    assert theirs["name"] == "blocks" and theirs["codebooks"] == [] and theirs["family"] == "peer"
    assert theirs["summary"]["rate"]["mean"] == pytest.approx(24 / 16)  # 24 bits per 4 x 4 block
    assert [p["summary"]["rate"]["mean"] for p in theirs["sweep"]] == pytest.approx([24 / 64, 24 / 16])
    coarse, fine = (p["summary"]["psnr"]["mean"] for p in theirs["sweep"])
    assert coarse < fine == pytest.approx(theirs["summary"]["psnr"]["mean"])  # the full setting is the main row
    assert theirs["throughput"]["encode_items_per_s"] is None and theirs["throughput"]["decode_items_per_s"] > 0
    # Colour kept is a set figure: the ratio of the mean colourfulness out to the mean in.
    kept = theirs["summary"]["colour_kept"]["mean"]
    assert kept == pytest.approx(theirs["summary"]["colour_out"]["mean"] / theirs["summary"]["colour_in"]["mean"])
    assert 0 < kept < 1  # block averages wash colour out
    text = markdown_summary(peer_report)
    assert "| **blocks** | 1.5 |" in text and "blocks: decode" in text and "(the whole round trip)" in text
    assert ours["summary"]["psnr"]["mean"] == pytest.approx(report["tokenizers"][0]["summary"]["psnr"]["mean"])
    # Its pictures beside the tokenizer's, its row in the page; no code-use plot, as it has no ids.
    assert (tmp_path / "report" / "media" / theirs["items"][0]["media"]["image"]).is_file()
    assert "blocks" in (tmp_path / "report" / "index.html").read_text()
    assert set(peer_report["plots"]["codebooks"]) == {"grid"} and "grid" in peer_report["plots"]
