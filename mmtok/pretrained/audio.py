"""Pretrained neural audio codecs from transformers as mmtok tokenizers: EnCodec, DAC, Mimi (and
the X-Codec pair in mmtok.pretrained.xcodec, on the same base).

Framing: a clip of T samples is cut to whole frames, floor(T / hop) * hop samples, before the
model sees it, as mmtok's own codecs frame audio. A model's last partial frame would be computed
from the padding the model adds itself, which differs from the padding a batch of longer clips
gives it; without it, a causal model's frames never see padding, so clips of different lengths
share a batch right-padded to the longest and each keeps exactly its own ids. Non-causal models
encode clips of one length per batch. Recordings keep their level (no loudness normalisation):
the models were trained on audio as it comes.
"""

from __future__ import annotations

import dataclasses

import torch

from mmtok.data.audio_io import AudioInputSpec
from mmtok.pretrained.base import PretrainedConfig, PretrainedTokenizer, check_bandwidth, check_num_quantizers, checked
from mmtok.vocab import VocabLayout


class AudioCodecTokenizer(PretrainedTokenizer):
    modality = "audio"
    token_axes = ("frames",)
    sample_rate_key = "sampling_rate"  # where the model's config keeps its sample rate
    channels_key: str | None = None  # ... and its channel count (None: mono only)
    extra_frames = 0  # frames the model's own preprocessing adds to floor(T / hop)

    @property
    def hop_length(self) -> int:
        return int(self.model.config.hop_length)

    @property
    def causal(self) -> bool:
        return False

    @classmethod
    def input_spec_for(cls, config: PretrainedConfig) -> AudioInputSpec:
        channels = config.model_config.get(cls.channels_key, 1) if cls.channels_key else 1
        return AudioInputSpec(int(config.model_config[cls.sample_rate_key]), int(channels), loudness_db=None)

    def probe_input(self, generator: torch.Generator) -> torch.Tensor:
        spec = self.input_spec()  # one second of quiet noise
        return torch.randn(1, spec.channels, spec.sample_rate, generator=generator) * 0.1

    def check_input(self, x: torch.Tensor) -> None:
        channels = self.input_spec().channels
        if x.ndim != 3 or x.shape[1] != channels:
            raise ValueError(f"expected audio (B, {channels}, T), got {tuple(x.shape)}")
        if x.shape[-1] < self.hop_length:
            raise ValueError(f"audio of {x.shape[-1]} samples is shorter than one frame ({self.hop_length} samples)")

    def model_ids(self, x: torch.Tensor) -> torch.Tensor:
        whole = x[..., : x.shape[-1] // self.hop_length * self.hop_length]
        return self.model_codes(whole).transpose(1, 2)

    def model_decode(self, ids: torch.Tensor) -> torch.Tensor:
        return self.decode_codes(ids.transpose(1, 2))

    def model_codes(self, x: torch.Tensor) -> torch.Tensor:
        """Audio of whole frames (B, C, T) -> the model's codes (B, codebooks, frames)."""
        raise NotImplementedError

    def decode_codes(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes (B, n, frames) -> audio (B, C, samples), as the model's decode gives it."""
        raise NotImplementedError

    @property
    def padding_axes(self) -> tuple[int, int] | None:
        # A causal model's frame j sees samples < (j + 1) * hop only: right padding cannot reach it.
        return (-1, 0) if self.causal else None

    def token_shape_for(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        return (input_shape[-1] // self.hop_length + self.extra_frames,)

    def vocab_layout(self, **options) -> VocabLayout:
        return VocabLayout("audio", [None], self.codebook_sizes, **options)

    def rate_examples(self):
        spec = self.input_spec()
        return [(f"{s} s", (spec.channels, s * spec.sample_rate), float(s), "second") for s in (1, 10)]


# -- EnCodec -----------------------------------------------------------------------------------------
@dataclasses.dataclass
class EncodecTokenizerConfig(PretrainedConfig):
    bandwidth: float | None = None  # kbps, one of the model's target_bandwidths; None: its default (the lowest)


class EncodecTokenizer(AudioCodecTokenizer):
    family = "hf-encodec"
    config_class = EncodecTokenizerConfig
    model_class_name = "EncodecModel"
    channels_key = "audio_channels"

    @classmethod
    def check_supported(cls, config: EncodecTokenizerConfig) -> None:
        model = config.model_config
        checked(
            not model.get("normalize"),
            "EnCodec models that normalise their input (the 48 kHz one) return a float scale per chunk "
            "besides the codes, and decoding needs it: integer ids cannot carry it",
        )
        checked(
            model.get("chunk_length_s") is None,
            "EnCodec models that encode overlapping chunks (chunk_length_s) are not supported",
        )
        check_bandwidth(config, "EnCodec")

    @property
    def bandwidth(self) -> float:
        return self.config.bandwidth if self.config.bandwidth is not None else self.model.config.target_bandwidths[0]

    @property
    def causal(self) -> bool:
        return bool(self.model.config.use_causal_conv)  # its LSTM runs forward only

    @property
    def min_padded_length(self) -> int:
        """Its convolutions reflect-pad on the left, and reflect an input no longer than the padding
        only after extending it with zeros on the right: then padding reaches earlier frames. So a
        clip shares a padded batch only when it is longer than every padding it meets."""
        if self.model.config.pad_mode != "reflect":
            return 0
        from transformers.models.encodec.modeling_encodec import EncodecConv1d

        need, stride = 0, 1  # stride: input samples per step at the current layer
        for conv in (m for m in self.model.encoder.modules() if isinstance(m, EncodecConv1d)):
            need = max(need, (int(conv.padding_total) + 1) * stride)
            stride *= conv.conv.stride[0]
        return need

    def codebook_sizes_for(self, config) -> list[int]:
        count = self.model.quantizer.get_num_quantizers_for_bandwidth(self.bandwidth)
        return [self.model.config.codebook_size] * count

    def model_codes(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.encode(x, bandwidth=self.bandwidth, return_dict=True).audio_codes[0]  # one chunk

    def decode_codes(self, codes: torch.Tensor) -> torch.Tensor:
        return self.model.decode(codes[None], [None], return_dict=True).audio_values

    def code_vectors(self, ids: torch.Tensor) -> torch.Tensor:
        return self.model.quantizer.decode(ids.T[:, None, :])[0].T  # codes (n, 1, N) -> (1, dim, N)


# -- DAC ----------------------------------------------------------------------------------------------------
@dataclasses.dataclass
class DacTokenizerConfig(PretrainedConfig):
    num_quantizers: int | None = None  # leading codebooks to use; None: all (the model's default)


class DacTokenizer(AudioCodecTokenizer):
    family = "hf-dac"
    config_class = DacTokenizerConfig
    model_class_name = "DacModel"

    @classmethod
    def check_supported(cls, config: DacTokenizerConfig) -> None:
        check_num_quantizers(config, 1, config.model_config.get("n_codebooks"))

    def codebook_sizes_for(self, config) -> list[int]:
        return [self.model.config.codebook_size] * (config.num_quantizers or self.model.config.n_codebooks)

    def model_codes(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.encode(x, n_quantizers=self.config.num_quantizers, return_dict=True).audio_codes

    def decode_codes(self, codes: torch.Tensor) -> torch.Tensor:
        return self.model.decode(audio_codes=codes, return_dict=True).audio_values[:, None]  # it drops the channel

    def code_vectors(self, ids: torch.Tensor) -> torch.Tensor:
        return self.model.quantizer.from_codes(ids.T[None])[0][0].T  # codes (1, n, N) -> (1, dim, N)


# -- Mimi -------------------------------------------------------------------------------------------------
@dataclasses.dataclass
class MimiTokenizerConfig(PretrainedConfig):
    num_quantizers: int | None = None  # leading codebooks (the first is semantic); None: all


class MimiTokenizer(AudioCodecTokenizer):
    family = "hf-mimi"
    config_class = MimiTokenizerConfig
    model_class_name = "MimiModel"
    channels_key = "audio_channels"

    @classmethod
    def check_supported(cls, config: MimiTokenizerConfig) -> None:
        model = config.model_config
        check_num_quantizers(config, model.get("num_semantic_quantizers", 1), model.get("num_quantizers"))

    @property
    def hop_length(self) -> int:
        config = self.model.config
        return round(config.sampling_rate / config.frame_rate)  # the SEANet hop times the latent downsampling

    @property
    def causal(self) -> bool:
        # Causal convolutions and a causal (sliding-window) transformer.
        return bool(self.model.config.use_causal_conv)

    def codebook_sizes_for(self, config) -> list[int]:
        return [self.model.config.codebook_size] * (config.num_quantizers or self.model.config.num_quantizers)

    def model_codes(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.encode(x, num_quantizers=self.config.num_quantizers, return_dict=True).audio_codes

    def decode_codes(self, codes: torch.Tensor) -> torch.Tensor:
        return self.model.decode(codes, return_dict=True).audio_values

    def code_vectors(self, ids: torch.Tensor) -> torch.Tensor:
        return self.model.quantizer.decode(ids.T[None])[0].T  # codes (1, n, N) -> (1, dim, N)
