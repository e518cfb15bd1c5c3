"""Opus through PyAV's libopus (no system ffmpeg needed), in memory, at a target bitrate."""

from __future__ import annotations

import io

import av
import numpy as np
import torch


def opus_roundtrip(
    wave: torch.Tensor | np.ndarray, sample_rate: int, kbps: float, *, application: str = "voip"
) -> tuple[torch.Tensor, float]:
    """A mono clip (samples,) or (1, samples) through Opus at `kbps` and back.

    `application` is libopus' tuning: "voip" for speech, "audio" for music, "lowdelay". Returns
    the decoded waveform (1, samples) at `sample_rate`, cut or zero-padded to the input's length
    (the Ogg container's pre-skip removes the encoder delay), and the actual bitrate in kbps of the
    Ogg Opus stream, container overhead included.
    """
    samples = torch.as_tensor(wave, dtype=torch.float32).reshape(1, -1).numpy()
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="ogg") as container:
        stream = container.add_stream("libopus", rate=48000, options={"application": application})
        stream.bit_rate = int(kbps * 1000)
        stream.layout = "mono"
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples), format="flt", layout="mono")
        frame.sample_rate = sample_rate
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            container.mux(packet)
    actual_kbps = buffer.tell() * 8 / (samples.shape[-1] / sample_rate) / 1000
    buffer.seek(0)
    resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
    with av.open(buffer) as container:
        chunks = [out.to_ndarray() for frame in container.decode(audio=0) for out in resampler.resample(frame)]
    chunks += [out.to_ndarray() for out in resampler.resample(None)]
    decoded = torch.from_numpy(np.concatenate(chunks, axis=1)[:1, : samples.shape[-1]].copy())
    return torch.nn.functional.pad(decoded, (0, samples.shape[-1] - decoded.shape[-1])), actual_kbps
