"""The layers of the EEG tokenizer: patch and electrode embeddings, attention over a window of
patches that is causal in time, and the way back to a signal (frames written in a DCT basis,
crossfaded into their neighbours).

Every token is one patch of one channel. A token attends to the tokens at most `context - 1`
patches before it and never after, so an input's ids do not depend on anything appended to it
(right padding is exact) and any duration works; with `mix_channels` it attends to every
channel's tokens in that window (no channel index anywhere, so shuffling the channels shuffles
the outputs and changes nothing else), otherwise only to its own channel's.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from mmtok.data.eeg_montage import HEAD_RADIUS_M

SPECTRUM_FLOOR = 1e-3  # network units: the log spectrum's floor, far below EEG's weakest bins


class PatchEmbedding(nn.Module):
    """One patch of samples -> a vector: the samples themselves through a linear map (the only
    branch that keeps their phase: without it the codes could not place a wave in time), temporal
    convolutions at several scales (the kernel sizes of NeuroRVQ's multi-scale encoder) for
    waveform shape, and the log-amplitude spectrum for rhythm."""

    def __init__(self, patch_size: int, width: int, kernels: list[int], channels: int, pooled: int = 8):
        super().__init__()
        self.branches = nn.ModuleList(
            nn.Sequential(
                nn.Conv1d(1, channels, k, stride=4, padding=k // 2),
                nn.GELU(),
                nn.Conv1d(channels, channels, 3, stride=2, padding=1),
                nn.GELU(),
                nn.AdaptiveAvgPool1d(pooled),
            )
            for k in kernels
        )
        self.from_convolutions = nn.Linear(len(kernels) * channels * pooled, width)
        self.from_spectrum = nn.Linear(patch_size // 2 + 1, width)
        self.from_samples = nn.Linear(patch_size, width)  # the waveform itself, phase included

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        """(..., patch_size) -> (..., width)."""
        flat = patches.reshape(-1, 1, patches.shape[-1])
        shape = torch.cat([branch(flat).flatten(1) for branch in self.branches], dim=1)
        # On a log scale, so that a weak band (gamma at 1 % of the power) is as visible as a strong one.
        spectrum = torch.log(torch.fft.rfft(flat[:, 0].float(), norm="ortho").abs() + SPECTRUM_FLOOR).to(flat.dtype)
        out = self.from_convolutions(shape) + self.from_spectrum(spectrum) + self.from_samples(flat[:, 0])
        return out.reshape(*patches.shape[:-1], -1)


class ElectrodeEmbedding(nn.Module):
    """An electrode's 3-D position -> a vector (Fourier features of the position through an MLP),
    so any named electrode has an embedding, one never seen in training included; positions that
    are NaN (names without one) take a learned fallback vector."""

    def __init__(self, width: int, frequencies: int):
        super().__init__()
        self.register_buffer("frequencies", math.pi * 2.0 ** torch.arange(frequencies), persistent=False)
        self.mlp = nn.Sequential(nn.Linear(3 + 6 * frequencies, width), nn.GELU(), nn.Linear(width, width))
        # Zero at the start, so the first steps learn from the signal rather than tell electrodes
        # apart (otherwise the codes first fill up with electrode identities).
        nn.init.zeros_(self.mlp[-1].weight)
        nn.init.zeros_(self.mlp[-1].bias)
        self.fallback = nn.Parameter(torch.zeros(width))

    def forward(self, positions: torch.Tensor) -> torch.Tensor:
        """(..., 3) metres, NaN where unknown -> (..., width)."""
        unknown = positions.isnan().any(dim=-1, keepdim=True)
        p = torch.nan_to_num(positions.float()) / HEAD_RADIUS_M
        angles = (p[..., None] * self.frequencies).flatten(-2)
        features = torch.cat([p, angles.sin(), angles.cos()], dim=-1)
        return torch.where(unknown, self.fallback.to(features.dtype), self.mlp(features))


class WindowAttention(nn.Module):
    """Multi-head attention of each token over its causal window (see the module docstring).

    The temporal embedding is relative: a learned vector per distance (0 .. context-1 patches back)
    added to the keys and values, so a patch is encoded the same wherever it sits in a recording."""

    def __init__(self, width: int, heads: int, context: int, mix_channels: bool):
        super().__init__()
        if width % heads:
            raise ValueError(f"width {width} must be a multiple of heads {heads}")
        self.heads, self.context, self.mix_channels = heads, context, mix_channels
        self.query = nn.Linear(width, width)
        self.key_value = nn.Linear(width, 2 * width)
        self.out = nn.Linear(width, width)
        self.time_embedding = nn.Parameter(torch.randn(context, width) * 0.02)  # index context-1: the patch itself

    def forward(self, h: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        """h (B, C, N, width); present (B, C, N) bool (False: a missing patch, never attended to)."""
        b, c, n, d = h.shape
        w = self.context
        window = F.pad(h, (0, 0, w - 1, 0)).unfold(2, w, 1).transpose(-1, -2) + self.time_embedding  # (B,C,N,W,D)
        allowed = F.pad(present, (w - 1, 0), value=False).unfold(2, w, 1)  # (B, C, N, W)
        if self.mix_channels:
            queries = h.transpose(1, 2).reshape(b * n, c, d)
            context = window.transpose(1, 2).reshape(b * n, c * w, d)
            mask = allowed.transpose(1, 2).reshape(b * n, 1, c * w).expand(-1, c, -1).clone()
            channels = torch.arange(c, device=h.device)
            mask[:, channels, channels * w + w - 1] = True  # a token always sees itself
        else:
            queries = h.reshape(b * c * n, 1, d)
            context = window.reshape(b * c * n, w, d)
            mask = allowed.reshape(b * c * n, 1, w).clone()
            mask[..., w - 1] = True
        out = self._attend(queries, context, mask)
        if self.mix_channels:
            return out.reshape(b, n, c, d).transpose(1, 2)
        return out.reshape(b, c, n, d)

    def _attend(self, queries: torch.Tensor, context: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """queries (G, Q, D), context (G, K, D), mask (G, Q, K) -> (G, Q, D)."""
        g, q_len, d = queries.shape
        split = lambda t: t.reshape(g, t.shape[1], self.heads, d // self.heads).transpose(1, 2)  # noqa: E731
        keys, values = self.key_value(context).chunk(2, dim=-1)
        out = F.scaled_dot_product_attention(
            split(self.query(queries)), split(keys), split(values), attn_mask=mask[:, None]
        )
        return self.out(out.transpose(1, 2).reshape(g, q_len, d))


class Block(nn.Module):
    """Pre-norm transformer block over the token grid (B, C, N, width)."""

    def __init__(self, width: int, heads: int, context: int, mix_channels: bool):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.attention = WindowAttention(width, heads, context, mix_channels)
        self.mlp = nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width))

    def forward(self, h: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        h = h + self.attention(self.norm1(h), present)
        return h + self.mlp(self.norm2(h))


class CosineBasis(nn.Module):
    """Frames written in an orthonormal DCT basis (the layer before it gives coefficients): the same
    functions as a plain linear output, but Adam then adapts each frequency's scale on its own,
    and learns the quiet bands of a spectrum much sooner than through 250 samples that must cancel."""

    def __init__(self, length: int):
        super().__init__()
        import scipy.fft

        basis = scipy.fft.idct(torch.eye(length).numpy(), type=2, norm="ortho", axis=0)
        self.register_buffer("basis", torch.from_numpy(basis).float().T.contiguous(), persistent=False)

    def forward(self, coefficients: torch.Tensor) -> torch.Tensor:
        return coefficients @ self.basis.to(coefficients.dtype)


class CrossfadeSynthesis(nn.Module):
    """Per-token frames -> one continuous signal. Each token's frame is its patch plus crossfade / 2
    samples on either side; neighbouring frames overlap there and are blended with complementary
    raised-cosine ramps, normalised by the ramps present (so the outer edges, and the edges next to
    a missing patch, keep their own frame's values). Patches decoded on their own would meet in
    steps, and a step's broadband spectrum is power that was never in the recording."""

    def __init__(self, patch_size: int, crossfade: int):
        super().__init__()
        if crossfade % 2 or not 0 <= crossfade <= patch_size:
            raise ValueError(f"crossfade must be even and at most patch_size, got {crossfade}")
        self.patch_size, self.crossfade = patch_size, crossfade
        ramp = torch.sin(torch.pi * (torch.arange(crossfade) + 0.5) / (2 * crossfade)).square()
        window = torch.ones(patch_size + crossfade)
        window[:crossfade], window[patch_size:] = ramp, ramp.flip(0)
        self.register_buffer("window", window, persistent=False)

    def forward(self, frames: torch.Tensor, present: torch.Tensor | None = None) -> torch.Tensor:
        """(..., N, patch_size + crossfade), present (..., N) -> (..., N * patch_size); missing
        patches come out as zeros and do not reach their neighbours."""
        *lead, count, length = frames.shape
        weights = self.window.to(frames.dtype).expand_as(frames)
        if present is not None:
            weights = weights * present[..., None].to(frames.dtype)
        total = self._overlap_add(frames * weights, count)
        return total / self._overlap_add(weights, count).clamp_min(1e-12)

    def _overlap_add(self, frames: torch.Tensor, count: int) -> torch.Tensor:
        *lead, _, length = frames.shape
        p, half = self.patch_size, self.crossfade // 2
        columns = frames.reshape(-1, count, length).transpose(1, 2)  # (M, length, N), as fold takes them
        signal = F.fold(columns, (1, count * p + self.crossfade), (1, length), stride=(1, p))
        return signal.reshape(*lead, -1)[..., half : half + count * p]
