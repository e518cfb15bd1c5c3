"""One input path per modality (decode, normalise, the spec that records it), datasets, sample data."""

from .audio import AUDIO_EXTENSIONS, AudioDataset
from .audio_io import AudioDecodeError, AudioInputSpec, load_audio, normalize_loudness
from .eeg import EEGDataset
from .eeg_io import EEGInputSpec
from .eeg_read import EEGDecodeError, EEGRecording, read_recordings
from .eeg_ts import read_ts
from .image_io import ImageInputSpec, decode_image
from .images import IMAGE_EXTENSIONS, PARQUET_IMAGE_COLUMNS, ImageDataset
from .sample_images import SAMPLE_IMAGE_NAMES, sample_images, write_sample_images
from .spec import InputSpec, Prepared
from .video import VIDEO_EXTENSIONS, StillsAndClips, VideoDataset
from .video_io import VideoClip, VideoDecodeError, VideoInputSpec, decode_video, write_video

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
