"""H.264 as the baseline video codec: libx264 through PyAV, in memory, at a constant rate factor.

The bits counted are those of the H.264 stream's NAL units minus x264's SEI message (a text banner
of its settings, about 700 bytes that carry no picture and would dominate a short clip's budget);
the parameter sets (SPS, PPS), which a decoder needs, are counted. One group of pictures spans the
clip (x264's default keyframe interval, 250, is longer than the clips here). Frames are converted
to 4:2:0 YUV, H.264's usual format.
"""

from __future__ import annotations

import re
from fractions import Fraction
from typing import NamedTuple

import numpy as np

from mmtok.eval.codecs.matching import cheapest_reaching

CRF_RANGE = range(0, 52)  # x264's rate factors for 8-bit video; 51 is its lowest quality
_START_CODE = re.compile(b"\x00\x00\x01")
SEI_NAL_TYPE = 6


class H264Result(NamedTuple):
    frames: np.ndarray  # decoded uint8 (T, H, W, 3)
    bits: int  # picture bits of the stream (see the module docstring)
    crf: int


def picture_bits(stream: bytes) -> int:
    """Bits of an Annex-B H.264 stream without its SEI NAL units (start codes counted with each unit)."""
    starts = [m.end() for m in _START_CODE.finditer(stream)]
    ends = [s - 3 for s in starts[1:]] + [len(stream)]
    sei = sum(end - start + 3 for start, end in zip(starts, ends) if stream[start] & 0x1F == SEI_NAL_TYPE)
    return 8 * (len(stream) - sei)


def h264_roundtrip(frames: np.ndarray, crf: int, *, fps: float = 25.0, preset: str = "medium") -> H264Result:
    """uint8 (T, H, W, 3) frames (even sizes) -> encoded with libx264 at `crf` and decoded back."""
    import av

    frames = np.asarray(frames)
    encoder = av.CodecContext.create("libx264", "w")
    encoder.width, encoder.height = frames.shape[2], frames.shape[1]
    encoder.pix_fmt = "yuv420p"
    encoder.framerate = Fraction(fps).limit_denominator(1001)
    encoder.time_base = 1 / encoder.framerate
    encoder.options = {"crf": str(crf), "preset": preset}
    packets = []
    for index, pixels in enumerate(frames):
        frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
        frame.pts = index
        packets += encoder.encode(frame)
    packets += encoder.encode(None)
    decoder = av.CodecContext.create("h264", "r")
    decoded = [f.to_ndarray(format="rgb24") for packet in [*packets, None] for f in decoder.decode(packet)]
    if len(decoded) != len(frames):
        raise RuntimeError(f"H.264 round trip gave {len(decoded)} of {len(frames)} frames")
    return H264Result(np.stack(decoded), picture_bits(b"".join(bytes(p) for p in packets)), crf)


def h264_at_bits(frames: np.ndarray, target_bits: float, *, fps: float = 25.0, preset: str = "medium"):
    """(matched, lowest): H.264 at the lowest quality (highest CRF) whose bits reach `target_bits`
    (None when even CRF 0 spends less), and H.264 at its lowest quality (CRF 51)."""
    return cheapest_reaching(
        CRF_RANGE[::-1], lambda crf: h264_roundtrip(frames, crf, fps=fps, preset=preset), lambda r: r.bits, target_bits
    )
