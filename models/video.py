"""Causal video tokenizer: the 2-D image tokenizer's layers on every frame, with causal temporal
convolutions between them (factorised (2+1)-D, as Cosmos does), around any mmtok quantizer.

A clip of 1 + k·t frames (t = `temporal_factor`, 4 by default) and H x W pixels becomes
(1 + k) x (H/f) x (W/f) tokens (f = 2^(len(channel_multipliers) - 1): 8 by default, 16 with five
multipliers). The first latent frame covers the first frame alone, each later one t frames, and
no latent frame sees a later frame (`models.streaming`), so:

- an image is a one-frame video. The per-frame layers are exactly an `ImageEncoder` and an
  `ImageDecoder`, and every temporal convolution starts as a delta on the current frame (the 2-D
  kernel in the last temporal slice of the factorised 3-D kernel): `init_from` an image tokenizer,
  a single frame gets that tokenizer's ids and pixels, and the first frame of any clip does too;
- videos of any length are encoded and decoded in chunks of `chunk_latent_frames` latent frames
  that carry each temporal convolution's state, with the ids of the whole video at once and memory
  bounded by the chunk;
- clips of different lengths share a batch right-padded in time, their ids cut back;
- `encode_stream` takes a video piece by piece (any lengths), cut into the same chunks, with the
  ids of the whole video and memory bounded by a chunk.

Inputs it refuses with a ValueError alone and in a batch alike: frame counts off the 1 + k·t rule,
frame sides that are not multiples of the spatial factor, and frames whose latent grid is a single
position where a group norm of the model has one channel per group (torch refuses to normalise one
value, but only when the batch holds one frame, which would make the outcome depend on the batch).
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Iterable
from pathlib import Path
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from mmtok.data.video_io import DEFAULT_VIDEO_MAX_PIXELS, VideoInputSpec, frame_count_problem
from mmtok.models.blocks import Downsample, ResidualBlock, Upsample
from mmtok.models.image import ImageDecoder, ImageEncoder, ImageTokenizerConfig, chroma_dead_zone
from mmtok.models.streaming import Streamable, StreamableConv, is_streaming, rechunk, streaming
from mmtok.tokenizer import QuantizerConfig, Tokenizer, bucket_length
from mmtok.vocab import VocabLayout

# The fields a video tokenizer shares with the image tokenizer whose layers run on its frames.
FRAME_FIELDS = (
    "in_channels",
    "base_channels",
    "channel_multipliers",
    "num_res_blocks",
    "attention",
    "latent_dim",
    "patch_skip",
)


@dataclasses.dataclass
class VideoTokenizerConfig:
    in_channels: int = 3
    image_size: int = 128  # the training crop (square); frames below it are upscaled to it
    base_channels: int = 64
    channel_multipliers: list[int] = dataclasses.field(default_factory=lambda: [1, 2, 2, 4])  # 8x; [.., 4] 16x
    num_res_blocks: int = 2
    attention: bool = True  # per-frame self-attention at the lowest resolution
    latent_dim: int = 5
    # The image recipe's linear patch path, in space and time: each latent frame's f x f block is
    # also a linear map of the t frames' pixels it covers (causal: the first latent frame, the first
    # frame alone), added to the deep encoder's output, and the decoder adds a linear map of the
    # token back to those t x f x f pixels. Colour and layout come within the first hundred steps.
    patch_skip: bool = False  # disjoint f x f blocks (an image tokenizer's lapped patch_kernel does not inflate)
    # At decode, where the mean chroma around a pixel is under this (0-255 scale) it comes out gray
    # (`mmtok.models.image.chroma_dead_zone`, on every frame); 0 turns it off.
    chroma_dead_zone: float = 0.0
    chroma_dead_zone_window: int = 17
    # The quickstart image tokenizer's FSQ (15,360 codes) with its usage loss, so that tokenizer
    # inflates as it is. Cosmos' FSQ: levels [8, 8, 8, 5, 5, 5] (64,000 codes) with latent_dim 6.
    # LFQ/BSQ: {"kind": "lfq", "options": {"codebook_size": 65536}} with latent_dim 16 (2^16 ..
    # 2^18 codes, factorised entropy).
    quantizer: QuantizerConfig = dataclasses.field(
        default_factory=lambda: QuantizerConfig(
            "fsq", options={"levels": [8, 8, 8, 6, 5], "usage_weight": 0.1, "usage_over": "codes"}
        )
    )
    temporal_factor: int = 4  # a power of two, at most the spatial factor
    temporal_kernel: int = 3
    fps: float | None = None  # videos are resampled to this frame rate; None keeps each file's
    short_side: int | None = None  # frames are resized so their shorter side is this; None keeps it
    pad_frames: bool = False  # frame counts other than 1 + k·t: repeat the last frame (True) or an error
    chunk_latent_frames: int = 4  # encode/decode (no grad) stream in chunks of this many latent frames
    init_from: str | None = None  # an image tokenizer directory to inflate at the start of training
    max_pixels: int | None = DEFAULT_VIDEO_MAX_PIXELS  # frames larger than this after resizing are refused

    def __post_init__(self):
        for name in ("in_channels", "image_size", "base_channels", "num_res_blocks", "latent_dim"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive")
        if not self.channel_multipliers or any(m < 1 for m in self.channel_multipliers):
            raise ValueError("channel_multipliers must be a non-empty list of positive integers")
        factor = self.temporal_factor
        if factor < 1 or factor & (factor - 1) or factor > self.spatial_factor:
            raise ValueError(
                f"temporal_factor must be a power of two up to the spatial factor {self.spatial_factor}, got {factor}"
            )
        if self.temporal_kernel < 1 or self.chunk_latent_frames < 1:
            raise ValueError("temporal_kernel and chunk_latent_frames must be positive")

    @property
    def spatial_factor(self) -> int:
        return 2 ** (len(self.channel_multipliers) - 1)

    def frame_config(self) -> ImageTokenizerConfig:
        """The image tokenizer whose layers run on every frame (its patch path becomes the video's own)."""
        fields = {name: getattr(self, name) for name in FRAME_FIELDS}
        dead_zone = {"chroma_dead_zone": self.chroma_dead_zone, "chroma_dead_zone_window": self.chroma_dead_zone_window}
        return ImageTokenizerConfig(image_size=self.image_size, quantizer=self.quantizer, **fields, **dead_zone)

    def frame_layers_config(self) -> ImageTokenizerConfig:
        """`frame_config` without the 2-D patch path, which `PatchToLatent` and `LatentToPatch` replace."""
        return dataclasses.replace(self.frame_config(), patch_skip=False)

    def latent_frames(self, frames: int) -> int:
        return 1 + (frames - 1) // self.temporal_factor


def temporal_conv(channels: int, kernel: int, stride: int = 1) -> StreamableConv:
    """A causal convolution over time that starts as the identity on the current frame."""
    conv = StreamableConv(channels, channels, kernel, stride=stride, spatial_dims=2, first_frame_alone=True)
    with torch.no_grad():
        conv.conv.weight.zero_()
        conv.conv.weight[:, :, -1, 0] = torch.eye(channels)
        conv.conv.bias.zero_()
    return conv


class CausalTimeUpsample(Streamable):
    """1 + k latent frames -> 1 + 2k: each frame repeated twice, the stream's very first copy
    dropped (the first latent frame stands for one frame), then a causal temporal convolution."""

    def __init__(self, channels: int, kernel: int):
        super().__init__()
        self.conv = temporal_conv(channels, kernel)
        self._first_dropped = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.repeat_interleave(2, dim=2)
        if x.shape[2] and not (self._streaming and self._first_dropped):
            x, self._first_dropped = x[:, :, 1:], True
        return self.conv(x)

    def start_streaming(self) -> None:
        super().start_streaming()
        self._first_dropped = False


class PatchToLatent(nn.Module):
    """The encoder's linear patch path: each latent frame's f x f block is a linear map of the
    pixels of the t frames it covers (the first latent frame: the first frame alone), written as a
    space-to-depth of every frame and a causal temporal convolution of stride t, so it streams."""

    def __init__(self, in_channels: int, latent_dim: int, spatial: int, temporal: int):
        super().__init__()
        self.spatial = spatial
        channels = in_channels * spatial * spatial
        self.conv = StreamableConv(
            channels, latent_dim, temporal, stride=temporal, spatial_dims=2, first_frame_alone=True
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, T, H, W) -> (B, D, 1 + (T - 1) // t, H / f, W / f)."""
        return self.conv(as_clips(F.pixel_unshuffle(as_frames(x), self.spatial), x.shape[0]))

    @torch.no_grad()
    def inflate(self, weight: torch.Tensor, bias: torch.Tensor) -> None:
        """From an image patch path's stride-f Conv2d (weight (D, C, f, f)): that kernel on the
        latest frame a latent frame covers, zero on the others (a still video gets the image's latent)."""
        self.conv.conv.weight.zero_()
        self.conv.conv.weight[:, :, -1, 0] = weight.flatten(1)  # pixel_unshuffle's (c, i, j) order
        self.conv.conv.bias.copy_(bias)


class LatentToPatch(Streamable):
    """The decoder's linear patch path: each latent frame gives the t frames it covers, every f x f
    block a linear map of its token (a 1 x 1 convolution to t * C * f^2 channels and a
    depth-to-space); the stream's first t - 1 frames are dropped, as the first latent frame stands
    for the first frame alone. Nothing mixes latent frames, so it streams without state but that."""

    def __init__(self, latent_dim: int, out_channels: int, spatial: int, temporal: int):
        super().__init__()
        self.spatial, self.temporal = spatial, temporal
        self.proj = nn.Conv2d(latent_dim, temporal * out_channels * spatial * spatial, 1)
        self._first_dropped = False

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """(B, D, T', h, w) -> (B, C, 1 + t (T' - 1), h f, w f) (a stream's later chunks: t T' frames)."""
        batch, t = z.shape[0], self.temporal
        blocks = self.proj(as_frames(z))  # (B T', t C f^2, h, w): t frames of each latent frame
        blocks = blocks.unflatten(1, (t, -1)).flatten(0, 1)  # (B T' t, C f^2, h, w), in time order
        x = as_clips(F.pixel_shuffle(blocks, self.spatial), batch)
        if x.shape[2] and not (self._streaming and self._first_dropped):
            x, self._first_dropped = x[:, :, t - 1 :], True
        return x

    def start_streaming(self) -> None:
        super().start_streaming()
        self._first_dropped = False

    @torch.no_grad()
    def inflate(self, weight: torch.Tensor, bias: torch.Tensor) -> None:
        """From an image patch path's stride-f ConvTranspose2d (weight (D, C, f, f)): that map for
        every frame a latent frame covers (a still video decodes to the image in each frame)."""
        per_frame = weight.flatten(1).T  # (C f^2, D) in pixel_shuffle's (c, i, j) order
        self.proj.weight.copy_(per_frame.repeat(self.temporal, 1)[:, :, None, None])
        self.proj.bias.copy_(bias.repeat_interleave(self.spatial * self.spatial).repeat(self.temporal))


def as_frames(x: torch.Tensor) -> torch.Tensor:
    """Clips (B, C, T, H, W) -> their frames as a batch of images (B * T, C, H, W)."""
    return x.transpose(1, 2).flatten(0, 1)


def as_clips(frames: torch.Tensor, batch: int) -> torch.Tensor:
    """The inverse of `as_frames`: (B * T, C, H, W) -> (B, C, T, H, W)."""
    return frames.unflatten(0, (batch, -1)).transpose(1, 2)


def _channels(layer: nn.Module) -> int:
    convs = [m for m in layer.modules() if isinstance(m, nn.Conv2d)]
    return convs[-1].out_channels


class FactorisedStack(nn.Module):
    """Per-frame 2-D layers (`frames`: an ImageEncoder or ImageDecoder) with temporal layers after
    some of them (`temporal`, keyed by the index of the 2-D layer they follow), and optionally a
    linear patch path (`patch`) from the stack's input added to its output."""

    def __init__(self, frames: nn.Module, temporal: dict[int, nn.Module], patch: nn.Module | None = None):
        super().__init__()
        self.frames = frames
        self.temporal = nn.ModuleDict({str(i): layer for i, layer in temporal.items()})
        self.patch = patch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, T, H, W) -> (B, C', T', H', W')."""
        batch = x.shape[0]
        h = as_frames(x)
        for index, layer in enumerate(self.frames.layers):
            h = layer(h)
            if str(index) in self.temporal:
                h = as_frames(self.temporal[str(index)](as_clips(h, batch)))
        if hasattr(self.frames, "to_pixels"):
            h = self.frames.to_pixels(h)
        out = as_clips(h, batch)
        if self.patch is not None:
            out = out + self.patch(x)
        dead_zone = getattr(self.frames, "dead_zone", 0.0)
        if dead_zone > 0 and not self.training:  # the image decoder's zone, at decode only
            out = as_clips(chroma_dead_zone(as_frames(out), dead_zone, self.frames.dead_zone_window), batch)
        return out


def video_encoder(config: VideoTokenizerConfig) -> FactorisedStack:
    frames = ImageEncoder(config.frame_layers_config())
    temporal: dict[int, nn.Module] = {}
    halvings = int(math.log2(config.temporal_factor))  # time is halved at the first downsamplings
    for index, layer in enumerate(frames.layers):
        if isinstance(layer, ResidualBlock):
            temporal[index] = temporal_conv(_channels(layer), config.temporal_kernel)
        elif isinstance(layer, Downsample) and halvings:
            temporal[index] = temporal_conv(_channels(layer), config.temporal_kernel, stride=2)
            halvings -= 1
    patch = None
    if config.patch_skip:
        patch = PatchToLatent(config.in_channels, config.latent_dim, config.spatial_factor, config.temporal_factor)
    return FactorisedStack(frames, temporal, patch)


def video_decoder(config: VideoTokenizerConfig) -> FactorisedStack:
    frames = ImageDecoder(config.frame_layers_config())
    temporal: dict[int, nn.Module] = {}
    upsamples = [i for i, layer in enumerate(frames.layers) if isinstance(layer, Upsample)]
    doublings = set(upsamples[len(upsamples) - int(math.log2(config.temporal_factor)) :])  # the last ones
    for index, layer in enumerate(frames.layers):
        if isinstance(layer, ResidualBlock):
            temporal[index] = temporal_conv(_channels(layer), config.temporal_kernel)
        elif index in doublings:
            temporal[index] = CausalTimeUpsample(_channels(layer), config.temporal_kernel)
    patch = None
    if config.patch_skip:
        patch = LatentToPatch(config.latent_dim, config.in_channels, config.spatial_factor, config.temporal_factor)
    return FactorisedStack(frames, temporal, patch)


class VideoTokenizer(Tokenizer):
    family = "video"
    modality = "video"
    config_class = VideoTokenizerConfig
    token_axes = ("t", "h", "w")
    streams: ClassVar[bool] = True  # encode_stream: any length in bounded memory

    def __init__(self, config: VideoTokenizerConfig):
        super().__init__(config)
        self.encoder = video_encoder(config)
        self.quantizer = config.quantizer.build(config.latent_dim)
        self.decoder = video_decoder(config)

    # -- inputs ---------------------------------------------------------------------------------
    def check_input(self, x: torch.Tensor) -> None:
        self._check_frames(x)
        problem = frame_count_problem(x.shape[2], self.config.temporal_factor)
        if problem:
            raise ValueError(problem)

    def _check_frames(self, x: torch.Tensor) -> None:
        """Everything but the frame count."""
        f, c = self.config.spatial_factor, self.config.in_channels
        if x.ndim != 5 or x.shape[1] != c:
            raise ValueError(f"expected videos (B, {c}, T, H, W), got {tuple(x.shape)}")
        h, w = x.shape[3:]
        if h % f or w % f:
            raise ValueError(f"frame height and width must be divisible by {f}, got {h}x{w}")
        if h == w == f and self._one_value_norms:
            raise ValueError(
                f"frames of {h}x{w} pixels give a 1x1 latent grid, which this tokenizer's group norms cannot "
                f"normalise; frames need at least {f}x{2 * f} or {2 * f}x{f} pixels"
            )

    @property
    def _one_value_norms(self) -> bool:
        """Whether a group norm holds one channel per group (a 1x1 grid then gives it one value)."""
        return any(isinstance(m, nn.GroupNorm) and m.num_channels == m.num_groups for m in self.modules())

    def token_shape_for(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        *_, frames, h, w = input_shape
        problem = frame_count_problem(frames, self.config.temporal_factor)
        if problem:
            raise ValueError(problem)
        f = self.config.spatial_factor
        if h % f or w % f:
            raise ValueError(f"frame height and width must be divisible by {f}, got {h}x{w}")
        return (self.config.latent_frames(frames), h // f, w // f)

    def bucketed_length(self, length: int) -> int:
        # Buckets of latent frames: the frame count stays 1 + k * temporal_factor.
        t = self.config.temporal_factor
        return 1 + t * bucket_length((length - 1) // t)

    @property
    def padding_axes(self) -> tuple[int, int]:
        # Latent frame j sees frames <= t * j only: frames padded on the right cannot reach it.
        return (1, 0)

    # -- encoder and decoder, whole or in chunks ------------------------------------------------
    def encode_latent(self, x: torch.Tensor) -> torch.Tensor:
        chunk = self.config.chunk_latent_frames
        t = self.config.temporal_factor
        if torch.is_grad_enabled() or self.config.latent_frames(x.shape[2]) <= chunk:
            z = self.encoder(x)
        else:  # the first chunk's first latent frame covers one frame, every other one t frames
            z = _in_chunks(self.encoder, x, first=1 + t * (chunk - 1), size=t * chunk)
        return z.permute(0, 2, 3, 4, 1)  # (B, T', H', W', D), channel-last for the quantizer

    def decode_latent(self, latent: torch.Tensor) -> torch.Tensor:
        z = latent.permute(0, 4, 1, 2, 3)
        chunk = self.config.chunk_latent_frames
        if torch.is_grad_enabled() or z.shape[2] <= chunk:
            return self.decoder(z)
        return _in_chunks(self.decoder, z, first=chunk, size=chunk)

    def streaming(self):
        """Within this context `encode_chunk` and `decode_chunk` carry state from chunk to chunk."""
        return streaming(self)

    @torch.no_grad()
    def encode_chunk(self, frames: torch.Tensor, num_codebooks: int | None = None) -> torch.Tensor:
        """The next frames (B, C, n, H, W), any n -> ids (B, n', H', W', codebooks) of the latent
        frames they complete (possibly none); the first latent frame is complete after one frame."""
        if not is_streaming(self.encoder):
            raise RuntimeError("encode_chunk needs `with tokenizer.streaming():`")
        latent = self.encoder(frames).permute(0, 2, 3, 4, 1)
        codebooks = self.num_codebooks if num_codebooks is None else num_codebooks
        if latent.shape[1] == 0:
            return torch.zeros(*latent.shape[:-1], codebooks, dtype=torch.long, device=frames.device)
        options = {} if num_codebooks is None else {"num_codebooks": num_codebooks}
        return self.quantizer(latent, **options).ids

    @torch.no_grad()
    def encode_stream(self, chunks: Iterable[torch.Tensor], *, num_codebooks: int | None = None) -> torch.Tensor:
        """ids (B, T', H', W', n) of a video given as pieces (B, 3, t, H, W) of any lengths, equal to
        `encode` of the whole video: the pieces are cut into `encode`'s chunks (1 + t·(c - 1)
        frames first, so the first latent frame covers one frame, then t·c; c =
        `chunk_latent_frames`) and encoded carrying the causal state. A frame count off the
        1 + k·t rule is `encode`'s ValueError, raised once the pieces run out."""
        t, chunk = self.config.temporal_factor, self.config.chunk_latent_frames
        sizes = itertools.chain([1 + t * (chunk - 1)], itertools.repeat(t * chunk))
        parts, frames = [], 0
        with self.streaming():
            for piece in rechunk(self._stream_pieces(chunks, self._check_frames), sizes):
                frames += piece.shape[2]
                parts.append(self.encode_chunk(piece, num_codebooks))
        problem = frame_count_problem(frames, t)
        if problem:
            raise ValueError(problem)
        return torch.cat(parts, dim=1)

    @torch.no_grad()
    def decode_chunk(self, ids: torch.Tensor) -> torch.Tensor:
        """The next latent frames' ids -> their frames (the first latent frame gives one frame, later ones t)."""
        if not is_streaming(self.decoder):
            raise RuntimeError("decode_chunk needs `with tokenizer.streaming():`")
        return self.decoder(self.quantizer.decode_ids(ids).permute(0, 4, 1, 2, 3))

    # -- an image is a one-frame video ------------------------------------------------------------
    def load_initial_weights(self) -> None:
        """Inflates the image tokenizer at `init_from`: its encoder, decoder and quantizer become
        the per-frame layers and the bottleneck; the temporal convolutions start as deltas on the
        current frame, so a one-frame video gets exactly the image tokenizer's ids."""
        if not self.config.init_from:
            return
        from mmtok.artifact import load_tokenizer

        if not Path(self.config.init_from).exists():
            raise FileNotFoundError(
                f"model.init_from: no image tokenizer at {self.config.init_from}; `mmtok quickstart` writes "
                "runs/quickstart/tokenizer (or export a 2-D image run); model.init_from=null trains from scratch"
            )
        image = load_tokenizer(self.config.init_from)
        if image.family != "image":
            raise ValueError(
                f"model.init_from: {self.config.init_from} holds a {image.family} tokenizer, not an image one"
            )
        ours = dataclasses.asdict(self.config.frame_config())
        theirs = {**dataclasses.asdict(ImageTokenizerConfig()), **image.config["model"]}
        if theirs["patch_kernel"] is not None:
            raise ValueError(
                f"model.init_from: the image tokenizer's patch path is lapped (patch_kernel {theirs['patch_kernel']}); "
                "a video patch path takes disjoint blocks, so train the image tokenizer without model.patch_kernel"
            )
        different = [name for name in (*FRAME_FIELDS, "quantizer") if ours[name] != theirs[name]]
        if different:
            overrides = " ".join(f"model.{name}={theirs[name]}" for name in different)
            raise ValueError(f"model.init_from: the image tokenizer differs in {different}; set {overrides}")
        encoder, decoder = image.model.encoder, image.model.decoder
        self.encoder.frames.load_state_dict(_without(encoder.state_dict(), "patch_in."))
        self.decoder.frames.load_state_dict(_without(decoder.state_dict(), "patch_out."))
        self.quantizer.load_state_dict(image.model.quantizer.state_dict())
        if self.config.patch_skip:
            self.encoder.patch.inflate(encoder.patch_in.weight, encoder.patch_in.bias)
            self.decoder.patch.inflate(decoder.patch_out.weight, decoder.patch_out.bias)

    # -- the shared Tokenizer hooks ---------------------------------------------------------------
    def last_layer_weight(self) -> torch.Tensor:
        return self.decoder.frames.to_pixels.weight

    @classmethod
    def input_spec_for(cls, config: VideoTokenizerConfig) -> VideoInputSpec:
        return VideoInputSpec(
            config.in_channels,
            temporal_factor=config.temporal_factor,
            fps=config.fps,
            short_side=config.short_side,
            min_side=config.image_size,
            multiple_of=config.spatial_factor,
            pad_frames=config.pad_frames,
            max_pixels=config.max_pixels,
        )

    def vocab_layout(self, **options) -> VocabLayout:
        # Time varies; the grid is nominal (the training crop's), as the shard rows store the true shape.
        grid = self.config.image_size // self.config.spatial_factor
        return VocabLayout("video", [None, grid, grid], self.codebook_sizes, **options)

    def rate_examples(self):
        frames = 1 + 4 * self.config.temporal_factor
        sizes = sorted({self.config.image_size, 256})
        return [
            (f"{frames}x{s}x{s}", (self.config.in_channels, frames, s, s), float(frames * s * s), "pixel")
            for s in sizes
            if s % self.config.spatial_factor == 0
        ]


def _without(state: dict, prefix: str) -> dict:
    return {name: value for name, value in state.items() if not name.startswith(prefix)}


def _in_chunks(stack: FactorisedStack, x: torch.Tensor, *, first: int, size: int) -> torch.Tensor:
    """`stack` over time-chunks of x (first, then size frames each), carrying its causal state."""
    with streaming(stack):
        parts = [stack(part) for part in rechunk([x], itertools.chain([first], itertools.repeat(size)))]
    return torch.cat(parts, dim=2)
