"""Audio codec tokenizer: a strided convolutional encoder/decoder (SEANet/DAC style, Snake or ELU
activations) around any mmtok quantizer, residual FSQ by default.

Framing is the same offline and streaming: a signal of T samples gives floor(T / hop) frames,
hop = prod(strides); no frame ever looks at padding on its right. A causal model is therefore
streamable exactly: `with tok.streaming(): tok.encode_chunk(chunk)` carries each convolution's
left context between chunks and emits the same ids as encoding the whole signal at once.

Inputs of any length: `encode_stream` takes a recording piece by piece (causal: the streaming
path, ids identical to whole encoding; non-causal: `encode_long`'s windows with a receptive-field
margin), in chunks of `chunk_seconds`, and `decode` (without gradients) runs in chunks of frames
with a margin of the decoder's receptive field. A recording shorter than one frame (hop samples)
is a ValueError that says the minimum, alone and in a batch alike.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Iterable, Iterator
from typing import ClassVar

import torch
from torch import nn

from mmtok.data.audio_io import AudioInputSpec
from mmtok.models.audio_stft import ISTFTDecoder, STFTEncoder
from mmtok.models.streaming import StreamableConv, is_streaming, receptive_field, rechunk, streaming
from mmtok.pieces import blocks_with_context
from mmtok.tokenizer import QuantizerConfig, Tokenizer
from mmtok.vocab import VocabLayout


def residual_fsq() -> QuantizerConfig:
    # The shipped recipe's (configs/audio_rvq.yaml): 8 residual FSQ codebooks of 8x5x5x5 = 1,000 codes
    # (5.98 kbps at 75 frames/s; FSQ cannot collapse, where cosine RVQ used 1-2 % of its codes in a CPU
    # budget, README "Default recipes on a CPU budget"); quantizer dropout trains every prefix, so the
    # first n codebooks are a coarser tokenizer of their own.
    return QuantizerConfig("rfsq", options={"levels": [8, 5, 5, 5], "num_codebooks": 8, "quantizer_dropout": 0.5})


@dataclasses.dataclass
class AudioTokenizerConfig:
    sample_rate: int = 24000
    channels: int = 1
    base_channels: int = 32
    strides: list[int] = dataclasses.field(default_factory=lambda: [2, 4, 5, 8])  # hop 320: 75 Hz at 24 kHz
    kernel_size: int = 7
    dilations: list[int] = dataclasses.field(default_factory=lambda: [1, 3, 9])
    activation: str = "snake"  # "snake" or "elu"
    causal: bool = True
    latent_dim: int = 64
    quantizer: QuantizerConfig = dataclasses.field(default_factory=residual_fsq)
    # Every recording is scaled to this RMS level (dBFS) before encoding, in training and when
    # tokenizing; the gain is recorded so decoding can restore the level. None: keep the level.
    loudness_db: float | None = -20.0
    max_gain_db: float = 30.0
    # A linear path from each hop of samples to its frame's latent beside the encoder, and back
    # beside the decoder (starting silent): a learned block transform that carries the waveform,
    # phase included, from the first steps, which the deep layers then refine.
    frame_skip: bool = False
    # Long inputs: `encode_stream` / `encode_long` encode, and `decode` decodes, this many seconds
    # at a time (memory follows it, not the recording's length).
    chunk_seconds: float = 10.0
    # "conv": the strided waveform encoder and transposed-convolution decoder above. "stft": an STFT
    # analysis and ConvNeXt blocks at the frame rate, and a Vocos-style decoder that predicts each
    # frame's STFT and inverts it (models/audio_stft.py): a fraction of the compute, phase from the start.
    architecture: str = "conv"
    n_fft: int | None = None  # "stft": the window, a multiple of the hop; None: 4 hops
    frame_width: int = 256  # "stft": channels of the frame-rate ConvNeXt blocks
    frame_blocks: int = 4  # "stft": ConvNeXt blocks in the encoder and in the decoder
    frame_kernel: int = 7  # "stft": the blocks' depthwise kernel, in frames

    def __post_init__(self):
        if self.activation not in ("snake", "elu"):
            raise ValueError(f"activation must be 'snake' or 'elu', got {self.activation!r}")
        if not self.strides or any(s < 1 for s in self.strides):
            raise ValueError("strides must be positive integers")
        for name in ("sample_rate", "channels", "base_channels", "kernel_size", "latent_dim"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive")
        if not self.chunk_seconds > 0:
            raise ValueError(f"chunk_seconds must be positive, got {self.chunk_seconds}")
        if self.architecture not in ("conv", "stft"):
            raise ValueError(f"architecture must be 'conv' or 'stft', got {self.architecture!r}")
        if self.architecture == "stft":
            if self.frame_skip:
                raise ValueError("frame_skip is the conv architecture's linear path; the stft one is linear already")
            if self.stft_window % self.hop_length or self.stft_window < self.hop_length:
                raise ValueError(f"n_fft must be a multiple of the hop {self.hop_length}, got {self.stft_window}")
            if min(self.frame_width, self.frame_blocks, self.frame_kernel) < 1:
                raise ValueError("frame_width, frame_blocks and frame_kernel must be positive")

    @property
    def hop_length(self) -> int:
        return math.prod(self.strides)

    @property
    def stft_window(self) -> int:
        return self.n_fft or 4 * self.hop_length

    @property
    def frame_rate(self) -> float:
        return self.sample_rate / self.hop_length


class Snake(nn.Module):
    """x + sin^2(a x) / a with a learned per channel: a periodic bias that suits waveforms (BigVGAN, DAC)."""

    def __init__(self, channels: int):
        super().__init__()
        self.alpha = nn.Parameter(torch.ones(1, channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + torch.sin(self.alpha * x).square() / (self.alpha + 1e-9)


def activation(kind: str, channels: int) -> nn.Module:
    return Snake(channels) if kind == "snake" else nn.ELU()


class ResidualUnit(nn.Module):
    def __init__(self, channels: int, dilation: int, config: AudioTokenizerConfig):
        super().__init__()
        self.body = nn.Sequential(
            activation(config.activation, channels),
            StreamableConv(channels, channels, config.kernel_size, dilation=dilation, causal=config.causal),
            activation(config.activation, channels),
            StreamableConv(channels, channels, 1, causal=config.causal),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class AudioEncoder(nn.Module):
    def __init__(self, config: AudioTokenizerConfig):
        super().__init__()
        width = config.base_channels
        layers: list[nn.Module] = [StreamableConv(config.channels, width, config.kernel_size, causal=config.causal)]
        for stride in config.strides:
            layers += [ResidualUnit(width, d, config) for d in config.dilations]
            layers += [
                activation(config.activation, width),
                StreamableConv(width, width * 2, 2 * stride, stride=stride, causal=config.causal),
            ]
            width *= 2
        layers += [
            activation(config.activation, width),
            StreamableConv(width, config.latent_dim, 3, causal=config.causal),
        ]
        self.layers = nn.Sequential(*layers)
        hop = config.hop_length
        self.frame_in = (
            StreamableConv(config.channels, config.latent_dim, hop, stride=hop, causal=config.causal)
            if config.frame_skip
            else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        latent = self.layers(x)
        return latent if self.frame_in is None else latent + self.frame_in(x)

    def receptive_field(self) -> int:
        """Input samples that can influence one output frame (walks the convolutions in order)."""
        return receptive_field(self.layers)


class Upsample1d(nn.Module):
    """Transposed convolution trimmed to exactly `stride` x the input length (right-trimmed when causal)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, causal: bool):
        super().__init__()
        self.conv = nn.ConvTranspose1d(in_channels, out_channels, 2 * stride, stride=stride)
        self.stride, self.causal = stride, causal

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        left = 0 if self.causal else self.stride // 2
        return y[..., left : left + x.shape[-1] * self.stride]


class AudioDecoder(nn.Module):
    def __init__(self, config: AudioTokenizerConfig):
        super().__init__()
        width = config.base_channels * 2 ** len(config.strides)
        layers: list[nn.Module] = [StreamableConv(config.latent_dim, width, config.kernel_size, causal=config.causal)]
        for stride in reversed(config.strides):
            layers += [activation(config.activation, width), Upsample1d(width, width // 2, stride, config.causal)]
            width //= 2
            layers += [ResidualUnit(width, d, config) for d in config.dilations]
        layers += [activation(config.activation, width)]
        self.layers = nn.Sequential(*layers)
        self.to_waveform = StreamableConv(width, config.channels, config.kernel_size, causal=config.causal)
        hop = config.hop_length
        self.frame_out = (
            nn.ConvTranspose1d(config.latent_dim, config.channels, hop, stride=hop) if config.frame_skip else None
        )
        if self.frame_out is not None:
            nn.init.zeros_(self.frame_out.weight)
            nn.init.zeros_(self.frame_out.bias)

    def forward(self, z: torch.Tensor, first_frame: int = 0) -> torch.Tensor:
        """Latents (B, D, frames) -> samples. Convolutions alone: the same at any `first_frame`."""
        wave = self.to_waveform(self.layers(z))
        return wave if self.frame_out is None else wave + self.frame_out(z)

    def last_layer_weight(self) -> torch.Tensor:
        return self.to_waveform.conv.weight

    def lookahead_frames(self) -> int:
        """Latent frames after a frame that reach its samples: none when causal."""
        return 0 if self.to_waveform.causal else self.context_frames()

    def context_frames(self) -> int:
        """An upper bound on how many latent frames before a frame (and after it, for a non-causal
        model) reach that frame's samples: walks the layers from the output back to the latents,
        where a convolution adds its span - 1 and a transposed convolution of stride s turns n
        samples of context into ceil(n / s) + 2 inputs (its kernel of 2s reaches one input on
        either side of the one a sample falls in). `frame_out` reaches its own frame only."""
        context = self.to_waveform.span - 1
        for module in reversed(list(self.layers.modules())):
            if isinstance(module, StreamableConv):
                context += module.span - 1
            elif isinstance(module, Upsample1d):
                context = -(-context // module.stride) + 2
        return context


class AudioTokenizer(Tokenizer):
    family = "audio"
    modality = "audio"
    config_class = AudioTokenizerConfig
    token_axes = ("frames",)
    streams: ClassVar[bool] = True  # encode_stream: any length in bounded memory

    def __init__(self, config: AudioTokenizerConfig):
        super().__init__(config)
        spectral = config.architecture == "stft"
        self.encoder = STFTEncoder(config) if spectral else AudioEncoder(config)
        self.quantizer = config.quantizer.build(config.latent_dim)
        self.decoder = ISTFTDecoder(config) if spectral else AudioDecoder(config)

    def check_input(self, x: torch.Tensor) -> None:
        self._check_shape(x)
        if not is_streaming(self.encoder):  # a chunk of a stream may complete no frame
            self._check_length(x.shape[-1])

    def _check_shape(self, x: torch.Tensor) -> None:
        if x.ndim != 3 or x.shape[1] != self.config.channels:
            raise ValueError(f"expected audio (B, {self.config.channels}, T), got {tuple(x.shape)}")

    def _check_length(self, samples: int) -> None:
        """A recording must fill one frame: the strided convolutions need hop samples (causal or not)."""
        hop, rate = self.config.hop_length, self.config.sample_rate
        if samples < hop:
            raise ValueError(
                f"audio of {samples} samples ({1000 * samples / rate:.1f} ms) is shorter than one frame: "
                f"this codec needs at least {hop} samples ({1000 * hop / rate:.1f} ms at {rate} Hz)"
            )

    def encode_latent(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, T) -> (B, frames, latent_dim), floor(T / hop) frames. Without gradients a causal
        encoder streams a long batch in chunks of `chunk_seconds` (the latents are the whole
        signal's: each chunk carries the convolutions' state), so memory follows the chunk."""
        chunk = self._chunk_samples()
        if torch.is_grad_enabled() or not self.config.causal or is_streaming(self.encoder) or x.shape[-1] <= chunk:
            return self.encoder(x).transpose(1, 2)
        with self.streaming():
            parts = [self.encoder(x[..., start : start + chunk]) for start in range(0, x.shape[-1], chunk)]
        return torch.cat(parts, dim=-1).transpose(1, 2)

    def decode_latent(self, latent: torch.Tensor) -> torch.Tensor:
        """Latents (B, frames, D) -> audio (B, C, frames * hop). Without gradients, a long sequence
        is decoded in chunks of `chunk_seconds` with `decoder.context_frames()` frames of context
        on the left and `decoder.lookahead_frames()` on the right (none for the causal conv decoder;
        the stft one's overlap-add looks ahead), each chunk keeping its own samples: equal
        to decoding it whole up to float rounding, in memory bounded by the chunk."""
        frames, chunk = latent.shape[1], self._chunk_samples() // self.config.hop_length
        if torch.is_grad_enabled() or frames <= chunk:
            return self.decoder(latent.transpose(1, 2))
        hop, margin = self.config.hop_length, self.decoder.context_frames()
        parts = []
        for start in range(0, frames, chunk):
            end = min(frames, start + chunk)
            left, right = max(0, start - margin), min(frames, end + self.decoder.lookahead_frames())
            wave = self.decoder(latent[:, left:right].transpose(1, 2), first_frame=left)
            parts.append(wave[..., (start - left) * hop : (end - left) * hop])
        return torch.cat(parts, dim=-1)

    @property
    def padding_axes(self) -> tuple[int, int] | None:
        # A causal encoder's frame j sees samples < (j + 1) * hop only: right padding cannot reach it.
        return (-1, 0) if self.config.causal else None

    # -- streaming and long inputs ----------------------------------------------------------------
    def streaming(self):
        """Within this context, `encode_chunk` carries convolution state from chunk to chunk."""
        return streaming(self.encoder)

    @torch.no_grad()
    def encode_chunk(self, chunk: torch.Tensor, num_codebooks: int | None = None) -> torch.Tensor:
        """ids of the frames this chunk completes (possibly none): (B, frames, num_codebooks)."""
        if not is_streaming(self.encoder):
            raise RuntimeError("encode_chunk needs `with tokenizer.streaming():`")
        return self.encode(chunk, num_codebooks=num_codebooks)

    @torch.no_grad()
    def encode_stream(self, chunks: Iterable[torch.Tensor], *, num_codebooks: int | None = None) -> torch.Tensor:
        """ids (B, frames, n) of a recording given as pieces (B, C, t) of any lengths, in chunks of
        `chunk_seconds`: a causal codec streams (ids identical to `encode` of the whole recording),
        a non-causal one encodes `encode_long`'s windows (ids identical to `encode_long`'s). A
        recording shorter than one frame is `encode`'s ValueError, raised once the pieces run out."""
        return self._encode_pieces(self._stream_pieces(chunks, self._check_shape), self._chunk_samples(), num_codebooks)

    @torch.no_grad()
    def encode_long(
        self, x: torch.Tensor, chunk_seconds: float = 10.0, num_codebooks: int | None = None
    ) -> torch.Tensor:
        """Encodes a signal of any length in chunks with bounded memory. Causal models stream
        (ids identical to whole-signal encoding); non-causal ones encode each chunk with a margin
        of the encoder's receptive field on both sides and keep the chunk's own frames."""
        self.check_input(x)
        return self._encode_pieces([x], self._chunk_samples(chunk_seconds), num_codebooks)

    def _chunk_samples(self, seconds: float | None = None) -> int:
        hop = self.config.hop_length
        return max(hop, int((seconds or self.config.chunk_seconds) * self.config.sample_rate) // hop * hop)

    def _encode_pieces(self, pieces: Iterable[torch.Tensor], chunk: int, num_codebooks: int | None) -> torch.Tensor:
        samples = 0

        def counted(pieces: Iterable[torch.Tensor]) -> Iterator[torch.Tensor]:
            nonlocal samples
            for piece in pieces:
                samples += piece.shape[-1]
                yield piece

        if self.config.causal:
            with self.streaming():
                chunks = rechunk(counted(pieces), itertools.repeat(chunk))
                parts = [self.encode_chunk(piece, num_codebooks) for piece in chunks]
        else:
            parts = list(self._window_ids(counted(pieces), chunk, num_codebooks))
        self._check_length(samples)
        return torch.cat(parts, dim=1)

    def _window_ids(self, pieces: Iterable[torch.Tensor], chunk: int, num_codebooks: int | None) -> Iterator:
        """A non-causal codec's ids, chunk after chunk: the samples [start, start + chunk) encoded
        with `margin` samples of the recording on either side (cut at its ends), keeping the
        chunk's own frames. Holds a chunk and two margins of the recording at a time."""
        hop = self.config.hop_length
        margin = math.ceil(self.encoder.receptive_field() / hop) * hop
        for block in blocks_with_context(pieces, chunk, margin):
            if block.length < hop:  # a tail shorter than a frame gives no frame
                return
            ids = self.encode(block.window, num_codebooks=num_codebooks)
            first = block.offset // hop
            yield ids[:, first : first + block.length // hop]

    # -- the shared Tokenizer hooks ---------------------------------------------------------------
    def token_shape_for(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        return (input_shape[-1] // self.config.hop_length,)

    def last_layer_weight(self) -> torch.Tensor:
        return self.decoder.last_layer_weight()

    @classmethod
    def input_spec_for(cls, config: AudioTokenizerConfig) -> AudioInputSpec:
        return AudioInputSpec(config.sample_rate, config.channels, config.loudness_db, config.max_gain_db)

    def vocab_layout(self, **options) -> VocabLayout:
        return VocabLayout("audio", [None], self.codebook_sizes, **options)

    def rate_examples(self):
        return [(f"{s} s", (self.config.channels, s * self.config.sample_rate), float(s), "second") for s in (1, 10)]
