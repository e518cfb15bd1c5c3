"""Datasets and sample data for training tokenizers."""

from .audio import AUDIO_EXTENSIONS, AudioDataset, AudioDecodeError, audio_to_tensor, load_audio, normalize_loudness
from .images import IMAGE_EXTENSIONS, PARQUET_IMAGE_COLUMNS, ImageDataset
from .sample_images import SAMPLE_IMAGE_NAMES, sample_images, write_sample_images

__all__ = [
    "IMAGE_EXTENSIONS",
    "PARQUET_IMAGE_COLUMNS",
    "ImageDataset",
    "SAMPLE_IMAGE_NAMES",
    "sample_images",
    "write_sample_images",
    "AUDIO_EXTENSIONS",
    "AudioDataset",
    "AudioDecodeError",
    "audio_to_tensor",
    "load_audio",
    "normalize_loudness",
]
