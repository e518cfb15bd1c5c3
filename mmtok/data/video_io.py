"""The one input path for video: decode (PyAV), resample the frame rate, resize, crop, the
1 + k·t frame rule, and the spec that records it all.

Training (`VideoDataset`), `FrozenTokenizer.encode`, `mmtok tokenize` and eval all go through
`decode_video` and `VideoInputSpec.prepare_clip`:

- a file is decoded by PyAV (FFmpeg: mp4, webm, mkv, avi, mov, ...) to 8-bit RGB frames; with
  `fps` set, frames are resampled to that rate (each output time takes the nearest source frame);
- each frame is resized so its shorter side is `short_side` (when set), else upscaled to `min_side`
  when it is below (bicubic, as images are);
- then a window is cut, the same for every frame: training takes random crops, encoding a centred
  crop of at most `crop_size` per side whose sides are multiples of `multiple_of`;
- a causal video tokenizer takes 1 + k·t frames (t = `temporal_factor`). Any other count is an
  error naming the nearest valid counts, or, with `pad_frames`, the last frame is repeated up to
  the next valid count and the padding is recorded (`info["padded_frames"]`) so `to_media` cuts it off;
- pixels map to [-1, 1], as (B, 3, T, H, W).

A frame larger than `max_pixels` once resized is refused (ValueError) before it is resized. A long
video is prepared frame by frame instead of whole (`VideoInputSpec.prepare_stream`), the same steps
in the same order, so the pieces put together are `prepare`'s tensor.

The way back: `to_media` gives `VideoClip`s (frames and frame rate) whose `save("out.mp4")`
writes an H.264 MP4 (`write_video`).
"""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Callable, Iterable, Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any, BinaryIO, ClassVar, NamedTuple

import numpy as np
import torch

from mmtok.data.image_io import (
    Window,
    centre_window,
    check_pixels,
    min_side_size,
    pixels_to_tensor,
    resize_shorter_side,
    shorter_side_size,
    tensor_to_images,
    upscale_to_min_side,
)
from mmtok.data.spec import InputSpec, Prepared, PreparedStream, stack_prepared

ENCODED = (str, Path, bytes, bytearray, memoryview)
FALLBACK_FPS = 25.0  # for frames given as arrays with no rate anywhere


# A frame is encoded with its neighbours' activations alive, so frames get a lower cap than
# photos: full HD (2.07 Mpx) passes, a 4096 x 16 strip resized to a 128 px short side (32768 x 128,
# 4.2 Mpx, 3.4 GiB to encode on a CPU) does not.
DEFAULT_VIDEO_MAX_PIXELS = 2**21


class VideoDecodeError(ValueError):
    """A source that does not decode to video frames; the message names the source and the reason."""


# -- the frame-count rule -------------------------------------------------------------------------
def frame_count_problem(frames: int, factor: int) -> str | None:
    """None when `frames` is 1 + k * factor (k >= 0), else what is wrong and the nearest valid counts."""
    if frames >= 1 and (frames - 1) % factor == 0:
        return None
    above = next_valid_frame_count(frames, factor)
    if frames < 1:
        return f"a video needs at least 1 frame, got {frames}"
    below = above - factor
    return (
        f"{frames} frames: this tokenizer takes 1 + {factor}k frames (1, {1 + factor}, {1 + 2 * factor}, ...); "
        f"the nearest valid counts are {below} and {above}. Trim the video, or set pad_frames to repeat "
        f"its last frame up to {above} (the padding is recorded and removed at decode)"
    )


def next_valid_frame_count(frames: int, factor: int) -> int:
    """The smallest 1 + k * factor >= frames."""
    return 1 + max(0, -(-(frames - 1) // factor)) * factor


# -- decoding --------------------------------------------------------------------------------------
class DecodedVideo(NamedTuple):
    frames: np.ndarray  # uint8 (T, H, W, 3), after the per-frame transform
    fps: float  # the rate of `frames`
    source_fps: float
    source_height: int
    source_width: int


def _open(source: str | Path | bytes | BinaryIO, name: str | None):
    import av

    encoded = isinstance(source, (bytes, bytearray, memoryview))
    if hasattr(source, "read"):  # an open file: PyAV reads and seeks it as it needs
        opened, name = source, name or "<video file object>"
    else:
        name = name or (f"<{len(source)} bytes of encoded video>" if encoded else str(source))
        if not encoded and not Path(source).is_file():
            raise FileNotFoundError(f"video file {source} does not exist")
        opened = io.BytesIO(bytes(source)) if encoded else str(source)
    try:
        container = av.open(opened)
    except (av.FFmpegError, UnicodeDecodeError, ValueError) as error:
        raise VideoDecodeError(f"cannot decode video {name}: {error}") from None
    if not container.streams.video:
        container.close()
        raise VideoDecodeError(f"cannot decode video {name}: it has no video stream")
    return container, name


def _stream_fps(stream) -> float:
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    return float(rate) if rate else FALLBACK_FPS


class VideoProbe(NamedTuple):
    duration: float | None  # seconds, None when the container does not say
    fps: float


def probe_video(source: str | Path | bytes, name: str | None = None) -> VideoProbe:
    """A video's declared duration and frame rate, read from the container without decoding."""
    container, _ = _open(source, name)
    with container:
        stream = container.streams.video[0]
        fps = _stream_fps(stream)
        if stream.duration is not None and stream.time_base is not None:
            return VideoProbe(float(stream.duration * stream.time_base), fps)
        if stream.frames:
            return VideoProbe(stream.frames / fps, fps)
        return VideoProbe(container.duration / 1e6 if container.duration else None, fps)


def decode_video(
    source: str | Path | bytes,
    *,
    fps: float | None = None,
    start: float = 0.0,
    max_frames: int | None = None,
    frame_transform: Callable[[np.ndarray], np.ndarray] | None = None,
    name: str | None = None,
) -> DecodedVideo:
    """RGB frames of a path or encoded bytes from `start` seconds on (at most `max_frames`), at the
    file's own rate or resampled to `fps`; `frame_transform` is applied to each frame as it is
    decoded (so a long video is never held at full resolution). Raises VideoDecodeError for an
    empty, truncated or non-video source and FileNotFoundError for a missing path."""
    import av

    container, name = _open(source, name)
    with container:
        stream = container.streams.video[0]
        source_fps = _stream_fps(stream)
        if start > 0:
            container.seek(int(start / stream.time_base), stream=stream, backward=True)
        try:
            frames = list(_sampled(container.decode(stream), source_fps, fps, start, max_frames, frame_transform))
        except av.FFmpegError as error:
            raise VideoDecodeError(f"cannot decode video {name}: {error}") from None
        declared = stream.frames
        height, width = stream.codec_context.height, stream.codec_context.width
    if not frames:
        raise VideoDecodeError(f"cannot decode video {name}: no frames" + (f" after {start:.2f} s" if start else ""))
    whole = start == 0 and max_frames is None and fps is None
    if whole:
        _check_whole(len(frames), declared, name)
    return DecodedVideo(np.stack(frames), fps or source_fps, source_fps, height, width)


def _check_whole(count: int, declared: int, name: str) -> None:
    if declared and count < declared:
        raise VideoDecodeError(f"cannot decode video {name}: truncated, decoded {count} of {declared} frames")


def _sampled(decoded: Iterable, source_fps: float, fps, start: float, limit, transform) -> Iterator[np.ndarray]:
    """The frames from `start` on (at most `limit`): every one at the file's rate (fps None), else
    the frame nearest to each output time start + k / fps (a tie goes to the later frame). A frame
    shown at several output times is the same array each time."""
    emitted = 0
    held, held_time, held_pixels = None, 0.0, None
    for index, frame in enumerate(decoded):
        time = frame.time if frame.time is not None else index / source_fps
        if fps is None:
            if time >= start - 0.5 / source_fps:
                yield _pixels(frame, transform)
                emitted += 1
        else:
            # Output times before the midpoint of the held frame and this one show the held frame.
            while held is not None and limit != emitted and start + emitted / fps < (held_time + time) / 2:
                held_pixels = held_pixels if held_pixels is not None else _pixels(held, transform)
                yield held_pixels
                emitted += 1
            held, held_time, held_pixels = frame, time, None
        if limit == emitted:
            return
    # The last frame shows for one source frame, where the video ends; a tenth of a frame of slack
    # for containers that round timestamps (Matroska keeps milliseconds).
    while held is not None and limit != emitted and start + emitted / fps < held_time + 0.9 / source_fps:
        held_pixels = held_pixels if held_pixels is not None else _pixels(held, transform)
        yield held_pixels
        emitted += 1


def _pixels(frame, transform) -> np.ndarray:
    pixels = frame.to_ndarray(format="rgb24")
    return transform(pixels) if transform is not None else pixels


def resized_frame_size(h: int, w: int, short_side: int | None, min_side: int | None) -> tuple[int, int]:
    """(height, width) of an h x w frame after `resize_frame`."""
    return min_side_size(h, w, min_side) if short_side is None else shorter_side_size(h, w, short_side)


def resize_frame(
    pixels: np.ndarray, short_side: int | None, min_side: int | None, max_pixels: int | None = None
) -> np.ndarray:
    """The shorter side made `short_side` (bicubic, antialiased), or upscaled to `min_side` when below;
    ValueError, before resizing, when the result would hold more than `max_pixels` pixels."""
    h, w = pixels.shape[:2]
    check_pixels((h, w), resized_frame_size(h, w, short_side, min_side), max_pixels, "a frame")
    return upscale_to_min_side(pixels, min_side) if short_side is None else resize_shorter_side(pixels, short_side)


def _frames_tensor(frames: list[np.ndarray]) -> torch.Tensor:
    """uint8 frames (H, W, 3) -> (1, 3, T, H, W) in [-1, 1]."""
    return pixels_to_tensor(np.stack(frames)).transpose(0, 1)[None]


# -- the way back --------------------------------------------------------------------------------------
@dataclasses.dataclass
class VideoClip:
    """Decoded frames, uint8 (T, H, W, 3), and their rate; `save` writes them as a video file."""

    frames: np.ndarray
    fps: float

    def __len__(self) -> int:
        return len(self.frames)

    def __array__(self, dtype=None, copy=None):
        return self.frames if dtype is None else self.frames.astype(dtype)

    def save(self, path: str | Path, **options) -> Path:
        return write_video(path, self.frames, self.fps, **options)


def write_video(
    path: str | Path, frames: np.ndarray, fps: float, *, crf: int = 18, preset: str = "medium", lossless: bool = False
) -> Path:
    """uint8 (T, H, W, 3) -> a video file at `fps`: H.264 (libx264, yuv420p; .mp4, .mkv, .mov), or
    with `lossless` FFV1 in RGB (.mkv), which decodes to exactly these frames. H.264 needs even
    heights and widths (4:2:0 chroma)."""
    import av

    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3 or len(frames) == 0:
        raise ValueError(f"expected uint8 frames (T, H, W, 3) with T >= 1, got {frames.dtype} {frames.shape}")
    if not lossless and (frames.shape[1] % 2 or frames.shape[2] % 2):
        raise ValueError(f"H.264 (4:2:0) needs even frame sizes, got {frames.shape[1]}x{frames.shape[2]}")
    path = Path(path)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("ffv1" if lossless else "libx264", rate=Fraction(fps).limit_denominator(1001))
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "bgr0" if lossless else "yuv420p"
        if not lossless:
            stream.options = {"crf": str(crf), "preset": preset}
        for pixels in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")))
        container.mux(stream.encode(None))
    return path


# -- the spec --------------------------------------------------------------------------------------------
@dataclasses.dataclass
class VideoInputSpec(InputSpec):
    """How videos are prepared for one tokenizer (see the module docstring)."""

    modality: ClassVar[str] = "video"
    info_fields: ClassVar[dict[str, type]] = {
        "channels": int,
        "frames": int,  # the video's own frames, without padding
        "padded_frames": int,
        "height": int,
        "width": int,
        "fps": float,
        "source_fps": float,
        "source_height": int,
        "source_width": int,
    }

    channels: int = 3
    temporal_factor: int = 4  # clips hold 1 + k * temporal_factor frames
    fps: float | None = None  # frames are resampled to this rate; None keeps the file's
    short_side: int | None = None  # frames are resized so their shorter side is this
    min_side: int | None = None  # ... or, without short_side, upscaled to this when below
    crop_size: int | None = None  # encoding keeps a centred crop of at most this per side
    multiple_of: int = 1  # ... whose sides are multiples of this (the tokenizer's downsampling)
    pad_frames: bool = False  # repeat the last frame up to 1 + k·t frames instead of an error
    max_pixels: int | None = DEFAULT_VIDEO_MAX_PIXELS  # pixels per frame after resizing; more is an error

    def resize(self, pixels: np.ndarray) -> np.ndarray:
        return resize_frame(pixels, self.short_side, self.min_side, self.max_pixels)

    def decode(self, source: str | Path | bytes, **options) -> DecodedVideo:
        """`decode_video` at this spec's rate and size (options: start, max_frames, name)."""
        return decode_video(source, fps=self.fps, frame_transform=self.resize, **options)

    def prepare_clip(
        self, video: DecodedVideo, window: Callable[[int, int], Window] | None = None, *, pad: bool | None = None
    ) -> Prepared:
        """Resized frames -> one example (1, 3, T, H, W) in [-1, 1], cut to `window(h, w)` (default:
        the centred crop this spec describes), its frame count checked or padded (`pad`, default
        the spec's `pad_frames`)."""
        frames = video.frames
        h, w = frames.shape[1:3]
        top, left, ch, cw = (window or self._centre)(h, w)
        frames = frames[:, top : top + ch, left : left + cw]
        count = len(frames)
        padding = self._padding(count, pad)
        if padding:
            frames = np.concatenate([frames, np.repeat(frames[-1:], padding, axis=0)])
        x = pixels_to_tensor(frames).transpose(0, 1)[None]  # (1, 3, T, H, W)
        info = self._info(count, padding, ch, cw, video.fps, video.source_fps, video.source_height, video.source_width)
        return Prepared(x, [info])

    def _padding(self, count: int, pad: bool | None = None) -> int:
        """Frames to repeat after `count` ones, or the frame-count ValueError without padding."""
        problem = frame_count_problem(count, self.temporal_factor)
        if problem and not (self.pad_frames if pad is None else pad):
            raise ValueError(problem)
        return next_valid_frame_count(count, self.temporal_factor) - count

    def _info(self, count, padding, height, width, fps, source_fps, source_height, source_width) -> dict:
        return {
            "channels": self.channels,
            "frames": count,
            "padded_frames": padding,
            "height": height,
            "width": width,
            "fps": float(fps),
            "source_fps": float(source_fps),
            "source_height": source_height,
            "source_width": source_width,
        }

    # -- long videos, in pieces ---------------------------------------------------------------------
    def stream_size(self, file: BinaryIO) -> int | None:
        """Values of the prepared tensor (3 x frames x height x width after resampling, resizing,
        cropping and padding), from the container's stream metadata without decoding; None when
        it does not say. Read from the file's start; the file is left where it was."""
        position = file.tell()
        try:
            file.seek(0)
            container, _ = _open(file, None)
            with container:
                stream = container.streams.video[0]
                source_fps = _stream_fps(stream)
                height, width = stream.codec_context.height, stream.codec_context.width
                if stream.duration is not None and stream.time_base is not None:
                    duration = float(stream.duration * stream.time_base)
                elif container.duration:
                    duration = container.duration / 1e6
                else:
                    duration = stream.frames / source_fps if stream.frames else None
                frames = stream.frames if self.fps is None and stream.frames else None
            if frames is None and duration:
                frames = round(duration * (self.fps or source_fps))
            if not frames or not height or not width:
                return None
            _, _, ch, cw = self._centre(*resized_frame_size(height, width, self.short_side, self.min_side))
        except Exception:  # not a video PyAV can read, frames too small to crop: `prepare` says why
            return None
        finally:
            file.seek(position)
        return self.channels * next_valid_frame_count(frames, self.temporal_factor) * ch * cw

    def prepare_stream(self, open_file: Callable[[], BinaryIO], name: str, chunk_elements: int) -> PreparedStream:
        """The video `open_file()` reads, prepared in pieces (1, 3, t, H, W) of whole frames, about
        `chunk_elements` values each (at least one frame): decoded by PyAV frame by frame, resampled
        to the spec's fps, resized, centre-cropped, and at the end padded with copies of the last
        frame (`pad_frames`). Put together they equal `prepare(file).tensor`. Errors are
        `prepare`'s, raised while iterating; a frame count off the 1 + k·t rule without
        `pad_frames` is only known, and raised, when the frames run out."""

        def pieces(info: dict) -> Iterator[torch.Tensor]:
            import av

            with open_file() as file:
                container, _ = _open(file, name)
                with container:
                    stream = container.streams.video[0]
                    source_fps = _stream_fps(stream)
                    height, width = stream.codec_context.height, stream.codec_context.width
                    decoded = _sampled(container.decode(stream), source_fps, self.fps, 0.0, None, self.resize)
                    held: list[np.ndarray] = []  # cropped frames not yet emitted
                    count, window, per_piece, last = 0, None, 1, None
                    try:
                        for pixels in decoded:
                            if window is None:
                                size = pixels.shape[:2]
                                window = self._centre(*size)
                                per_piece = max(1, chunk_elements // (self.channels * window[2] * window[3]))
                            elif pixels.shape[:2] != size:
                                raise VideoDecodeError(
                                    f"cannot decode video {name}: its frame size changes from "
                                    f"{size[1]}x{size[0]} to {pixels.shape[1]}x{pixels.shape[0]}"
                                )
                            top, left, ch, cw = window
                            held.append(pixels[top : top + ch, left : left + cw])
                            last = held[-1]  # what padding repeats
                            count += 1
                            if len(held) == per_piece:
                                yield _frames_tensor(held)
                                held = []
                    except av.FFmpegError as error:
                        raise VideoDecodeError(f"cannot decode video {name}: {error}") from None
                    declared = stream.frames
            if count == 0:
                raise VideoDecodeError(f"cannot decode video {name}: no frames")
            if self.fps is None:
                _check_whole(count, declared, name)
            padding = self._padding(count)
            held += [last] * padding
            if held:
                yield _frames_tensor(held)
            fps = self.fps or source_fps
            info.update(self._info(count, padding, window[2], window[3], fps, source_fps, height, width))

        return PreparedStream(pieces, time_axis=2)

    def _centre(self, h: int, w: int) -> Window:
        return centre_window(h, w, self.crop_size, self.multiple_of)

    def prepare(self, media: Any) -> Prepared:
        """A path or encoded bytes, uint8 frames (T, H, W, 3) (at the spec's fps), or a list of
        these (one clip each; they must end up one size) -> (B, 3, T, H, W) in [-1, 1]. A float
        tensor (B, 3, T, H, W) in [-1, 1] is taken as already prepared."""
        if torch.is_tensor(media):
            return self._prepared_tensor(media)
        items = media if isinstance(media, (list, tuple)) else [media]
        if not items:
            raise ValueError("no videos given")
        return stack_prepared([self.prepare_clip(self._decoded(item)) for item in items], "videos")

    def _decoded(self, item: Any) -> DecodedVideo:
        if isinstance(item, ENCODED):
            return self.decode(item)
        frames = np.asarray(item)
        if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
            raise ValueError(f"video arrays must be uint8 frames (T, H, W, 3), got {frames.dtype} {frames.shape}")
        fps = self.fps or FALLBACK_FPS
        resized = np.stack([self.resize(pixels) for pixels in frames])
        return DecodedVideo(resized, fps, fps, *frames.shape[1:3])

    def _prepared_tensor(self, x: torch.Tensor) -> Prepared:
        if not x.is_floating_point() or x.ndim != 5 or x.shape[1] != self.channels:
            raise ValueError(
                f"video tensors must be float (B, {self.channels}, T, H, W) in [-1, 1], got {x.dtype} {tuple(x.shape)}"
            )
        count = x.shape[2]
        padding = next_valid_frame_count(count, self.temporal_factor) - count if self.pad_frames else 0
        if padding:
            x = torch.cat([x, x[:, :, -1:].expand(-1, -1, padding, -1, -1)], dim=2)
        fps = self.fps or FALLBACK_FPS
        h, w = x.shape[-2:]
        info = dict(channels=self.channels, frames=count, padded_frames=padding, height=h, width=w, fps=fps)
        info.update(source_fps=fps, source_height=h, source_width=w)
        return Prepared(x, [dict(info) for _ in range(x.shape[0])])

    def to_media(self, x: torch.Tensor, info: list[dict] | None = None) -> list[VideoClip]:
        """float (B, 3, T, H, W) in [-1, 1] -> one VideoClip per video, padding frames removed and at
        its frame rate when `info` (from `prepare`, or a shard row) says them."""
        if info is not None and len(info) != x.shape[0]:
            raise ValueError(f"{len(info)} info records for {x.shape[0]} videos")
        b, _, t, h, w = x.shape
        frames = tensor_to_images(x.transpose(1, 2).flatten(0, 1)).reshape(b, t, h, w, 3)
        clips = []
        for i, clip in enumerate(frames):
            record = info[i] if info is not None else {}
            count = int(record.get("frames", len(clip)))
            clips.append(VideoClip(clip[:count], float(record.get("fps") or self.fps or FALLBACK_FPS)))
        return clips

    def to_json(self) -> dict:
        decoding = "PyAV (FFmpeg) to 8-bit RGB; nearest-frame rate resampling; bicubic resizing"
        return {**super().to_json(), "range": [-1.0, 1.0], "decoding": decoding}
