"""The 1-D flexible-length image tokenizer: shapes per k, prefixes, coarse-to-fine training, errors,
the shared trainer and the rate-distortion sweep."""

import math

import numpy as np
import pytest
import torch
from train_helpers import TINY_IMAGE1D_MODEL, read_metrics, tiny_config, write_config, write_images

from mmtok.config import ConfigError
from mmtok.models import build_tokenizer
from mmtok.train.config import load_run_config
from mmtok.train.trainer import Trainer

K = 4


def tiny_model(quantizer=None, **fields) -> dict:
    config = {**TINY_IMAGE1D_MODEL, "num_latent_tokens": K}
    return {**config, **({"quantizer": quantizer} if quantizer else {}), **fields}


QUANTIZERS = {
    "fsq": {"kind": "fsq", "options": {"levels": [8, 8, 8]}},
    "grouped-fsq": {"kind": "fsq", "groups": 3, "options": {"levels": [5]}},
    "rvq": {"kind": "rvq", "options": {"codebook_size": 16, "num_codebooks": 2}},
}


@pytest.mark.parametrize("kind", QUANTIZERS)
def test_shapes_for_every_k(kind):
    torch.manual_seed(0)
    tok = build_tokenizer(tiny_model(QUANTIZERS[kind]))
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    recon, out = tok(x)  # training: k drawn per example, every position still quantized
    assert recon.shape == x.shape and out.ids.shape == (2, K, tok.num_codebooks)
    tok.eval()
    assert tok.token_shape_for(x.shape) == (K,)
    for k in range(1, K + 1):
        ids = tok.encode(x, num_tokens=k)
        assert ids.shape == (2, k, tok.num_codebooks) and ids.dtype == torch.int64
        assert tok.decode(ids).shape == x.shape
    assert tok.ids_by_position(x).shape == (K, 2, tok.num_codebooks)


def test_decode_of_all_k_tokens_is_the_full_decode_and_prefixes_match():
    torch.manual_seed(0)
    tok = build_tokenizer(tiny_model(token_dropout="pow2")).eval()
    x = torch.rand(3, 3, 16, 16) * 2 - 1
    full = tok.encode(x)
    assert torch.equal(tok.encode(x, num_tokens=K), full)
    assert torch.equal(tok.decode(tok.encode(x, num_tokens=K)), tok.decode(full))
    torch.testing.assert_close(tok.decode(full), tok(x)[0])  # eval forward decodes all K tokens
    for k in range(1, K):
        assert torch.equal(tok.encode(x, num_tokens=k), full[:, :k])  # a shorter code is a prefix
        assert torch.equal(tok.decode(tok.encode(x, num_tokens=k)), tok.decode(full[:, :k]))


def quadrant_images(count: int, generator: torch.Generator) -> torch.Tensor:
    """16x16 images of four flat colours: 12 numbers each, more than one 3-dim token can hold."""
    colours = torch.rand(count, 3, 2, 2, generator=generator) * 2 - 1
    return colours.repeat_interleave(8, dim=2).repeat_interleave(8, dim=3)


def test_a_trained_model_reconstructs_better_with_all_tokens_than_with_one():
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    images = quadrant_images(32, generator)
    tok = build_tokenizer(tiny_model(token_dropout="uniform"))
    optimizer = torch.optim.AdamW(tok.parameters(), lr=1e-3, betas=(0.9, 0.99))
    for _ in range(300):
        x = images[torch.randint(len(images), (16,), generator=generator)]
        recon, _ = tok(x)
        loss = (recon - x).abs().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    tok.eval()
    error = {k: (tok.decode(tok.encode(images, num_tokens=k)) - images).abs().mean().item() for k in (1, K)}
    assert error[K] < 0.85 * error[1], error


def test_invalid_k_and_image_size_are_clear_errors():
    tok = build_tokenizer(tiny_model()).eval()
    x = torch.zeros(1, 3, 16, 16)
    for bad in (0, K + 1, -1):
        with pytest.raises(ValueError, match=rf"num_tokens must be an integer in \[1, {K}\]"):
            tok.encode(x, num_tokens=bad)
    ids = tok.encode(x)
    with pytest.raises(ValueError, match=rf"num_tokens must be an integer in \[1, {K}\], got 0"):
        tok.decode(ids[:, :0])
    with pytest.raises(ValueError, match=rf"got {K + 1}"):
        tok.decode(torch.cat([ids, ids[:, :1]], dim=1))
    with pytest.raises(ValueError, match=r"expected ids \(B, k, num_codebooks\)"):
        tok.decode(ids[0])
    with pytest.raises(ValueError, match=r"expected images \(B, 3, 16, 16\), got \(1, 3, 32, 32\)"):
        tok.encode(torch.zeros(1, 3, 32, 32))
    with pytest.raises(ValueError, match="reads 16x16 images"):
        tok.token_shape_for((3, 24, 24))
    with pytest.raises(ConfigError, match="token_dropout must be one of"):
        build_tokenizer(tiny_model(token_dropout="sometimes"))
    with pytest.raises(ConfigError, match="divisible by patch_size"):
        build_tokenizer(tiny_model(patch_size=5))


def test_export_round_trip_with_variable_length_llm_segments(tmp_path):
    from mmtok.artifact import load_tokenizer

    torch.manual_seed(0)
    tok = build_tokenizer(tiny_model({"kind": "fsq", "groups": 3, "options": {"levels": [5]}})).eval()
    frozen = load_tokenizer(tok.save_pretrained(tmp_path / "tok"))
    pixels = np.random.default_rng(0).integers(0, 256, (20, 24, 3), dtype=np.uint8)  # centre-cropped to 16x16
    ids = frozen.encode(pixels, num_tokens=2)
    assert ids.shape == (1, 2, 3)
    torch.testing.assert_close(frozen.decode(ids), tok.decode(ids))
    llm_ids = frozen.vocab.to_llm_ids(ids[0])
    assert len(llm_ids) == 2 + 2 * 3  # start, k x codebooks, end
    [segment] = frozen.vocab.media_segments(llm_ids)
    assert torch.equal(segment, ids[0])
    assert frozen.decode_media(segment[None]).shape == (1, 16, 16, 3)


def test_trains_through_the_shared_trainer_with_the_gan_phase(tmp_path):
    data = tmp_path / "data"
    write_images(data, 4)
    # 32 px: the PatchGAN discriminator needs at least that.
    config = tiny_config(
        tmp_path / "run",
        data,
        data={"size": 32},
        train={"max_steps": 2, "checkpoint_every": 100},
        loss={"gan_start_step": 1},
    )
    config["model"] = tiny_model(image_size=32, token_dropout="pow2")
    trainer = Trainer(load_run_config(write_config(tmp_path / "c.yaml", config), []))
    trainer.fit()
    assert trainer.step == 2
    metrics = read_metrics(tmp_path / "run")
    assert all(math.isfinite(m["loss/total"]) for m in metrics)
    assert "loss/adaptive_weight" in metrics[-1]  # the GAN step balanced on the decoder's last layer
    assert trainer.last_health and trainer.last_health[0]["total"] > 0


def test_eval_sweeps_the_first_k_tokens_at_k_tokens_bits(tmp_path):
    from mmtok.eval.harness import EvalOptions, evaluate
    from mmtok.eval.systems import TokenizerSystem

    torch.manual_seed(0)
    tok = build_tokenizer(tiny_model({"kind": "fsq", "groups": 3, "options": {"levels": [5]}}))
    rng = np.random.default_rng(0)
    images = [
        ("small", rng.integers(0, 256, (12, 20, 3), dtype=np.uint8)),  # upscaled, then cropped
        ("large", rng.integers(0, 256, (40, 30, 3), dtype=np.uint8)),
    ]
    options = EvalOptions(baselines=False, media_items=0)
    result = evaluate([TokenizerSystem.from_model("1-D", tok)], images, tmp_path, options)["tokenizers"][0]
    assert [point["value"] for point in result["sweep"]] == [1, 2, 4]
    for point in result["sweep"]:
        assert point["summary"]["bits"]["mean"] == pytest.approx(point["value"] * 3 * math.log2(5))
        assert math.isfinite(point["summary"]["psnr"]["mean"]) and point["summary"]["psnr"]["n"] == 2
    # The prefix of k tokens decodes exactly as encode(num_tokens=k) would have it.
    x = tok.input_spec().prepare([images[1][1]]).tensor
    with torch.no_grad():
        assert torch.equal(tok.encode(x)[:, :2], tok.encode(x, num_tokens=2))
