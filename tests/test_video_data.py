"""Video data and eval: PyAV decoding of every container, frame-rate resampling, random clips and
crops, broken files skipped and counted, stills mixed in; the video metrics and the H.264 baseline."""

import numpy as np
import pytest
import torch
from video_helpers import CODECS, moving_frames, write_clip

from mmtok.data.video import StillsAndClips, VideoDataset
from mmtok.data.video_io import VideoDecodeError, VideoInputSpec, decode_video
from mmtok.eval.codecs.video_codecs import AV1, H264, VIDEO_CODECS, picture_bits, video_at_bits, video_roundtrip
from mmtok.eval.metrics.image import colour_cast
from mmtok.eval.metrics.video import frame_psnr, temporal_error

SPEC = VideoInputSpec(temporal_factor=4, min_side=16, multiple_of=4)


@pytest.mark.parametrize("suffix", sorted(CODECS))
def test_every_container_decodes_to_its_frames(tmp_path, suffix):
    frames = moving_frames(7, 16, 32)
    video = decode_video(write_clip(tmp_path / f"clip{suffix}", frames, fps=12))
    assert video.frames.shape == frames.shape and video.fps == pytest.approx(12.0)
    # Lossy codecs keep each frame's brightness (which steps by 8 per frame here).
    assert np.abs(video.frames.mean(axis=(1, 2, 3)) - frames.mean(axis=(1, 2, 3))).max() < 3


def test_frame_rate_resampling_takes_the_nearest_frame(tmp_path):
    frames = moving_frames(12, 16, 16)
    path = write_clip(tmp_path / "lossless.mkv", frames, fps=30)
    assert np.array_equal(decode_video(path).frames, frames)
    half = decode_video(path, fps=15)
    assert half.fps == 15 and np.array_equal(half.frames, frames[::2])
    faster = decode_video(path, fps=45)  # output frame k shows source frame round(k * 30 / 45)
    assert np.array_equal(faster.frames, frames[[round(2 * k / 3) for k in range(18)]])
    third = decode_video(path, fps=10, start=0.1, max_frames=2)  # from frame 3 on, every third frame
    assert np.array_equal(third.frames, frames[[3, 6]])
    spec = VideoInputSpec(fps=15, short_side=8, pad_frames=True)
    prepared = spec.prepare(str(path))
    assert prepared.tensor.shape == (1, 3, 9, 8, 8)  # 6 frames at 15 fps, padded to 9; resized to 8 px
    assert prepared.info[0]["source_fps"] == 30 and prepared.info[0]["fps"] == 15


def test_broken_files_name_themselves(tmp_path):
    good = write_clip(tmp_path / "good.mp4", moving_frames(9, 16, 16)).read_bytes()
    (tmp_path / "cut.mp4").write_bytes(good[: len(good) // 2])
    (tmp_path / "empty.webm").write_bytes(b"")
    for name in ("cut.mp4", "empty.webm"):
        with pytest.raises(VideoDecodeError, match=name):
            decode_video(tmp_path / name)
    with pytest.raises(FileNotFoundError):
        decode_video(tmp_path / "missing.mp4")


def test_random_clips_and_crops_and_a_broken_file_skipped_and_counted(tmp_path):
    frames = moving_frames(30, 24, 40)
    write_clip(tmp_path / "videos" / "a.mkv", frames, fps=25)
    (tmp_path / "videos" / "b_broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 cut short")
    dataset = VideoDataset(tmp_path / "videos", spec=SPEC, frames=9, size=16)
    seen = set()
    for seed in range(6):
        torch.manual_seed(seed)
        clip = dataset[seed % 2]
        assert clip.shape == (3, 9, 16, 16)
        pixels = ((clip.permute(1, 2, 3, 0) + 1) * 127.5).round().byte().numpy()
        # Find where the clip comes from: consecutive source frames, the same crop in each.
        matches = [
            (s, top, left)
            for s in range(22)
            for top in range(9)
            for left in range(25)
            if np.array_equal(frames[s : s + 9, top : top + 16, left : left + 16], pixels)
            or np.array_equal(frames[s : s + 9, top : top + 16, left : left + 16][:, :, ::-1], pixels)
        ]
        assert len(matches) >= 1, f"seed {seed}: not a crop of 9 consecutive frames"
        seen.add(matches[0])
    assert len(seen) >= 4  # random starts and crops
    assert [p.split("/")[-1] for p in dataset.failed_sources] == ["b_broken.mp4"]
    with pytest.raises(ValueError, match="data.frames: 8 frames"):
        VideoDataset(tmp_path / "videos", spec=SPEC, frames=8, size=16)


def test_stills_are_held_for_the_clip(tmp_path):
    from PIL import Image

    write_clip(tmp_path / "videos" / "a.mkv", moving_frames(12, 16, 16), fps=25)
    (tmp_path / "images").mkdir()
    Image.fromarray(moving_frames(1, 20, 20)[0]).save(tmp_path / "images" / "still.png")
    clips = VideoDataset(tmp_path / "videos", spec=SPEC, frames=5, size=16)
    stills = VideoDataset(tmp_path / "images", spec=SPEC, frames=5, size=16, stills=True)
    mixed = StillsAndClips(clips, stills, still_fraction=0.5)
    kinds = []
    for seed in range(8):
        torch.manual_seed(seed)
        item = mixed[0]
        assert item.shape == (3, 5, 16, 16)
        kinds.append(bool((item == item[:, :1]).all()))  # a still: every frame equals the first
    assert 0 < sum(kinds) < 8


def test_hue_rotation_and_gray_change_every_frame_of_a_clip_alike(tmp_path):
    write_clip(tmp_path / "videos" / "a.mkv", moving_frames(12, 16, 16), fps=25)
    options = dict(spec=SPEC, frames=5, size=16, random_flip=False)
    plain = VideoDataset(tmp_path / "videos", **options)
    rotated = VideoDataset(tmp_path / "videos", hue_rotation=1.0, **options)
    gray = VideoDataset(tmp_path / "videos", grayscale=1.0, **options)
    for seed in range(3):
        torch.manual_seed(seed)
        x = plain[0]
        torch.manual_seed(seed)  # the same clip and crop; then the angle
        y = rotated[0]
        # One rotation about the gray axis for the whole clip: the least-squares colour map from
        # the first frame to its rotated self reproduces every other frame.
        unclipped = (y.abs() < 0.999).all(dim=0)  # (T, H, W): pixels whose rotated colour stayed in the cube
        assert unclipped.float().mean() > 0.8
        first, first_rotated = x[:, 0][:, unclipped[0]], y[:, 0][:, unclipped[0]]
        matrix = torch.linalg.lstsq(first.T, first_rotated.T).solution.T
        mapped = torch.einsum("ij,jthw->ithw", matrix, x)
        assert torch.allclose(mapped[:, unclipped], y[:, unclipped], atol=0.02)
        assert not torch.allclose(x, y, atol=0.05)
        torch.manual_seed(seed)
        g = gray[0]
        assert torch.equal(g[0], g[1]) and torch.equal(g[1], g[2]) and not torch.equal(x[0], x[1])
    with pytest.raises(ValueError, match="hue_rotation is a probability"):
        VideoDataset(tmp_path / "videos", hue_rotation=1.5, **options)


def test_colour_cast_sees_a_tint_not_noise():
    x = torch.rand(2, 3, 4, 16, 16, dtype=torch.float64) * 1.6 - 0.8
    tint = torch.tensor([20.0, -10.0, -10.0], dtype=torch.float64) / 127.5  # towards red; the gray level kept
    assert torch.allclose(colour_cast(x + tint.view(1, 3, 1, 1, 1), x), torch.full((2,), 600**0.5, dtype=torch.float64))
    noisy = x + 0.05 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert (colour_cast(noisy, x) < 0.3).all()
    assert torch.equal(colour_cast(x, x), torch.zeros(2, dtype=torch.float64))


def test_temporal_error_sees_flicker_not_a_steady_error():
    x = torch.rand(2, 3, 5, 16, 16, dtype=torch.float64) * 2 - 1
    steady = x + 0.1  # the same error in every frame
    flicker = x + 0.1 * torch.tensor([1.0, -1.0, 1.0, -1.0, 1.0]).view(1, 1, 5, 1, 1)
    assert torch.allclose(temporal_error(x, steady), torch.zeros(2, dtype=torch.float64), atol=1e-6)
    assert torch.allclose(temporal_error(x, flicker), torch.full((2,), 0.2 * 127.5, dtype=torch.float64))
    assert frame_psnr(steady, x).shape == (2, 5)


@pytest.mark.parametrize("codec", VIDEO_CODECS, ids=lambda codec: codec.name)
def test_each_video_codec_at_equal_bits(codec):
    frames = moving_frames(9, 32, 48)
    best, low = codec.crf_range[0], codec.crf_range[-1]
    fine, coarse = video_roundtrip(codec, frames, best + 20), video_roundtrip(codec, frames, low - 11)
    assert fine.frames.shape == frames.shape and fine.bits > coarse.bits
    assert np.abs(fine.frames.astype(int) - frames).mean() < np.abs(coarse.frames.astype(int) - frames).mean()
    target = (fine.bits + coarse.bits) / 2
    matched, lowest = video_at_bits(codec, frames, target)
    assert lowest.crf == low and matched.bits >= target > video_roundtrip(codec, frames, matched.crf + 1).bits
    assert video_at_bits(codec, frames, lowest.bits / 2)[0].crf == low  # its lowest quality already reaches it
    assert video_at_bits(codec, frames, 1e12)[0] is None  # more than its best quality spends


def test_the_encoders_banners_are_not_counted():
    stream = b"\x00\x00\x00\x01\x67AAAA\x00\x00\x01\x06" + b"x264 banner" + b"\x00\x00\x01\x65pic"
    assert picture_bits(stream, H264) == 8 * (len(stream) - 3 - 1 - len(b"x264 banner"))
    assert picture_bits(stream, AV1) == 8 * len(stream)  # AV1's OBUs are all counted
