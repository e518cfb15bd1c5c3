"""Video datasets for training tokenizers: random clips of 1 + k·t frames, and still images mixed in.

Clips go through the one video input path (`mmtok.data.video_io`): the same decoding, frame rate
and resizing as `FrozenTokenizer.encode` and `mmtok tokenize`; only the window differs (a random
crop, the same for every frame of the clip, instead of the centred one), a random start is drawn,
and a horizontal flip may follow. A file shorter than a clip repeats its last frame. Undecodable
files are skipped and counted as in ``ImageDataset``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from mmtok.data.decoded import DecodedSourceDataset
from mmtok.data.image_io import Window, centre_window, decode_image
from mmtok.data.images import augment_colour
from mmtok.data.video_io import FALLBACK_FPS, DecodedVideo, VideoInputSpec, frame_count_problem, probe_video
from mmtok.modalities import MODALITIES

VIDEO_EXTENSIONS = MODALITIES["video"].extensions

__all__ = ["VIDEO_EXTENSIONS", "StillsAndClips", "VideoDataset"]


class VideoDataset(DecodedSourceDataset):
    """Clips of ``frames`` frames and ``size`` x ``size`` pixels from the videos in ``source`` (a
    folder, .tar, .parquet or glob; see ``mmtok.data.sources``), as float (3, frames, size, size).
    With ``stills=True`` the source holds images instead, each resized as a frame and held still
    for the clip's frames. ``hue_rotation`` and ``grayscale`` change a clip's colours as
    ``ImageDataset`` does a photo's, the same change on every frame."""

    def __init__(
        self,
        source: str | Path,
        *,
        spec: VideoInputSpec,
        frames: int,
        size: int,
        random_crop: bool = True,
        random_start: bool = True,
        random_flip: bool = True,
        hue_rotation: float = 0.0,
        grayscale: float = 0.0,
        stills: bool = False,
        column: str | None = None,
    ):
        problem = frame_count_problem(frames, spec.temporal_factor)
        if problem:
            raise ValueError(f"data.frames: {problem}")
        if size <= 0 or size % spec.multiple_of:
            raise ValueError(f"clip size {size} must be a positive multiple of {spec.multiple_of}")
        super().__init__(source, modality="image" if stills else "video", column=column)
        self.spec, self.frames, self.size = spec, frames, size
        self.random_crop, self.random_start, self.random_flip = random_crop, random_start, random_flip
        self.stills = stills
        for name, value in (("hue_rotation", hue_rotation), ("grayscale", grayscale)):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} is a probability in [0, 1], got {value}")
        self.hue_rotation, self.grayscale = hue_rotation, grayscale

    def _decode(self, data: bytes, name: str) -> DecodedVideo:
        if self.stills:
            pixels = self.spec.resize(decode_image(data))
            fps = self.spec.fps or FALLBACK_FPS
            return DecodedVideo(np.repeat(pixels[None], self.frames, axis=0), fps, fps, *pixels.shape[:2])
        start = 0.0
        if self.random_start:
            duration, rate = probe_video(data, name)
            rate = self.spec.fps or rate
            if duration:
                start = int(torch.randint(max(1, int(duration * rate) - self.frames + 1), ())) / rate
        video = self.spec.decode(data, start=start, max_frames=self.frames, name=name)
        missing = self.frames - len(video.frames)
        if missing:  # a short video: hold its last frame
            video = video._replace(frames=np.concatenate([video.frames, np.repeat(video.frames[-1:], missing, 0)]))
        return video

    def _window(self, h: int, w: int) -> Window:
        if h < self.size or w < self.size:
            raise ValueError(f"frames of {h}x{w} are smaller than the {self.size} px crop")
        if not self.random_crop:
            return centre_window(h, w, self.size, 1)
        top = int(torch.randint(h - self.size + 1, ()))
        left = int(torch.randint(w - self.size + 1, ()))
        return top, left, self.size, self.size

    def _item(self, video: DecodedVideo) -> torch.Tensor:
        x = self.spec.prepare_clip(video, window=self._window, pad=False).tensor[0]
        if self.random_flip and bool(torch.rand(()) < 0.5):
            x = x.flip(-1)
        return augment_colour(x, self.hue_rotation, self.grayscale)  # one change for every frame


class StillsAndClips(Dataset):
    """Video clips, with a share of items that are still images instead (a `VideoDataset` with
    stills=True). A causal tokenizer encodes a clip's first frame as a one-frame video, so stills
    train the image path on more pictures, and their held frames teach it what does not move.
    Item i is a still with probability `still_fraction` (drawn from torch's RNG, which the trainer
    seeds per item), otherwise clip i."""

    def __init__(self, clips: VideoDataset, stills: VideoDataset, still_fraction: float):
        if not 0.0 <= still_fraction <= 1.0:
            raise ValueError(f"still_fraction must be in [0, 1], got {still_fraction}")
        self.clips, self.stills, self.still_fraction = clips, stills, still_fraction
        self.failed_sources: list[str] = []

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, index: int) -> torch.Tensor:
        seen = [len(self.clips.failed_sources), len(self.stills.failed_sources)]
        if bool(torch.rand(()) < self.still_fraction):
            item = self.stills[int(torch.randint(len(self.stills), ()))]
        else:
            item = self.clips[index]
        for dataset, before in zip((self.clips, self.stills), seen):  # what failed while fetching this item
            self.failed_sources += dataset.failed_sources[before:]
        return item
