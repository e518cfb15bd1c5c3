"""The audio codec's spectral architecture (`model.architecture: stft`): an STFT analysis and a
ConvNeXt stack at the frame rate for the encoder, a ConvNeXt stack and a Vocos-style head that
predicts each frame's STFT (log magnitude and phase) for the decoder, inverted by overlap-add.

Everything after the analysis runs at the token rate (75 Hz at 24 kHz), not the sample rate, so a
training step costs a fraction of the strided waveform codec's, and the decoder never has to learn
phase through learned upsampling (Vocos, WavTokenizer, X-Codec2 decode this way).

Framing, with hop h = prod(strides) and window n = `n_fft` (4h by default):
- analysis frame j covers the samples [(j + 1) h - n, (j + 1) h): a causal strided convolution
  whose fixed kernel is the Hann-windowed DFT (`StreamableConv`, so the encoder streams and its
  ids equal whole-signal ids), the first frames seeing zeros on the left;
- synthesis frame j is laid on the same samples, so the samples [j h, (j + 1) h) are the windowed
  overlap-add of frames j .. j + n/h - 1: decoding looks n/h - 1 frames ahead (`lookahead_frames`;
  40 ms at 75 Hz), and the codec's latency is that, while its ids stay causal.

The head's phase is relative to each bin's own turn from frame to frame (`ISTFTDecoder.bin_rotation`),
so layers that are the same at every frame (convolutions) render a steady input as steady tones,
not as a signal periodic in the hop.

The inverse STFT is written out here rather than torch.istft's: that one centres frames and
normalises by the window envelope of the whole signal it is given, so a chunk would not equal the
same samples decoded whole; this overlap-add normalises by the constant steady-state envelope.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from mmtok.models.streaming import StreamableConv, receptive_field


class PerFrame(nn.Module):
    """Layers that act on each time step's channels alone (LayerNorm, Linear), applied to (B, C, T):
    they stream without state, and a chunk that completes no frame (T = 0) passes through."""

    def __init__(self, *layers: nn.Module):
        super().__init__()
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x.transpose(1, 2)).transpose(1, 2)


class ConvNeXtBlock(nn.Module):
    """Depthwise (causal when asked) convolution over frames, then a per-frame MLP, residual."""

    def __init__(self, channels: int, kernel_size: int, causal: bool, expansion: int = 3):
        super().__init__()
        self.depthwise = StreamableConv(channels, channels, kernel_size, causal=causal, groups=channels)
        self.mlp = PerFrame(
            nn.LayerNorm(channels),
            nn.Linear(channels, expansion * channels),
            nn.GELU(),
            nn.Linear(expansion * channels, channels),
        )
        self.scale = nn.Parameter(torch.full((1, channels, 1), 0.1))  # small residual branches at the start

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.scale * self.mlp(self.depthwise(x))


def hann(n_fft: int) -> torch.Tensor:
    return torch.hann_window(n_fft, periodic=True, dtype=torch.float64)


class STFTAnalysis(StreamableConv):
    """The Hann-windowed DFT of each frame as a fixed causal strided convolution: (B, C, T) ->
    real and imaginary parts (B, C * 2 * bins, frames), bins = n_fft / 2 + 1, per channel."""

    def __init__(self, channels: int, n_fft: int, hop: int):
        bins = n_fft // 2 + 1
        super().__init__(channels, channels * 2 * bins, n_fft, stride=hop, groups=channels)
        n, k = torch.arange(n_fft, dtype=torch.float64), torch.arange(bins, dtype=torch.float64)
        angle = 2 * math.pi * k[:, None] * n[None, :] / n_fft
        basis = torch.cat([torch.cos(angle), -torch.sin(angle)]) * hann(n_fft) / math.sqrt(n_fft)
        with torch.no_grad():
            self.conv.weight.copy_(basis.repeat(channels, 1)[:, None, :].float())
            self.conv.bias.zero_()
        self.conv.requires_grad_(False)


def overlap_add(spectrum: torch.Tensor, n_fft: int, hop: int) -> torch.Tensor:
    """Complex frames (B, C, bins, T) laid out as `STFTAnalysis` frames them -> samples (B, C, T * hop):
    each frame inverted, windowed again and added at its place, over the Hann window's steady-state
    envelope (sum of window^2 over the overlapping frames); the first n_fft - hop samples, before
    the signal, are dropped. The analysis's frames of a signal come back as that signal."""
    batch, channels, _, frames = spectrum.shape
    window = hann(n_fft).to(spectrum.real.dtype).to(spectrum.device)
    segments = torch.fft.irfft(spectrum, n=n_fft, dim=2) * math.sqrt(n_fft) * window[:, None]  # (B, C, n, T)
    envelope = float((hann(n_fft) ** 2).sum() / hop)
    summed = F.fold(
        segments.flatten(0, 1), output_size=(1, (frames - 1) * hop + n_fft), kernel_size=(1, n_fft), stride=(1, hop)
    )  # (B C, 1, 1, samples): the overlap-add
    samples = summed.reshape(batch, channels, -1) / envelope
    return samples[..., n_fft - hop :]


class STFTEncoder(nn.Module):
    """STFT analysis, log magnitude and unit phase per bin, a per-frame linear map to `width`,
    ConvNeXt blocks at the frame rate, a per-frame linear map to the latent."""

    def __init__(self, config):
        super().__init__()
        n_fft, hop, width = config.stft_window, config.hop_length, config.frame_width
        # Causal framing always: the synthesis lays its frames on the same samples (module docstring).
        self.analysis = STFTAnalysis(config.channels, n_fft, hop)
        self.bins = n_fft // 2 + 1
        blocks = [ConvNeXtBlock(width, config.frame_kernel, config.causal) for _ in range(config.frame_blocks)]
        self.layers = nn.Sequential(PerFrame(nn.Linear(config.channels * 3 * self.bins, width)), *blocks)
        self.to_latent = PerFrame(nn.LayerNorm(width), nn.Linear(width, config.latent_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        spectrum = self.analysis(x).unflatten(1, (-1, 2, self.bins))  # (B, C, re/im, bins, frames)
        real, imag = spectrum[:, :, 0], spectrum[:, :, 1]
        magnitude = (real.square() + imag.square() + 1e-8).sqrt()
        features = torch.cat([(magnitude + 1e-5).log(), real / magnitude, imag / magnitude], dim=2)
        return self.to_latent(self.layers(features.flatten(1, 2)))

    def receptive_field(self) -> int:
        return receptive_field(self)


class ISTFTDecoder(nn.Module):
    """A causal convolution from the latent, ConvNeXt blocks at the frame rate, and a head that gives
    each frame's log magnitude and phase per bin (relative to `bin_rotation`), inverted by
    `overlap_add`."""

    max_log_magnitude = 6.0  # exp(6) ~ 400 of the analysis's scale: bounds a diverging head

    def __init__(self, config):
        super().__init__()
        self.n_fft, self.hop, width = config.stft_window, config.hop_length, config.frame_width
        self.bins, self.channels = self.n_fft // 2 + 1, config.channels
        blocks = [ConvNeXtBlock(width, config.frame_kernel, config.causal) for _ in range(config.frame_blocks)]
        first = StreamableConv(config.latent_dim, width, config.frame_kernel, causal=config.causal)
        self.layers = nn.Sequential(first, *blocks)
        self.head = PerFrame(nn.LayerNorm(width), nn.Linear(width, config.channels * 2 * self.bins))
        with torch.no_grad():  # start quiet: log magnitudes around -3, not around 0
            self.head.layers[-1].bias.unflatten(0, (config.channels, 2, self.bins))[:, 0] = -3.0
        self.causal = config.causal

    def forward(self, z: torch.Tensor, first_frame: int = 0) -> torch.Tensor:
        """Latents (B, D, frames) -> samples; `first_frame` is the index of z's first frame in the
        whole sequence (a chunk decoded alone passes its offset, so it equals the whole decode)."""
        out = self.head(self.layers(z)).unflatten(1, (self.channels, 2, self.bins))  # (B, C, 2, bins, frames)
        magnitude = out[:, :, 0].clamp(max=self.max_log_magnitude).exp()
        phase = out[:, :, 1] + self.bin_rotation(first_frame, out.shape[-1], out.device)
        spectrum = torch.polar(magnitude.float(), phase.float())
        return overlap_add(spectrum, self.n_fft, self.hop).to(z.dtype)

    def bin_rotation(self, first_frame: int, frames: int, device: torch.device | None = None) -> torch.Tensor:
        """(bins, frames) phase each bin's centre frequency turns through by each frame's start:
        2 pi k hop j / n_fft for bin k, frame j. The head predicts the phase relative to it, so a
        constant head output is a steady tone at each bin's frequency. Without it a stack that is
        the same at every frame gives every frame the same phase, which overlap-adds to a signal
        periodic in the hop: a comb at multiples of the frame rate (75 Hz) instead of harmonics.
        Integer arithmetic modulo n_fft keeps the angle exact at any frame index."""
        bins = torch.arange(self.bins, dtype=torch.long, device=device)[:, None]
        index = first_frame + torch.arange(frames, dtype=torch.long, device=device)[None, :]
        turns = (bins * self.hop % self.n_fft) * (index % self.n_fft) % self.n_fft
        return turns.float() * (2 * math.pi / self.n_fft)

    def context_frames(self) -> int:
        """Latent frames before a frame that reach its samples (through the convolutions, and the
        overlap-add's earlier frames, which the lookahead counts from the other side)."""
        return receptive_field(self.layers) - 1

    def lookahead_frames(self) -> int:
        """Latent frames after a frame that reach its samples: the overlap-add's, plus the
        convolutions' when non-causal."""
        later = self.n_fft // self.hop - 1
        return later + (0 if self.causal else receptive_field(self.layers) - 1)

    def last_layer_weight(self) -> torch.Tensor:
        return self.head.layers[-1].weight
