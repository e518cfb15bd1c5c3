"""One input path per modality (decode, normalise, the spec that records it), datasets, sample data.

The names below are imported on first access (PEP 562), so `import mmtok.data` or importing one
modality's input path (`mmtok.data.image_io`) loads no other modality's readers (PyAV, MNE, wfdb).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

# name -> the submodule that defines it
_EXPORTS = {
    "AUDIO_EXTENSIONS": "audio",
    "AudioDataset": "audio",
    "AudioDecodeError": "audio_io",
    "AudioInputSpec": "audio_io",
    "load_audio": "audio_io",
    "normalize_loudness": "audio_io",
    "EEGDataset": "eeg",
    "EEGInputSpec": "eeg_io",
    "EEGDecodeError": "eeg_read",
    "EEGRecording": "eeg_read",
    "read_recordings": "eeg_read",
    "read_ts": "eeg_ts",
    "ImageInputSpec": "image_io",
    "decode_image": "image_io",
    "IMAGE_EXTENSIONS": "images",
    "PARQUET_IMAGE_COLUMNS": "images",
    "ImageDataset": "images",
    "InputSpec": "spec",
    "Prepared": "spec",
    "VIDEO_EXTENSIONS": "video",
    "StillsAndClips": "video",
    "VideoDataset": "video",
    "VideoClip": "video_io",
    "VideoDecodeError": "video_io",
    "VideoInputSpec": "video_io",
    "decode_video": "video_io",
    "write_video": "video_io",
}

# Imported now: the function `sample_images` shares its name with its module, and a module imported
# later (`from mmtok.data.sample_images import ...`) would otherwise take the name from the
# function. Cheap: numpy and PIL.
from .sample_images import SAMPLE_IMAGE_NAMES, sample_images, write_sample_images  # noqa: E402

__all__ = [
    "AUDIO_EXTENSIONS",
    "IMAGE_EXTENSIONS",
    "PARQUET_IMAGE_COLUMNS",
    "SAMPLE_IMAGE_NAMES",
    "AudioDataset",
    "AudioDecodeError",
    "AudioInputSpec",
    "EEGDataset",
    "EEGDecodeError",
    "EEGInputSpec",
    "EEGRecording",
    "ImageDataset",
    "ImageInputSpec",
    "InputSpec",
    "Prepared",
    "decode_image",
    "load_audio",
    "normalize_loudness",
    "read_recordings",
    "read_ts",
    "sample_images",
    "write_sample_images",
    "VIDEO_EXTENSIONS",
    "StillsAndClips",
    "VideoClip",
    "VideoDataset",
    "VideoDecodeError",
    "VideoInputSpec",
    "decode_video",
    "write_video",
]


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # later accesses skip this function
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:  # for type checkers and IDEs; never run
    from .audio import AUDIO_EXTENSIONS, AudioDataset
    from .audio_io import AudioDecodeError, AudioInputSpec, load_audio, normalize_loudness
    from .eeg import EEGDataset
    from .eeg_io import EEGInputSpec
    from .eeg_read import EEGDecodeError, EEGRecording, read_recordings
    from .eeg_ts import read_ts
    from .image_io import ImageInputSpec, decode_image
    from .images import IMAGE_EXTENSIONS, PARQUET_IMAGE_COLUMNS, ImageDataset
    from .spec import InputSpec, Prepared
    from .video import VIDEO_EXTENSIONS, StillsAndClips, VideoDataset
    from .video_io import VideoClip, VideoDecodeError, VideoInputSpec, decode_video, write_video
