"""Datasets and sample data for training tokenizers."""

from .images import IMAGE_EXTENSIONS, PARQUET_IMAGE_COLUMNS, ImageDataset
from .sample_images import SAMPLE_IMAGE_NAMES, sample_images, write_sample_images

__all__ = [
    "IMAGE_EXTENSIONS",
    "PARQUET_IMAGE_COLUMNS",
    "ImageDataset",
    "SAMPLE_IMAGE_NAMES",
    "sample_images",
    "write_sample_images",
]
