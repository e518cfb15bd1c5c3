"""EEG tokenizer: one token per patch (1 s at 200 Hz by default) of one channel, for any montage,
channel order and duration; ids (B, channels, patches, num_codebooks).

Input is the packed layout of mmtok.data.eeg_montage: (B, channels, 3 + samples), each channel's
electrode position (NaN: unknown) followed by its microvolts, as `EEGInputSpec` prepares it.

Encoder: each patch -> `PatchEmbedding` (samples, multi-scale convolutions, log spectrum), plus the
electrode's `ElectrodeEmbedding` (from its position on the 10-05 montage, a learned fallback for
names without one), then transformer blocks whose attention is causal in time over a window of
`context_patches` with a relative temporal embedding, mixing channels (default) or not
(`mix_channels: false`: a channel gets the same ids whatever else the montage holds). Then a
quantizer: residual VQ with cosine codes by default (mmtok's VQ), FSQ or any other kind as an
option. The decoder mirrors the encoder without electrode embeddings (ids carry no positions)
and gives back microvolts, (B, channels, patches * patch_size), each token's frame crossfaded into
its neighbours' (`CrossfadeSynthesis`); a tail shorter than a patch is not encoded.

Patches whose samples are NaN are missing (the training dataset pads short recordings and small
caps so): nothing attends to them, they get no code (id -1) and feed no codebook update.

Long recordings are encoded and decoded in windows of `window_patches` patches, each with the left
context its causal layers reach (`depth * (context_patches - 1)` patches: every layer looks
`context_patches - 1` back), so memory follows the window, not the recording, and the ids are
exactly those of encoding the whole recording at once. Decoding is windowed the same way, plus
one patch on either side: a patch's samples are crossfaded with its neighbours' frames.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from mmtok.data.eeg_io import EEGInputSpec
from mmtok.data.eeg_montage import POSITION_VALUES, unpack_eeg
from mmtok.models.eeg_layers import Block, CosineBasis, CrossfadeSynthesis, ElectrodeEmbedding, PatchEmbedding
from mmtok.quantize import QuantizerOutput
from mmtok.tokenizer import QuantizerConfig, Tokenizer
from mmtok.vocab import VocabLayout


def cosine_residual_vq() -> QuantizerConfig:
    """8 residual codebooks of 1,024 codes, factorised 8-d l2-normalised codes (DAC's recipe): 80 bits
    per patch; quantizer dropout trains every prefix, so the first n codebooks are a coarser
    tokenizer of their own."""
    options = {
        "codebook_size": 1024,
        "num_codebooks": 8,
        "codebook_dim": 8,
        "metric": "cosine",
        "quantizer_dropout": 0.5,
    }
    return QuantizerConfig("rvq", options=options)


@dataclasses.dataclass
class EEGTokenizerConfig:
    # Preparation (recorded in the artifact's input spec; see mmtok.data.eeg_io).
    sample_rate: int = 200
    band_pass: list[float | None] | None = dataclasses.field(default_factory=lambda: [0.1, 75.0])
    notch_hz: list[float] = dataclasses.field(default_factory=lambda: [50.0])
    clip_uv: float | None = 500.0
    # The network sees microvolts / signal_scale_uv.
    signal_scale_uv: float = 100.0
    patch_size: int = 200
    crossfade: int = 50  # samples over which decoded neighbouring patches are blended (even)
    width: int = 128
    depth: int = 4
    decoder_depth: int = 2
    heads: int = 4
    context_patches: int = 4  # a patch attends to itself and the context_patches - 1 before it
    mix_channels: bool = True
    conv_kernels: list[int] = dataclasses.field(default_factory=lambda: [21, 15, 9, 5])
    conv_channels: int = 8
    position_frequencies: int = 6
    latent_dim: int = 32
    # 8 residual codebooks of 1,024 cosine codes, 80 bits per channel-second (configs/eeg.yaml's).
    quantizer: QuantizerConfig = dataclasses.field(default_factory=cosine_residual_vq)

    def __post_init__(self):
        for name in ("sample_rate", "patch_size", "width", "depth", "heads", "context_patches", "latent_dim"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive")
        if self.decoder_depth < 0 or self.position_frequencies < 0 or self.signal_scale_uv <= 0:
            raise ValueError("decoder_depth and position_frequencies must be >= 0, signal_scale_uv > 0")
        if not self.conv_kernels or any(k < 1 for k in self.conv_kernels):
            raise ValueError("conv_kernels must be positive sizes")


def _blocks(config: EEGTokenizerConfig, depth: int) -> nn.ModuleList:
    return nn.ModuleList(
        Block(config.width, config.heads, config.context_patches, config.mix_channels) for _ in range(depth)
    )


class EEGTokenizer(Tokenizer):
    family = "eeg"
    modality = "eeg"
    config_class = EEGTokenizerConfig
    token_axes = ("channels", "patches")
    # Patches encoded or decoded per step of a long recording (plus their context): 256 s at the
    # default 1 s patches; a 64-channel window then needs some hundreds of MB, whatever the length.
    window_patches: int = 256
    rate_channel_counts = (19, 64)  # the montages `mmtok inspect` quotes rates for

    def __init__(self, config: EEGTokenizerConfig):
        super().__init__(config)
        c = config
        self.patch_embedding = PatchEmbedding(c.patch_size, c.width, c.conv_kernels, c.conv_channels)
        self.electrode_embedding = ElectrodeEmbedding(c.width, c.position_frequencies)
        self.encoder = _blocks(c, c.depth)
        self.encoder_norm = nn.LayerNorm(c.width)
        self.to_latent = nn.Linear(c.width, c.latent_dim)
        self.quantizer = c.quantizer.build(c.latent_dim)
        self.from_latent = nn.Linear(c.latent_dim, c.width)
        self.decoder = _blocks(c, c.decoder_depth)
        self.decoder_norm = nn.LayerNorm(c.width)
        self.to_samples = nn.Linear(c.width, c.patch_size + c.crossfade)
        self.to_waveform = CosineBasis(c.patch_size + c.crossfade)
        self.synthesis = CrossfadeSynthesis(c.patch_size, c.crossfade)

    # -- the family's part of the template ----------------------------------------------------------
    def check_input(self, x: torch.Tensor) -> None:
        if x.ndim != 3 or not x.is_floating_point():
            raise ValueError(f"expected EEG (B, channels, 3 + samples) as EEGInputSpec packs it, got {tuple(x.shape)}")
        samples = x.shape[-1] - POSITION_VALUES
        if x.shape[1] < 1 or samples < self.config.patch_size:
            raise ValueError(
                f"EEG input has {x.shape[1]} channels and {samples} samples; it needs at least one channel "
                f"and one patch ({self.config.patch_size} samples at {self.config.sample_rate} Hz)"
            )

    def patches(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Packed input -> positions (B, C, 3), patches (B, C, N, P) in network units (missing
        samples zeroed) and which patches are present (B, C, N)."""
        positions, signal = unpack_eeg(x)
        size = self.config.patch_size
        count = signal.shape[-1] // size
        patches = signal[..., : count * size].unflatten(-1, (count, size)) / self.config.signal_scale_uv
        present = ~patches.isnan().any(dim=-1)
        return positions, torch.nan_to_num(patches), present

    def encode_latent(self, x: torch.Tensor) -> torch.Tensor:
        return self._encode(x)[0]

    def _encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        positions, patches, present = self.patches(x)
        h = self.patch_embedding(patches) + self.electrode_embedding(positions)[:, :, None]
        for block in self.encoder:
            h = block(h, present)
        return self.to_latent(self.encoder_norm(h)), present

    def decode_latent(self, latent: torch.Tensor, present: torch.Tensor | None = None) -> torch.Tensor:
        """(B, C, N, latent_dim) -> microvolts (B, C, N * patch_size)."""
        if present is None:
            present = torch.ones(latent.shape[:-1], dtype=torch.bool, device=latent.device)
        h = self.from_latent(latent)
        for block in self.decoder:
            h = block(h, present)
        frames = self.to_waveform(self.to_samples(self.decoder_norm(h))) * self.config.signal_scale_uv
        return self.synthesis(frames, present)

    def quantize(
        self, x: torch.Tensor, *, num_codebooks: int | None = None, num_tokens: int | None = None
    ) -> QuantizerOutput:
        """The template's quantize, except that missing patches get no code (id -1, zero latent)."""
        if num_tokens is not None:
            self._checked_num_tokens(num_tokens)  # raises: EEG ids follow the input's length
        self.check_input(x)
        latent, present = self._encode(x)
        options = {} if num_codebooks is None else {"num_codebooks": num_codebooks}
        if bool(present.all()):
            return self.quantizer(latent, **options)
        out = self.quantizer(latent[present], **options)
        quantized = torch.zeros_like(latent)
        quantized[present] = out.quantized.to(quantized.dtype)
        ids = out.ids.new_full((*present.shape, out.ids.shape[-1]), -1)
        ids[present] = out.ids
        return QuantizerOutput(quantized, ids, out.loss, out.losses)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, QuantizerOutput]:
        out = self.quantize(x)
        return self.decode_latent(out.quantized, present=out.ids[..., 0] >= 0), out

    # -- long recordings, window by window ----------------------------------------------------------
    def _windows(self, count: int, left: int, right: int = 0) -> list[tuple[int, int, int, int]]:
        """(first, stop, context_first, context_stop) patches of each window over `count` patches,
        with `left` patches of context before it and `right` after (cut at the recording's ends)."""
        step = max(1, int(self.window_patches))
        return [
            (first, min(count, first + step), max(0, first - left), min(count, first + step + right))
            for first in range(0, count, step)
        ]

    @torch.no_grad()
    def encode(self, x: torch.Tensor, *, num_codebooks: int | None = None, num_tokens: int | None = None):
        """The template's encode, window by window for a recording longer than `window_patches`
        (the same ids: each window brings the left context the encoder's layers reach)."""
        if num_tokens is not None:
            self._checked_num_tokens(num_tokens)  # raises: EEG ids follow the input's length
        self.check_input(x)
        size = self.config.patch_size
        positions, signal = unpack_eeg(x)
        count = signal.shape[-1] // size
        if count <= self.window_patches:
            return self.quantize(x, num_codebooks=num_codebooks).ids
        reach = self.config.depth * (self.config.context_patches - 1)
        parts = []
        for first, stop, context_first, _ in self._windows(count, reach):
            piece = torch.cat([positions, signal[..., context_first * size : stop * size]], dim=-1)
            parts.append(self.quantize(piece, num_codebooks=num_codebooks).ids[:, :, first - context_first :])
        return torch.cat(parts, dim=2)

    @torch.no_grad()
    def decode(self, ids: torch.Tensor) -> torch.Tensor:
        """The template's decode, window by window for more than `window_patches` patches (the same
        signal up to float rounding: each window brings the left context the decoder's layers
        reach, plus the neighbouring patch on either side whose frame crossfades into it)."""
        count = ids.shape[2] if ids.ndim == 4 else 0
        if count <= self.window_patches:
            return super().decode(ids)
        reach = self.config.decoder_depth * (self.config.context_patches - 1) + 1
        size = self.config.patch_size
        parts = []
        for first, stop, context_first, context_stop in self._windows(count, reach, right=1):
            signal = super().decode(ids[:, :, context_first:context_stop])
            parts.append(signal[..., (first - context_first) * size : (stop - context_first) * size])
        return torch.cat(parts, dim=-1)

    @property
    def padding_axes(self) -> tuple[int, int] | None:
        # Attention is causal in time: samples appended to an input cannot reach its earlier patches.
        return (-1, 1)

    def token_shape_for(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        return (input_shape[-2], (input_shape[-1] - POSITION_VALUES) // self.config.patch_size)

    def last_layer_weight(self) -> torch.Tensor:
        return self.to_samples.weight

    @classmethod
    def input_spec_for(cls, config: EEGTokenizerConfig) -> EEGInputSpec:
        return EEGInputSpec(config.sample_rate, config.band_pass, config.notch_hz, config.clip_uv)

    def vocab_layout(self, **options) -> VocabLayout:
        # Both axes vary: a row marker closes each channel, so a flat sequence gives its shape back.
        return VocabLayout(self.modality, [None, None], self.codebook_sizes, **{"row_markers": True, **options})

    def rate_examples(self):
        rate = self.config.sample_rate
        return [
            (f"{channels} ch, {seconds} s", (channels, POSITION_VALUES + seconds * rate), float(seconds), "second")
            for channels, seconds in ((c, 10) for c in self.rate_channel_counts)
        ]
