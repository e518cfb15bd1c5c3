"""The classical video codecs, through PyAV, in memory, at a constant rate factor: H.264 (libx264)
and AV1 (libsvtav1, decoded by libdav1d).

The bits counted are those of the stream a decoder needs: H.264's NAL units minus the SEI message
x264 writes about itself (a text banner of its settings, about 700 bytes that carry no picture and
would dominate a short clip's budget), the parameter sets counted; AV1's OBUs as they are
(SVT-AV1 writes no banner). One group of pictures spans the clip (both encoders' default keyframe
intervals are longer than the clips here). Frames are converted to 4:2:0 YUV, the usual format of both.

H.265 is not among them: the libx265 inside PyAV 18's wheel corrupts the heap on the second or
third encoder a process opens (`corrupted size vs. prev_size`, measured at CRF 20, 40, 51 on
48 x 32 frames, with and without its thread pools), and a codec that can abort an eval job has no
place in it. AV1 is the stronger modern codec anyway.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from fractions import Fraction
from typing import NamedTuple

import numpy as np

from mmtok.eval.codecs.matching import cheapest_reaching

_START_CODE = re.compile(b"\x00\x00\x01")
SEI_NAL_TYPE = 6  # H.264


@dataclass(frozen=True)
class VideoCodec:
    name: str  # as reports show it
    encoder: str  # PyAV / FFmpeg encoder
    decoder: str
    crf_range: range  # from the best quality to the lowest
    options: tuple[tuple[str, str], ...]  # encoder options besides the CRF
    banner_nal: int | None  # the NAL type of the encoder's own SEI (H.264's Annex B); None: count every byte

    def available(self) -> bool:
        import av

        return self.encoder in av.codecs_available and self.decoder in av.codecs_available


H264 = VideoCodec("H.264", "libx264", "h264", range(0, 52), (("preset", "medium"),), SEI_NAL_TYPE)
# SVT-AV1's preset 8 of 0-13: its speed suits clips scored on CPU; CRF 63 is its lowest quality.
AV1 = VideoCodec("AV1", "libsvtav1", "libdav1d", range(1, 64), (("preset", "8"),), None)
VIDEO_CODECS = (H264, AV1)


class CodedVideo(NamedTuple):
    frames: np.ndarray  # decoded uint8 (T, H, W, 3)
    bits: int  # picture bits of the stream (see the module docstring)
    crf: int


def picture_bits(stream: bytes, codec: VideoCodec = H264) -> int:
    """Bits of an encoded stream without the encoder's own SEI NAL units (Annex B, start codes
    counted with each unit); every byte for a codec without one."""
    if codec.banner_nal is None:
        return 8 * len(stream)
    starts = [m.end() for m in _START_CODE.finditer(stream)]
    ends = [s - 3 for s in starts[1:]] + [len(stream)]
    banner = sum(end - start + 3 for start, end in zip(starts, ends) if stream[start] & 0x1F == codec.banner_nal)
    return 8 * (len(stream) - banner)


def video_roundtrip(codec: VideoCodec, frames: np.ndarray, crf: int, *, fps: float = 25.0) -> CodedVideo:
    """uint8 (T, H, W, 3) frames (even sizes) -> encoded by `codec` at `crf` and decoded back."""
    import av

    # SVT-AV1 prints its whole configuration to stderr at every encode unless told its log level.
    os.environ.setdefault("SVT_LOG", "1")
    frames = np.asarray(frames)
    encoder = av.CodecContext.create(codec.encoder, "w")
    encoder.width, encoder.height = frames.shape[2], frames.shape[1]
    encoder.pix_fmt = "yuv420p"
    encoder.framerate = Fraction(fps).limit_denominator(1001)
    encoder.time_base = 1 / encoder.framerate
    encoder.options = {"crf": str(crf), **dict(codec.options)}
    packets = []
    for index, pixels in enumerate(frames):
        frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
        frame.pts = index
        packets += encoder.encode(frame)
    packets += encoder.encode(None)
    decoder = av.CodecContext.create(codec.decoder, "r")
    decoded = [f.to_ndarray(format="rgb24") for packet in [*packets, None] for f in decoder.decode(packet)]
    if len(decoded) != len(frames):
        raise RuntimeError(f"{codec.name} round trip gave {len(decoded)} of {len(frames)} frames")
    return CodedVideo(np.stack(decoded), picture_bits(b"".join(bytes(p) for p in packets), codec), crf)


def video_at_bits(codec: VideoCodec, frames: np.ndarray, target_bits: float, *, fps: float = 25.0):
    """(matched, lowest): `codec` at the lowest quality (highest CRF) whose bits reach `target_bits`
    (None when even its best quality spends less), and at its lowest quality."""
    return cheapest_reaching(
        codec.crf_range[::-1], lambda crf: video_roundtrip(codec, frames, crf, fps=fps), lambda r: r.bits, target_bits
    )
