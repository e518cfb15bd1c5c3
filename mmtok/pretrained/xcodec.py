"""X-Codec and X-Codec 2 from transformers as mmtok tokenizers: codecs whose codes also carry a
self-supervised speech model's features (HuBERT / WavLM in X-Codec, w2v-BERT 2.0 in X-Codec 2),
so both are non-causal and encode clips of one length per batch. Framing as in
mmtok.pretrained.audio.
"""

from __future__ import annotations

import dataclasses
from functools import cached_property

import torch

from mmtok.pretrained.audio import AudioCodecTokenizer
from mmtok.pretrained.base import PretrainedConfig, check_bandwidth, checked


@dataclasses.dataclass
class XcodecTokenizerConfig(PretrainedConfig):
    bandwidth: float | None = None  # kbps, one of the model's target_bandwidths; None: its default (the highest)


class XcodecTokenizer(AudioCodecTokenizer):
    family = "hf-xcodec"
    config_class = XcodecTokenizerConfig
    model_class_name = "XcodecModel"
    sample_rate_key = "sample_rate"

    @classmethod
    def check_supported(cls, config: XcodecTokenizerConfig) -> None:
        check_bandwidth(config, "X-Codec")

    @property
    def bandwidth(self) -> float:
        return self.config.bandwidth if self.config.bandwidth is not None else self.model.config.target_bandwidths[-1]

    def codebook_sizes_for(self, config) -> list[int]:
        count = self.model.quantizer.get_num_quantizers_for_bandwidth(self.bandwidth)
        return [self.model.config.codebook_size] * count

    def model_codes(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.encode(x, bandwidth=self.bandwidth, return_dict=True).audio_codes

    def decode_codes(self, codes: torch.Tensor) -> torch.Tensor:
        return self.model.decode(codes, return_dict=True).audio_values

    def code_vectors(self, ids: torch.Tensor) -> torch.Tensor:
        return self.model.quantizer.decode(ids.T[:, None, :])[0].T  # codes (n, 1, N) -> (1, dim, N)


@dataclasses.dataclass
class Xcodec2TokenizerConfig(PretrainedConfig):
    # The model's Xcodec2FeatureExtractor settings (its preprocessor_config.json): it computes the
    # semantic encoder's filterbank features, so encoding needs it. Empty: its defaults at the
    # model's sample rate and hop.
    feature_extractor: dict = dataclasses.field(default_factory=dict)


class Xcodec2Tokenizer(AudioCodecTokenizer):
    family = "hf-xcodec2"
    config_class = Xcodec2TokenizerConfig
    model_class_name = "Xcodec2Model"
    extra_frames = 1  # its feature extractor pads one sample and then up to whole frames

    @classmethod
    def check_supported(cls, config: Xcodec2TokenizerConfig) -> None:
        rate, model_rate = config.feature_extractor.get("sampling_rate"), config.model_config.get("sampling_rate")
        checked(
            rate is None or rate == model_rate,
            f"model.feature_extractor.sampling_rate is {rate}, the model's is {model_rate}",
        )

    @cached_property
    def feature_extractor(self):
        from transformers import Xcodec2FeatureExtractor

        options = {"sampling_rate": self.model.config.sampling_rate, "hop_length": self.hop_length}
        options.update({k: v for k, v in self.config.feature_extractor.items() if k != "feature_extractor_type"})
        return Xcodec2FeatureExtractor(**options)

    def codebook_sizes_for(self, config) -> list[int]:
        return [int(self.model.quantizer.quantizer.codebook.shape[0])]  # one FSQ codebook: prod(levels)

    def model_codes(self, x: torch.Tensor) -> torch.Tensor:
        extractor = self.feature_extractor
        clips = [clip[0].float().cpu() for clip in x]  # it runs the filterbank on the CPU, clip by clip
        features = extractor(clips, sampling_rate=extractor.sampling_rate, return_tensors="pt")
        features = {name: value.to(self.device) for name, value in features.items()}
        return self.model.encode(**features, return_dict=True).audio_codes

    def decode_codes(self, codes: torch.Tensor) -> torch.Tensor:
        return self.model.decode(audio_codes=codes, return_dict=True).audio_values

    def code_vectors(self, ids: torch.Tensor) -> torch.Tensor:
        return self.model.quantizer.from_codes(ids[None])[0]  # (1, N, 1) -> (1, N, dim)
