"""The video tokenizer: the 1 + k·t frame rule, chunked ids equal whole ids, an image is a one-frame
video (inflation), export and decode to a playable MP4, tokenize into shards, training on the shared trainer."""

import json
import random

import av
import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from train_helpers import assert_identical_ranks, tiny_config, train_in_two_processes, write_config, write_images
from video_helpers import TINY_VIDEO, moving_frames, write_clip

from mmtok import load_tokenizer
from mmtok.data.video import StillsAndClips
from mmtok.data.video_io import VideoInputSpec
from mmtok.models import build_tokenizer
from mmtok.shards import ERRORS_FILE, shard_files
from mmtok.tokenize import tokenize
from mmtok.train.config import load_run_config
from mmtok.train.trainer import Trainer


def tiny_video(**changes):
    """A tiny video tokenizer whose temporal convolutions really mix frames (they start as deltas)."""
    torch.manual_seed(0)
    model = build_tokenizer({**TINY_VIDEO, **changes})
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if ".temporal." in name or ".patch." in name:
                parameter.add_(0.2 * torch.randn_like(parameter))
    return model.eval()


def clip(frames: int, seed: int = 0, h: int = 16, w: int = 24) -> torch.Tensor:
    return torch.rand(1, 3, frames, h, w, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_a_frame_count_off_the_rule_is_an_error_naming_the_nearest_counts():
    model = tiny_video()
    assert model.encode(clip(9)).shape == (1, 3, 4, 6, 1)  # 9 = 1 + 4 * 2 frames -> 3 latent frames
    assert model.encode(clip(1)).shape == (1, 1, 4, 6, 1)  # one frame is a video too
    for frames, nearest in ((10, "9 and 13"), (8, "5 and 9"), (2, "1 and 5")):
        with pytest.raises(ValueError, match=f"{frames} frames: .*the nearest valid counts are {nearest}"):
            model.encode(clip(frames))
        with pytest.raises(ValueError, match=nearest):
            model.token_shape_for((3, frames, 16, 16))
    spec = model.input_spec()
    with pytest.raises(ValueError, match="9 and 13"):
        spec.prepare(moving_frames(10, 16, 16))


def test_recorded_padding_round_trips(tmp_path):
    frames = moving_frames(10, 16, 24)
    spec = VideoInputSpec(temporal_factor=4, multiple_of=8, pad_frames=True)
    prepared = spec.prepare(frames)
    [info] = prepared.info
    assert prepared.tensor.shape == (1, 3, 13, 16, 24)
    assert (info["frames"], info["padded_frames"]) == (10, 3)
    assert torch.equal(prepared.tensor[:, :, 10:], prepared.tensor[:, :, 9:10].expand(-1, -1, 3, -1, -1))
    [back] = spec.to_media(prepared.tensor, prepared.info)
    assert np.array_equal(back.frames, frames)  # the padding is cut off and nothing else changes
    # Through a tokenizer: the decoded video has the input's 10 frames.
    frozen = load_tokenizer(tiny_video(pad_frames=True).save_pretrained(tmp_path / "tok"))
    encoded = frozen.encode_media(frames)
    assert encoded.ids.shape[1] == 4 and len(frozen.decode_media(encoded)[0]) == 10


@pytest.mark.parametrize("patch_skip", [False, True], ids=["deep", "with-patch-path"])
def test_chunked_ids_equal_whole_video_ids_for_random_chunk_sizes(patch_skip):
    model = tiny_video(patch_skip=patch_skip)
    x = torch.cat([clip(25, seed=1), clip(25, seed=2)])
    with torch.enable_grad():  # training's forward: the whole video at once
        whole = model.quantize(x).ids
        whole_pixels = model.decode_latent(model.quantizer.decode_ids(whole)).detach()
    assert whole.shape == (2, 7, 4, 6, 1)
    rng = random.Random(0)
    for latent_chunk in (1, 2, 3, 5, 7, 8):
        model.config.chunk_latent_frames = latent_chunk  # encode and decode stream in chunks of this many
        assert torch.equal(model.encode(x), whole), latent_chunk
        assert torch.allclose(model.decode(whole), whole_pixels, atol=1e-5), latent_chunk
    for _ in range(3):  # frame by frame, in chunks of any size
        with model.streaming():
            ids, pixels, start = [], [], 0
            while start < x.shape[2]:
                size = rng.choice([1, 2, 3, 4, 5, 9])
                ids.append(model.encode_chunk(x[:, :, start : start + size]))
                pixels.append(model.decode_chunk(ids[-1]))
                start += size
        assert torch.equal(torch.cat(ids, dim=1), whole)
        assert torch.allclose(torch.cat(pixels, dim=2), whole_pixels, atol=1e-5)
    with pytest.raises(RuntimeError, match="streaming"):
        model.encode_chunk(x)


def test_chunks_keep_memory_bounded_by_the_chunk():
    model = tiny_video(chunk_latent_frames=2)
    frames_seen = []
    model.encoder.frames.layers[0].register_forward_pre_hook(lambda m, args: frames_seen.append(args[0].shape[0]))
    model.encode(clip(41))  # 11 latent frames
    assert max(frames_seen) == 8  # the encoder's first layer never sees more than one chunk (2 x 4 frames)
    assert sum(frames_seen) == 41


def saved_image_tokenizer(folder, seed: int, **changes):
    """A trained-looking image tokenizer with the tiny video's frame layers: random but fixed
    weights, saved with save_pretrained; (model, path)."""
    torch.manual_seed(seed)
    config = {**TINY_VIDEO, "family": "image", **changes}
    config.pop("temporal_factor")
    image = build_tokenizer(config)
    with torch.no_grad():
        for parameter in image.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    return image.eval(), image.save_pretrained(folder / "tok")


@pytest.fixture(scope="module")
def image_tokenizer(tmp_path_factory):
    return saved_image_tokenizer(tmp_path_factory.mktemp("image"), 1, attention=True)


def inflated(path, **changes):
    """The tiny video tokenizer inflated from the image tokenizer at `path`, in eval mode."""
    video = build_tokenizer({**TINY_VIDEO, **changes, "init_from": str(path)})
    video.load_initial_weights()
    return video.eval()


def test_the_inflated_model_gives_a_single_frame_the_image_tokenizers_ids(image_tokenizer):
    image, path = image_tokenizer
    video = inflated(path, attention=True)
    frames = torch.rand(4, 3, 16, 24, generator=torch.Generator().manual_seed(3)) * 2 - 1
    ids = image.encode(frames)
    assert len(ids.unique()) > 10  # a real test: many different codes
    assert torch.equal(video.encode(frames[:, :, None])[:, 0], ids)
    assert torch.allclose(video.decode(ids[:, None])[:, :, 0], image.decode(ids), atol=1e-5)
    # The first frame of any clip is a one-frame video.
    moving = torch.cat([frames[:, :, None], torch.rand(4, 3, 8, 16, 24) * 2 - 1], dim=2)
    assert torch.equal(video.encode(moving)[:, 0], ids)
    mismatched = build_tokenizer({**TINY_VIDEO, "attention": True, "latent_dim": 5, "init_from": str(path)})
    with pytest.raises(ValueError, match=r"differs in \['latent_dim'\]; set model.latent_dim=4"):
        mismatched.load_initial_weights()


@pytest.fixture(scope="module")
def patch_image_tokenizer(tmp_path_factory):
    return saved_image_tokenizer(tmp_path_factory.mktemp("patch-image"), 2, patch_skip=True)


def test_the_patch_path_inflates_so_a_still_video_is_the_image_in_every_frame(patch_image_tokenizer):
    image, path = patch_image_tokenizer
    video = inflated(path, patch_skip=True)
    frames = torch.rand(3, 3, 16, 24, generator=torch.Generator().manual_seed(4)) * 2 - 1
    ids = image.encode(frames)
    assert len(ids.unique()) > 10
    assert image.encoder.patch_in.weight.abs().sum() > 0  # the patch path carries part of the latent
    still = frames[:, :, None].expand(-1, -1, 9, -1, -1)  # 9 equal frames: 3 latent frames
    still_ids = video.encode(still)
    assert all(torch.equal(still_ids[:, j], ids) for j in range(3))
    decoded = video.decode(still_ids)
    assert decoded.shape == still.shape
    assert torch.allclose(decoded, image.decode(ids)[:, :, None].expand_as(decoded), atol=1e-5)
    # The patch path is causal: a later frame changes no earlier latent frame.
    moving = still.clone()
    moving[:, :, 6:] = torch.rand(3, 3, 3, 16, 24) * 2 - 1
    changed = video.encode(moving)
    assert torch.equal(changed[:, :2], still_ids[:, :2]) and not torch.equal(changed[:, 2], still_ids[:, 2])


def test_inflation_refuses_a_missing_folder_and_a_lapped_patch_path(tmp_path):
    video = build_tokenizer({**TINY_VIDEO, "patch_skip": True, "init_from": str(tmp_path / "none")})
    with pytest.raises(FileNotFoundError, match="no image tokenizer at .*mmtok quickstart"):
        video.load_initial_weights()
    _, lapped = saved_image_tokenizer(tmp_path, 3, patch_skip=True, patch_kernel=8)
    video = build_tokenizer({**TINY_VIDEO, "patch_skip": True, "init_from": str(lapped)})
    with pytest.raises(ValueError, match="lapped .patch_kernel 8.*without model.patch_kernel"):
        video.load_initial_weights()


def test_export_load_and_decode_to_a_playable_mp4(tmp_path):
    model = tiny_video(pad_frames=True)
    frozen = load_tokenizer(model.save_pretrained(tmp_path / "tok"))
    assert frozen.config["input"]["modality"] == "video" and frozen.vocab.token_shape == [None, 4, 4]
    path = write_clip(tmp_path / "in.mp4", moving_frames(11, 32, 48), fps=12)
    encoded = frozen.encode_media(str(path))
    prepared = frozen.prepare(str(path))
    assert torch.equal(encoded.ids, model.encode(prepared.tensor))
    assert encoded.ids.shape == (1, 4, 8, 12, 1)  # 11 frames padded to 13 -> 4 latent frames of 8x12
    assert (encoded.info[0]["frames"], encoded.info[0]["padded_frames"], encoded.info[0]["fps"]) == (11, 2, 12.0)
    at_training_size = frozen.encode(moving_frames(5, 16, 16))[0]  # any number of frames of the layout's grid
    assert torch.equal(frozen.vocab.media_segments(frozen.vocab.to_llm_ids(at_training_size))[0], at_training_size)

    [video] = frozen.decode_media(encoded)
    written = video.save(tmp_path / "out.mp4")
    with av.open(str(written)) as container:
        stream = container.streams.video[0]
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(stream)]
        assert (stream.codec_context.name, float(stream.average_rate)) == ("h264", 12.0)
    assert len(frames) == 11 and frames[0].shape == (32, 48, 3)
    # The MP4 holds these frames (H.264 at crf 18 with 4:2:0 chroma: compared over 8x8 blocks).
    blocks = lambda x: np.asarray(x, dtype=float).reshape(11, 4, 8, 6, 8, 3).mean(axis=(2, 4))  # noqa: E731
    assert np.abs(blocks(frames) - blocks(video.frames)).mean() < 2


def test_tokenize_a_folder_of_short_clips_with_a_broken_one(tmp_path):
    frozen_dir = tiny_video(pad_frames=True).save_pretrained(tmp_path / "tok")
    folder = tmp_path / "clips"
    write_clip(folder / "a.mp4", moving_frames(9, 16, 24, seed=1), fps=25)
    write_clip(folder / "b.webm", moving_frames(6, 32, 32, seed=2), fps=10)
    write_clip(folder / "c.mkv", moving_frames(1, 16, 16, seed=3), fps=30)
    good = (folder / "a.mp4").read_bytes()
    (folder / "d_broken.mp4").write_bytes(good[: len(good) // 3])
    (folder / "e_text.avi").write_text("not a video")
    manifest = tokenize(frozen_dir, folder, tmp_path / "out", batch_size=4, num_workers=0, progress=False)
    assert manifest["counts"] == {
        "inputs": 5,
        "samples": 3,
        "tokens": 3 * 24 + 3 * 64 + 1 * 16,
        "errors": 2,
        "skipped": 0,
    }
    errors = [json.loads(line) for line in (tmp_path / "out" / ERRORS_FILE).read_text().splitlines()]
    assert [e["key"] for e in errors] == ["d_broken.mp4", "e_text.avi"]
    rows = {r["key"]: r for r in pq.read_table(shard_files(tmp_path / "out")[0]).to_pylist()}
    assert rows["a.mp4"]["token_shape"] == [3, 4, 6, 1] and rows["a.mp4"]["fps"] == 25.0
    assert rows["b.webm"]["token_shape"] == [3, 8, 8, 1]
    assert (rows["b.webm"]["frames"], rows["b.webm"]["padded_frames"], rows["b.webm"]["fps"]) == (6, 3, 10.0)
    assert rows["c.mkv"]["token_shape"] == [1, 4, 4, 1]  # a one-frame video
    # A row decodes back to its video: the row's info undoes the padding.
    frozen = load_tokenizer(frozen_dir)
    row = rows["b.webm"]
    ids = frozen.vocab.unflatten_ids(torch.tensor(row["ids"], dtype=torch.long), row["token_shape"])
    [video] = frozen.decode_media(ids[None], info=[row])
    assert video.frames.shape == (6, 32, 32, 3) and video.fps == 10.0
    # LLM ids: the layout frames grids of its own size; a video of another size becomes an error
    # record, not the end of the job.
    manifest = tokenize(frozen_dir, folder, tmp_path / "llm", llm_ids=True, num_workers=0, progress=False)
    assert manifest["counts"]["samples"] == 1
    errors = [json.loads(line) for line in (tmp_path / "llm" / ERRORS_FILE).read_text().splitlines()]
    assert [e["key"] for e in errors if e["reason"].startswith("llm ids: ")] == ["a.mp4", "b.webm"]


def test_a_large_lfq_codebook():
    model = tiny_video(latent_dim=16, quantizer={"kind": "lfq", "options": {"codebook_size": 2**16}})
    ids = model.encode(clip(5))
    assert ids.shape == (1, 2, 4, 6, 1) and model.codebook_sizes == [2**16]
    assert ids.max() < 2**16 and len(ids.unique()) > 20
    assert model.decode(ids).shape == (1, 3, 5, 16, 24)


def video_run_config(tmp_path, **sections) -> dict:
    folder = tmp_path / "videos"
    for i in range(3):
        write_clip(folder / f"clip{i}.mp4", moving_frames(12, 20, 24, seed=i), fps=25)
    (folder / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 cut short")
    config = tiny_config(tmp_path / "run", folder, **sections)
    config["model"] = dict(TINY_VIDEO)
    config["data"] = {"source": str(folder), "frames": 5, **config["data"]}
    config["data"].pop("size")
    return config


def test_training_inflates_the_image_tokenizer_and_mixes_stills_and_clips(tmp_path, image_tokenizer):
    image, path = image_tokenizer
    write_images(tmp_path / "stills", 3, size=20)
    config = video_run_config(
        tmp_path,
        data={"stills": str(tmp_path / "stills"), "still_fraction": 0.5},
        train={"max_steps": 3, "batch_size": 2, "checkpoint_every": 3},
        loss={"gan_start_step": 1},
    )
    config["model"].update(attention=True, init_from=str(path))
    trainer = Trainer(load_run_config(write_config(tmp_path / "c.yaml", config), []))
    frames = torch.rand(2, 3, 16, 24) * 2 - 1
    model = trainer.unwrapped.eval()
    assert torch.equal(model.encode(frames[:, :, None])[:, 0], image.encode(frames))  # inflated before step 1
    model.train()
    last = trainer.fit()
    assert trainer.step == 3 and {"loss/l1", "loss/generator", "loss/discriminator"} <= set(last)
    assert isinstance(trainer.dataset, StillsAndClips)
    assert not torch.equal(trainer.unwrapped.eval().encode(frames[:, :, None])[:, 0], image.encode(frames))


def test_two_gloo_processes_keep_identical_weights_and_codebooks(tmp_path):
    config = video_run_config(
        tmp_path, train={"max_steps": 3, "checkpoint_every": 100}, loss={"gan_start_step": 1, "lecam_weight": 0.1}
    )
    config["model"]["quantizer"] = {"kind": "vq", "options": {"codebook_size": 32, "dead_code_threshold": 0.5}}
    rank0, rank1 = train_in_two_processes(write_config(tmp_path / "c.yaml", config), tmp_path)
    assert_identical_ranks(rank0, rank1)
    assert any(name.startswith("disc.") for name in rank0)
    assert bool(rank0["tokenizer.quantizer.initialised"])
    assert not torch.allclose(rank0["tokenizer.quantizer.codebook"], rank0["initial_codebook"])
