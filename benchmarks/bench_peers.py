"""`mmtok bench` row `peers`: encode and decode throughput of mmtok's image and audio tokenizers against the peers
users would otherwise pick, on the same inputs in one process: diffusers' VQModel and transformers' EnCodec,
DAC and Mimi, built at their published sizes with random weights (speed does not need trained weights)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from bench_core import BenchContext, Row, autocast, median_seconds, rate, times
from bench_models import case_of, example_batch, recipe

from mmtok.models import build_tokenizer


@dataclass
class Codec:
    """Encode and decode of one model on one batch, as callables."""

    name: str
    params: int
    encode: Callable[[], object]
    decode: Callable[[], object]


def _params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def mmtok_codec(family: str, x: torch.Tensor, device: torch.device) -> Codec:
    case = case_of(family)
    model = build_tokenizer(recipe(case)["model"]).to(device).eval()
    ids = model.encode(x)
    return Codec(f"mmtok {family} ({case.recipe})", _params(model), lambda: model.encode(x), lambda: model.decode(ids))


def vqmodel(x: torch.Tensor, device: torch.device) -> Codec:
    from diffusers import VQModel

    # The VQ-f4 autoencoder of latent diffusion (CompVis/ldm-celebahq-256): 3 levels of 128/256/512 channels,
    # 2 layers each, 3 latent channels, 8,192 codes.
    model = (
        VQModel(
            down_block_types=("DownEncoderBlock2D",) * 3,
            up_block_types=("UpDecoderBlock2D",) * 3,
            block_out_channels=(128, 256, 512),
            layers_per_block=2,
            latent_channels=3,
            num_vq_embeddings=8192,
            sample_size=256,
        )
        .to(device)
        .eval()
    )
    latents = model.encode(x).latents
    return Codec(
        "diffusers VQModel (LDM VQ-f4)", _params(model), lambda: model.encode(x), lambda: model.decode(latents)
    )


def transformers_codec(kind: str, seconds: float, batch: int, device: torch.device) -> Codec:
    import transformers

    config_class, model_class, label = {
        "encodec": (transformers.EncodecConfig, transformers.EncodecModel, "EnCodec 24 kHz, 6 kbps"),
        "dac": (transformers.DacConfig, transformers.DacModel, "DAC 16 kHz"),
        "mimi": (transformers.MimiConfig, transformers.MimiModel, "Mimi, 8 codebooks"),
    }[kind]
    config = config_class()  # the defaults are the published models' sizes
    model = model_class(config).to(device).eval()
    x = torch.randn(batch, 1, int(seconds * config.sampling_rate), generator=torch.Generator().manual_seed(0))
    x = (x * 0.1).to(device)
    options = {"encodec": {"bandwidth": 6.0}, "mimi": {"num_quantizers": 8}}.get(kind, {})
    encoded = model.encode(x, **options)
    if kind == "encodec":
        decode = lambda: model.decode(encoded.audio_codes, encoded.audio_scales)  # noqa: E731
    else:
        decode = lambda: model.decode(audio_codes=encoded.audio_codes)  # noqa: E731
    return Codec(f"transformers {label}", _params(model), lambda: model.encode(x, **options), decode)


def _compare(ctx: BenchContext, precision: str, mmtok: Codec, peer: Codec, amount: float, unit: str, case: str):
    rows = []
    for direction in ("encode", "decode"):
        seconds = {}
        for codec in (mmtok, peer):
            op = getattr(codec, direction)

            def timed(op=op):
                with torch.inference_mode(), autocast(ctx.device, precision):
                    return op()

            seconds[codec.name] = median_seconds(timed, ctx.device, ctx.repeats)
        ours, theirs = seconds[mmtok.name], seconds[peer.name]
        rows.append(
            Row(
                "peers",
                f"{direction}, {case}, {precision}: {mmtok.name} vs {peer.name}",
                f"{rate(amount, ours)} {unit}/s",
                f"{rate(amount, theirs)} {unit}/s",
                f"mmtok {times(theirs, ours)} the peer's speed",
                note=f"parameters: mmtok {mmtok.params / 1e6:.1f} M, peer {peer.params / 1e6:.1f} M",
                values={
                    "direction": direction,
                    "mmtok": mmtok.name,
                    "peer": peer.name,
                    "mmtok_seconds": ours,
                    "peer_seconds": theirs,
                },
            )
        )
    return rows


def peer_rows(ctx: BenchContext) -> list[Row]:
    precision = "bf16" if ctx.on_cuda else "fp32"
    batch = 1 if ctx.smoke else (16 if ctx.on_cuda else 4)
    rows = []
    with torch.inference_mode():
        size = 64 if ctx.smoke else 256
        x = example_batch(case_of("image"), (3, size, size), batch, ctx.device)
        rows += _compare(
            ctx,
            precision,
            mmtok_codec("image", x, ctx.device),
            vqmodel(x, ctx.device),
            batch,
            "images",
            f"{batch} × 3×{size}×{size}",
        )
        seconds = 0.25 if ctx.smoke else 10.0
        audio = example_batch(case_of("audio"), (1, int(seconds * 24_000)), batch, ctx.device) * 0.1
        ours = mmtok_codec("audio", audio, ctx.device)
        # mmtok is timed again beside each peer: a ratio is only as steady as the minutes its two timings share.
        for kind in ("encodec", "dac", "mimi"):
            peer = transformers_codec(kind, seconds, batch, ctx.device)
            rows += _compare(ctx, precision, ours, peer, batch * seconds, "s of audio", f"{batch} × {seconds:g} s")
    return rows
