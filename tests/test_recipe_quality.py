"""What makes the default recipes learn on a CPU budget: the 2-D patch path, the 1-D linear path,
FSQ's level-usage loss; the default recipes' losses fall in a few steps; benchmarks/quality.py
end to end at a tiny budget."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from train_helpers import TINY_IMAGE1D_MODEL, TINY_IMAGE_MODEL

from mmtok.models import build_tokenizer
from mmtok.quantize.library import FiniteScalarQuantizer
from mmtok.train.config import load_run_config
from mmtok.train.trainer import Trainer

ROOT = Path(__file__).parents[1]
LEVELS = [8, 8, 8, 6, 5]


def test_level_usage_loss_is_low_for_spread_values_and_high_for_concentrated_ones():
    fsq = FiniteScalarQuantizer(5, LEVELS, usage_weight=1.0).train()
    torch.manual_seed(0)
    concentrated = fsq(torch.randn(4096, 5) * 0.05).losses["level_usage"]
    spread = fsq(torch.randn(4096, 5) * 2.0).losses["level_usage"]
    assert concentrated > 0.5 > 0.2 > spread
    assert fsq.eval()(torch.randn(8, 5)).loss == 0  # a training loss only
    assert FiniteScalarQuantizer(5, LEVELS).train()(torch.randn(8, 5)).losses == {}  # off by default


def _codes_before_and_after_usage_loss(fsq, values: torch.Tensor) -> tuple[int, int]:
    """Distinct codes among the values, then after 50 Adam steps on the values with the usage loss alone."""
    z = values.clone().requires_grad_()
    before = fsq(z).ids.unique().numel()
    optimizer = torch.optim.Adam([z], lr=0.05)
    for _ in range(50):
        optimizer.zero_grad()
        fsq(z).loss.backward()
        optimizer.step()
    return before, fsq(z).ids.unique().numel()


def test_level_usage_loss_spreads_values_over_more_codes():
    torch.manual_seed(0)
    fsq = FiniteScalarQuantizer(5, LEVELS, usage_weight=1.0).train()
    before, after = _codes_before_and_after_usage_loss(fsq, torch.randn(2048, 5) * 0.1)
    assert after > 4 * before


def test_code_usage_loss_sees_correlated_dimensions_that_the_level_loss_misses():
    torch.manual_seed(0)
    spread = torch.randn(4096, 1) * 2.0
    copies = spread.expand(-1, 5)  # every dimension spread over its levels, all the same value
    independent = torch.randn(4096, 5) * 2.0
    levels = FiniteScalarQuantizer(5, LEVELS, usage_weight=1.0).train()
    codes = FiniteScalarQuantizer(5, LEVELS, usage_weight=1.0, usage_over="codes").train()
    # Per dimension the two batches look alike; only the codes' usage tells them apart.
    assert abs(levels(copies).losses["level_usage"] - levels(independent).losses["level_usage"]) < 0.05
    assert codes(copies).losses["level_usage"] > 0.5 > 0.2 > codes(independent).losses["level_usage"]
    # Training on it spreads correlated values over more codes.
    before, after = _codes_before_and_after_usage_loss(codes, spread.expand(-1, 5) + 0.01 * torch.randn(4096, 5))
    assert after > 4 * before


def test_bad_level_usage_options_are_errors():
    with pytest.raises(ValueError, match="usage_weight"):
        FiniteScalarQuantizer(5, LEVELS, usage_weight=-1.0)
    with pytest.raises(ValueError, match="usage_temperature"):
        FiniteScalarQuantizer(5, LEVELS, usage_temperature=0.0)
    with pytest.raises(ValueError, match="usage_over"):
        FiniteScalarQuantizer(5, LEVELS, usage_over="dims")


def _tiny_image(patch_skip: bool) -> dict:
    fsq = {"kind": "fsq", "options": {"levels": [8, 8, 8]}}
    return {**TINY_IMAGE_MODEL, "latent_dim": 3, "patch_skip": patch_skip, "quantizer": fsq}


def test_patch_skip_is_a_linear_path_from_each_patch_to_its_token():
    torch.manual_seed(0)
    tok = build_tokenizer(_tiny_image(True)).eval()
    with torch.no_grad():  # silence the deep encoder: what is left is the patch path
        tok.encoder.layers[-1].weight.zero_()
        tok.encoder.layers[-1].bias.zero_()
    x = torch.rand(1, 3, 16, 16) * 2 - 1
    y = x.clone()
    y[..., :2, :2] += 0.5  # change one 2x2 patch only
    dx = tok.encoder(y) - tok.encoder(x)
    assert dx[..., 0, 0].abs().sum() > 0 and dx[..., 1:, :].abs().sum() == 0 and dx[..., :, 1:].abs().sum() == 0
    linear = 2 * tok.encoder(x) - tok.encoder.patch_in.bias[:, None, None]
    assert torch.allclose(tok.encoder(2 * x), linear, atol=1e-5)
    assert build_tokenizer(_tiny_image(False)).encoder.patch_in is None


def test_a_lapped_patch_path_reaches_the_neighbouring_tokens_and_keeps_the_grid():
    torch.manual_seed(0)
    f = build_tokenizer(_tiny_image(True)).config.downsampling_factor
    tok = build_tokenizer({**_tiny_image(True), "patch_kernel": 2 * f}).eval()
    with torch.no_grad():
        tok.encoder.layers[-1].weight.zero_()
        tok.encoder.layers[-1].bias.zero_()
    x = torch.rand(1, 3, 8 * f, 8 * f) * 2 - 1
    y = x.clone()
    y[..., 3 * f : 4 * f, 3 * f : 4 * f] += 0.5  # one f x f patch, in the middle
    changed = (tok.encoder(y) - tok.encoder(x)).abs().sum(dim=1)[0] > 0
    assert changed.shape == (8, 8)
    assert changed[2:5, 2:5].all() and changed.sum() == 9  # its token and the 8 around it
    assert tok.decode(tok.encode(x)).shape == x.shape
    with pytest.raises(ValueError, match="patch_kernel"):
        build_tokenizer({**_tiny_image(True), "patch_kernel": f + 1})


def _gated(levels=(8, 6, 5)) -> dict:
    fsq = {"kind": "fsq", "options": {"levels": list(levels)}}
    return {**TINY_IMAGE_MODEL, "latent_dim": len(levels), "patch_skip": True, "chroma_gate": True, "quantizer": fsq}


def test_the_chroma_gate_at_its_zero_level_decodes_exactly_gray_blocks():
    torch.manual_seed(0)
    tok = build_tokenizer(_gated()).eval()
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    ids = tok.encode(x)
    gate_level = (ids // (8 * 6)) % 5  # the last FSQ dimension; level 2 of 0..4 is its zero
    gray_ids = ids - (gate_level - 2) * (8 * 6)
    gray_ids[:, 0, 0] = ids[:, 0, 0]  # one token keeps its own gate
    with torch.no_grad():
        recon = tok.decode(gray_ids)
    chroma = (recon - recon.mean(dim=1, keepdim=True)).abs().amax(dim=1)  # (B, H, W)
    f = tok.config.downsampling_factor
    gated = chroma.clone()
    gated[:, :f, :f] = 0
    assert gated.max() == 0  # every gated block is exactly gray
    for b in range(2):  # the token left alone keeps colour unless its own gate was at zero
        assert (chroma[b, :f, :f].max() > 0) == bool(gate_level[b, 0, 0, 0] != 2)
    # The luma is not touched by the gate: the channel mean is the same as ungated.
    with torch.no_grad():
        ungated = build_tokenizer({**_gated(), "chroma_gate": False})
        ungated.load_state_dict(tok.state_dict())
        plain = ungated.decode(gray_ids)
    assert torch.allclose(recon.mean(dim=1), plain.mean(dim=1), atol=1e-6)


def test_the_chroma_gate_passes_a_gradient_at_its_zero_level():
    tok = build_tokenizer(_gated())
    latent = torch.zeros(1, 4, 4, 3, requires_grad=True)  # every dimension at its middle value
    recon = tok.decode_latent(latent)
    target = torch.zeros_like(recon)
    target[:, 0] = 1.0  # red wanted: the gate must learn to open
    (recon - target).abs().mean().backward()
    assert latent.grad[..., -1].abs().sum() > 0


def test_the_chroma_gate_needs_an_odd_last_level():
    with pytest.raises(ValueError, match="chroma_gate"):
        build_tokenizer(_gated((8, 5, 6)))


def test_gray_loss_counts_the_colour_of_reconstructions_of_gray_inputs_only():
    from mmtok.train.image_recipe import gray_chroma_loss

    torch.manual_seed(0)
    gray = (torch.rand(1, 1, 8, 8) * 2 - 1).expand(1, 3, 8, 8)
    colour = torch.rand(1, 3, 8, 8) * 2 - 1
    tinted = gray + torch.tensor([0.1, 0.0, -0.1])[None, :, None, None]
    assert gray_chroma_loss(gray, gray.clone()) == pytest.approx(0, abs=1e-6)  # float rounding of the mean
    # A tint of (+0.1, 0, -0.1) is 0.2 / 3 from gray per channel on average; half the batch is gray.
    batch = torch.cat([gray, colour]), torch.cat([tinted, colour + 0.3])
    assert gray_chroma_loss(*batch) == pytest.approx(0.2 / 3 / 2, rel=1e-5)
    assert gray_chroma_loss(colour, tinted) == 0  # colour inputs are the plain loss's business


def _chroma(pixels):
    return pixels - pixels.mean(dim=1, keepdim=True)


def test_chroma_dead_zone_turns_near_gray_gray_and_keeps_the_hue_of_colour():
    from models.image import chroma_dead_zone

    width = 8 / 127.5
    near_gray = torch.tensor([0.2, 0.2 + 5 / 127.5, 0.2 - 5 / 127.5]).view(1, 3, 1, 1)
    colour = torch.tensor([0.6, -0.2, -0.4]).view(1, 3, 1, 1)
    pale = 0.1 + colour * 1.5 * width / float(_chroma(colour).norm())  # chroma 1.5 widths long
    pixels = torch.cat([near_gray, colour, pale], dim=3).requires_grad_()
    out = chroma_dead_zone(pixels, width)
    assert torch.equal(_chroma(out)[..., 0], torch.zeros(1, 3, 1))  # exactly gray
    assert float(out[..., 0].mean().detach()) == pytest.approx(0.2)  # brightness kept
    assert torch.allclose(out[..., 1], colour[..., 0], atol=1e-6)  # over two widths: unchanged
    # Half way up the ramp: half its chroma, the same hue and brightness.
    assert torch.allclose(out[..., 2], pale[..., 0].mean() + 0.5 * _chroma(pale)[..., 0], atol=1e-6)
    out[0, 0, 0, 0].backward()  # the red of the pixel that came out gray
    # Only through its brightness (the mean of its channels): its chroma has no gradient in the zone.
    assert torch.allclose(pixels.grad[..., 0], torch.full((1, 3, 1), 1 / 3))
    assert torch.equal(pixels.grad[..., 1], torch.zeros(1, 3, 1))


def test_chroma_dead_zone_window_clears_pixel_noise_and_keeps_coherent_pale_colour():
    from models.image import chroma_dead_zone

    torch.manual_seed(0)
    width = 8 / 127.5
    noise = torch.randn(1, 3, 32, 32) * 2 * width  # chroma noise of about two widths, pixel to pixel
    gray_with_noise = 0.1 + noise - noise.mean(dim=1, keepdim=True)
    pale = 0.1 + torch.tensor([1.0, 0.0, -1.0]).view(1, 3, 1, 1) * 2.5 * width / 2**0.5  # 2.5 widths, everywhere
    pale = pale.expand(1, 3, 32, 32)
    assert _chroma(chroma_dead_zone(gray_with_noise, width)).abs().amax(dim=1).mean() > 0.5 * width  # pixels alone
    assert _chroma(chroma_dead_zone(gray_with_noise, width, window=9)).abs().amax(dim=1).mean() < 0.05 * width
    assert torch.allclose(chroma_dead_zone(pale, width, window=9), pale, atol=1e-6)


def test_the_image_decoder_applies_the_chroma_dead_zone_at_decode_not_in_training():
    from models.image import chroma_dead_zone

    torch.manual_seed(0)
    zone = {"chroma_dead_zone": 10, "chroma_dead_zone_window": 3}
    tok = build_tokenizer({**TINY_IMAGE_MODEL, "patch_skip": True, **zone})
    ids = tok.eval().encode(torch.rand(1, 3, 16, 16) * 2 - 1)
    plain = tok.train().decode(ids)  # what the training loss sees: the decoder's own colour
    zoned = tok.eval().decode(ids)
    assert torch.allclose(zoned, chroma_dead_zone(plain, 10 / 127.5, window=3), atol=1e-6)
    assert (_chroma(zoned).abs().amax(dim=1) == 0).sum() > 0  # some pixels came out gray
    assert (_chroma(plain).abs().amax(dim=1) == 0).sum() == 0
    with pytest.raises(ValueError, match="chroma_dead_zone"):
        build_tokenizer({**TINY_IMAGE_MODEL, "chroma_dead_zone": -1})
    with pytest.raises(ValueError, match="chroma_dead_zone_window"):
        build_tokenizer({**TINY_IMAGE_MODEL, "chroma_dead_zone": 10, "chroma_dead_zone_window": 4})


def test_linear_path_of_the_1d_tokenizer_ignores_the_tokens_left_out():
    torch.manual_seed(0)
    config = {**TINY_IMAGE1D_MODEL, "width": 16, "num_latent_tokens": 4, "linear_path": True}
    tok = build_tokenizer(config).eval()
    assert tok.decoder.linear.weight.abs().sum() == 0  # starts silent
    torch.nn.init.normal_(tok.decoder.linear.weight)  # as if trained
    latents = torch.randn(1, 4, 3)
    changed = latents.clone()
    changed[:, 2:] += 1.0
    two = torch.tensor([2])
    assert torch.equal(tok.decoder(latents, two), tok.decoder(changed, two))
    assert not torch.equal(tok.decoder(latents, torch.tensor([4])), tok.decoder(changed, torch.tensor([4])))


def _photos(folder: Path, count: int = 6, size: int = 48) -> None:
    """Smooth colour images (gradients with a coloured blob): learnable in a few steps."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True)
    yy, xx = np.mgrid[0:size, 0:size] / size
    for i in range(count):
        colour = rng.uniform(0, 255, 3)
        blob = np.exp(-((xx - rng.uniform()) ** 2 + (yy - rng.uniform()) ** 2) * 20)[..., None]
        pixels = colour * (0.4 + 0.6 * xx[..., None]) * (1 - blob) + 255 * blob * rng.uniform(0, 1, 3)
        Image.fromarray(pixels.clip(0, 255).astype(np.uint8)).save(folder / f"{i}.png")


@pytest.mark.parametrize(
    "config, overrides",
    [
        ("quickstart.yaml", ["model.base_channels=8", "model.image_size=32"]),
        ("image1d.yaml", ["model.width=32", "model.depth=1", "model.image_size=32"]),
    ],
)
def test_default_image_recipes_lower_their_loss_in_a_few_steps(tmp_path, config, overrides):
    _photos(tmp_path / "photos")
    steps = 60
    run = load_run_config(
        str(ROOT / "configs" / config),
        [
            f"output_dir={tmp_path / 'run'}",
            f"data.source={tmp_path / 'photos'}",
            f"train.max_steps={steps}",
            "train.log_every=1",
            "train.checkpoint_every=1000",
            "train.sample_every=1000",
            "train.batch_size=4",
            *overrides,
        ],
    )
    Trainer(run).fit()
    losses = [json.loads(line)["loss/total"] for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert len(losses) == steps
    assert np.mean(losses[-5:]) < 0.7 * np.mean(losses[:5])


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    out = tmp_path_factory.mktemp("quality")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, str(ROOT / "benchmarks" / "quality.py"), "--smoke", "--out", str(out)]
    command += ["--recipes", "quickstart", "image1d", "audio"]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return out, json.loads((out / "quality.json").read_text()), done.stdout


def _report(result: dict) -> dict:
    return json.loads(Path(result["report"]).read_text())


def test_quality_smoke_compares_the_image_tokenizer_with_the_peer_and_the_codecs_at_its_bits(smoke):
    out, results, stdout = smoke
    report = _report(results["quickstart"])  # through mmtok eval: one report, one set of metrics for all
    ours, peer = report["tokenizers"]
    assert [ours["name"], peer["name"]] == ["mmtok", "VQGAN"]
    assert [row["item"] for row in ours["items"]] == ["chelsea", "rocket", "china"]  # the quickstart's held-out
    assert peer["summary"]["rate"]["mean"] == pytest.approx(ours["summary"]["rate"]["mean"])  # equal bits
    assert {"JPEG", "WebP"} <= set(ours["matched"])
    for group in ours["matched"].values():  # the lowest quality that reaches the tokenizer's bits
        assert all(c["rate"] >= o["rate"] for c, o in zip(group["items"], ours["items"]))
        assert group["summary"]["colour_kept"]["mean"] > 0.8
    grid = Image.open(results["quickstart"]["grid"])
    columns = 1 + 2 + len(ours["matched"])  # original, the two systems, each codec at mmtok's rate
    assert grid.width > columns * 100 and grid.height > 3 * 100  # one row per photo
    assert "mmtok - VQGAN" in stdout and "| JPEG at mmtok's rate |" in stdout


def test_quality_smoke_sweeps_the_1d_tokenizer_and_keeps_the_audio(smoke):
    out, results, stdout = smoke
    one_d, two_d = _report(results["image1d"])["tokenizers"]
    bits = [point["summary"]["bits"]["mean"] for point in one_d["sweep"]]
    assert [point["value"] for point in one_d["sweep"]] == [1, 2, 4, 8] and bits == sorted(bits)
    assert two_d["name"] == "2-D" and two_d["summary"]["bits"]["mean"] > 0
    audio = _report(results["audio"])
    ours, peer = audio["tokenizers"]
    assert peer["name"] == "DAC" and [p["value"] for p in peer["sweep"]] == [p["value"] for p in ours["sweep"]]
    # The same frames and codebooks (DAC's 1,024 codes against the residual FSQ's 1,000: 0.3 % apart).
    peer_rate, our_rate = (tok["sweep"][0]["summary"]["rate"]["mean"] for tok in (peer, ours))
    assert peer_rate == pytest.approx(our_rate, rel=0.005)
    opus = {point["setting"]: point["summary"] for point in audio["baselines"]["curves"]["Opus"]}
    assert opus["12 kbps"]["mel_distance"]["mean"] < opus["6 kbps"]["mel_distance"]["mean"]
    import soundfile

    folder = Path(results["audio"]["report"]).parent / "media"
    for row in ours["items"][:2]:
        info = soundfile.info(folder / row["media"]["audio"])
        assert info.samplerate == 16000 and math.isclose(info.duration, 2.0, abs_tol=0.05)
        assert (folder / row["media"]["spectrogram"]).is_file()
    assert "mmtok mel distance at" in stdout and "mmtok vs DAC at 1 codebooks" in stdout


def test_residual_fsq_with_a_projection_per_codebook_refines_with_every_codebook():
    from mmtok.quantize import build_quantizer

    torch.manual_seed(0)
    options = {"levels": [8, 5, 5, 5], "num_codebooks": 4, "quantizer_dropout": 0.5}
    quantizer = build_quantizer("rfsq", dim=16, projection_per_codebook=True, **options)
    assert quantizer.kind == "rfsq" and quantizer.codebook_sizes == [1000] * 4
    x = torch.randn(512, 16)
    optimizer = torch.optim.Adam(quantizer.parameters(), lr=1e-2)
    for _ in range(300):
        optimizer.zero_grad()
        (quantizer(x).quantized - x).pow(2).mean().backward()
        optimizer.step()
    quantizer.eval()
    errors = [(quantizer(x, num_codebooks=n).quantized - x).pow(2).mean().item() for n in (1, 2, 3, 4)]
    assert all(b < 0.9 * a for a, b in zip(errors, errors[1:])), errors  # each codebook codes more of x
    ids = quantizer(x).ids
    assert torch.allclose(quantizer.decode_ids(ids), quantizer(x).quantized, atol=1e-5)


def test_residual_fsq_takes_the_usage_loss_per_codebook_only_with_its_own_projections():
    from mmtok.quantize import build_quantizer

    usage = {"usage_weight": 0.1, "usage_over": "codes"}
    quantizer = build_quantizer("rfsq", dim=8, levels=[4, 4], num_codebooks=3, projection_per_codebook=True, **usage)
    out = quantizer.train()(torch.randn(64, 8))
    assert sorted(out.losses) == ["level_usage/0", "level_usage/1", "level_usage/2"]
    assert out.loss.item() == pytest.approx(0.1 * sum(v.item() for v in out.losses.values()), rel=1e-5)
    assert out.loss.requires_grad
    with pytest.raises(ValueError, match="only with projection_per_codebook"):
        build_quantizer("rfsq", dim=8, levels=[4, 4], num_codebooks=3, **usage)
    with pytest.raises(ValueError, match="unknown argument"):
        build_quantizer("rfsq", dim=8, levels=[4, 4], projection_per_codebook=True, usage_wieght=0.1)
