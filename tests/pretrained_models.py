"""Tiny random-weight versions of every pretrained model mmtok converts, and each model's own way
of encoding and decoding (as its documentation calls it), for the tests to compare mmtok against."""

from __future__ import annotations

from pathlib import Path

import torch
import transformers as hf

HUBERT = {
    "model_type": "hubert",
    "hidden_size": 16,
    "num_hidden_layers": 1,
    "num_attention_heads": 2,
    "intermediate_size": 16,
    "conv_dim": [8] * 7,
    "num_conv_pos_embeddings": 4,
    "num_conv_pos_embedding_groups": 2,
}
W2V_BERT = {
    "model_type": "wav2vec2-bert",
    "hidden_size": 16,
    "num_hidden_layers": 1,
    "num_attention_heads": 2,
    "intermediate_size": 16,
    "output_hidden_size": 16,
    "conv_depthwise_kernel_size": 3,
    "feature_projection_input_dim": 160,
}
VQ_IMAGE = {
    "base_channels": 32,
    "channel_multiplier": [1, 2],
    "num_res_blocks": 1,
    "embed_dim": 4,
    "latent_channels": 4,
}


def _encodec():
    config = hf.EncodecConfig(
        sampling_rate=16000,
        num_filters=4,
        upsampling_ratios=[4, 4],
        codebook_size=64,
        codebook_dim=16,
        hidden_size=16,
        num_lstm_layers=1,
        target_bandwidths=[12.0, 24.0],
    )
    return hf.EncodecModel(config)


def _dac():
    config = hf.DacConfig(
        encoder_hidden_size=4,
        downsampling_ratios=[2, 4],
        decoder_hidden_size=16,
        n_codebooks=3,
        codebook_size=32,
        codebook_dim=4,
        sampling_rate=16000,
    )
    return hf.DacModel(config)


def _mimi():
    config = hf.MimiConfig(
        hidden_size=32,
        num_filters=4,
        upsampling_ratios=[4, 4],
        codebook_size=32,
        codebook_dim=16,
        num_quantizers=4,
        vector_quantization_hidden_dimension=16,
        upsample_groups=32,
        num_hidden_layers=1,
        intermediate_size=32,
        num_attention_heads=2,
        num_key_value_heads=2,
        sliding_window=16,
    )
    return hf.MimiModel(config)


def _xcodec():
    acoustic = {
        "encoder_hidden_size": 2,
        "downsampling_ratios": [8, 5, 4, 2],
        "upsampling_ratios": [8, 5, 4, 2],
        "decoder_hidden_size": 16,
        "hidden_size": 16,
    }
    config = hf.XcodecConfig(
        acoustic_model_config=acoustic, semantic_model_config=HUBERT, codebook_size=32, target_bandwidths=[0.5, 1.0]
    )
    return hf.XcodecModel(config)


def _xcodec2():
    config = hf.Xcodec2Config(
        hidden_size=32,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        head_dim=16,
        encoder_hidden_size=4,
        downsampling_ratios=[2, 2, 4, 4, 5],
        semantic_model_config=W2V_BERT,
        quantization_dim=48,
        quantization_levels=[4, 4, 4],
    )
    return hf.Xcodec2Model(config)


def _chameleon():
    return hf.ChameleonVQVAE(hf.ChameleonVQVAEConfig(num_embeddings=64, resolution=32, attn_resolutions=[], **VQ_IMAGE))


def _janus():
    config = hf.JanusVQVAEConfig(
        num_embeddings=64, num_patches=8, projection_dim=8, image_token_embed_dim=8, **VQ_IMAGE
    )
    return hf.JanusVQVAE(config)


def _emu3():
    config = hf.Emu3VQVAEConfig(
        codebook_size=64, attn_resolutions=[], hidden_size=64, num_attention_heads=1, **VQ_IMAGE
    )
    return hf.Emu3VQVAE(config)


def _vqmodel():
    from diffusers import VQModel

    return VQModel(
        block_out_channels=(8, 16),
        down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2,
        latent_channels=4,
        num_vq_embeddings=64,
        norm_num_groups=4,
        layers_per_block=1,
        sample_size=16,
    )


BUILDERS = {
    "hf-encodec": _encodec,
    "hf-dac": _dac,
    "hf-mimi": _mimi,
    "hf-xcodec": _xcodec,
    "hf-xcodec2": _xcodec2,
    "hf-chameleon": _chameleon,
    "hf-janus": _janus,
    "hf-emu3": _emu3,
    "diffusers-vqmodel": _vqmodel,
}
AUDIO = ("hf-encodec", "hf-dac", "hf-mimi", "hf-xcodec", "hf-xcodec2")
HOPS = {"hf-encodec": 16, "hf-dac": 8, "hf-mimi": 32, "hf-xcodec": 320, "hf-xcodec2": 320}
IMAGE_SIZES = {"hf-chameleon": 32, "hf-janus": 16, "hf-emu3": 16, "diffusers-vqmodel": 16}  # the converted size


def chameleon_lm_config(vq, vocabulary: dict) -> hf.ChameleonConfig:
    """A one-layer Chameleon LM around the image tokenizer `vq` (what `mmtok convert` reads it from)."""
    return hf.ChameleonConfig(
        vocab_size=100,
        hidden_size=16,
        intermediate_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        vq_config=vq.config.to_dict(),
        vocabulary_map=vocabulary,
    )


def build(family: str, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = BUILDERS[family]().eval()
    if family in AUDIO:
        _spread_codes(family, model)
    return model


def _spread_codes(family: str, model) -> None:
    """EnCodec, Mimi and X-Codec start with all-zero codebooks (training fills them) and X-Codec
    2's random projection squeezes its latents into one FSQ level: every id would be the same and
    the tests would prove nothing. Codebooks get vectors drawn from what they see, as a k-means
    initialisation would; X-Codec 2's projection is fitted to spread its latents over the levels."""
    x = torch.stack([example(family, 24, seed) for seed in range(4)])[..., : 24 * HOPS[family]]
    with torch.no_grad():
        if family == "hf-xcodec2":
            seen = []
            hook = model.quantizer.register_forward_pre_hook(lambda module, args: seen.append(args[0]))
            own_codes(family, model, x)
            hook.remove()
            latents = seen[0].reshape(-1, seen[0].shape[-1])
            projection = model.quantizer.project_in
            projection.weight.normal_().div_(latents.std(0).mean() * latents.shape[-1] ** 0.5 / 2)
            projection.bias.copy_(-projection.weight @ latents.mean(0))
        codebooks = [m for m in model.modules() if type(m).__name__.endswith("EuclideanCodebook")]
        for codebook in codebooks:  # in encoding order: each sees what the layers before it left
            seen = []
            codebook.quantize = lambda h, cb=codebook, seen=seen: (seen.append(h), type(cb).quantize(cb, h))[1]
            own_codes(family, model, x)
            del codebook.quantize
            if not seen:  # a codebook beyond the default rate (EnCodec's lowest bandwidth uses 2 of 4)
                continue
            vectors = seen[0].reshape(-1, seen[0].shape[-1])
            size = codebook.cluster_usage.shape[0] if hasattr(codebook, "cluster_usage") else codebook.embed.shape[0]
            picks = vectors[torch.randperm(len(vectors))[:size]]
            if hasattr(codebook, "embed_sum"):  # Mimi: codes are embed_sum / cluster_usage, cached
                codebook.embed_sum.copy_(picks)
                codebook.cluster_usage.fill_(1.0)
                codebook._embed = None
            else:
                codebook.embed.copy_(picks)
                codebook.embed_avg.copy_(picks)
                codebook.cluster_size.fill_(1.0)


def save(family: str, folder: Path) -> Path:
    """A save_pretrained folder of the tiny model, as a hub snapshot would hold it."""
    build(family).save_pretrained(folder)
    return folder


def example(family: str, frames: int, seed: int) -> torch.Tensor:
    """One input without batch axis: audio of `frames` frames plus a partial one, or an image of
    `frames` x `frames` tokens."""
    generator = torch.Generator().manual_seed(seed)
    if family in AUDIO:
        return torch.rand(1, frames * HOPS[family] + 3, generator=generator) - 0.5  # within [-1, 1]: no clipping
    side = frames * 2  # every tiny image model downsamples by 2
    return torch.rand(3, side, side, generator=generator) * 2 - 1


# -- each model's own API ------------------------------------------------------------------------------------
def own_codes(family: str, model, x: torch.Tensor) -> torch.Tensor:
    """The model's own encoding of a batch, as (B, *token_shape, codebooks) int64."""
    with torch.no_grad():
        if family == "hf-encodec":
            return model.encode(x, bandwidth=model.config.target_bandwidths[0]).audio_codes[0].transpose(1, 2)
        if family in ("hf-dac", "hf-mimi", "hf-xcodec"):
            return model.encode(x).audio_codes.transpose(1, 2)
        if family == "hf-xcodec2":
            extractor = hf.Xcodec2FeatureExtractor(sampling_rate=16000, hop_length=320)
            features = extractor([clip[0] for clip in x], sampling_rate=16000, return_tensors="pt")
            return model.encode(**features).audio_codes.transpose(1, 2).long()
        b, _, h, w = x.shape
        if family == "hf-emu3":
            tokens = model.encode(x, image_sizes=torch.tensor([[h, w]] * b)).image_tokens
            return torch.stack(tokens)[..., None]
        if family == "diffusers-vqmodel":
            indices = model.quantize(model.encode(x).latents)[2][2]
        else:
            indices = model.encode(x).image_tokens
        return indices.view(b, h // 2, w // 2, 1)


def own_decode(family: str, model, ids: torch.Tensor) -> torch.Tensor:
    """The model's own decoding of ids (B, *token_shape, codebooks)."""
    with torch.no_grad():
        codes = ids.transpose(1, 2) if family in AUDIO else ids[..., 0]
        if family == "hf-encodec":
            return model.decode(codes[None], [None]).audio_values
        if family == "hf-dac":
            return model.decode(audio_codes=codes).audio_values[:, None]
        if family in ("hf-mimi", "hf-xcodec"):
            return model.decode(codes).audio_values
        if family == "hf-xcodec2":
            return model.decode(audio_codes=codes).audio_values
        if family == "hf-janus":
            return model.decode(codes.flatten(1))
        if family == "hf-emu3":
            return model.decode(codes)
        if family == "diffusers-vqmodel":  # its decode re-quantizes the encoder's latents
            b, h, w = codes.shape
            latents = model.quantize.get_codebook_entry(codes.flatten(), (b, h, w, 4))
            return model.decode(latents).sample
        raise ValueError(f"{family} has no decoder")
