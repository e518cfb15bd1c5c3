"""Inputs of any length in bounded memory, and inputs below a model's minimum: prepared in pieces
(audio, video) equal to prepared whole, encoded in pieces equal to encoded whole, decoded in
chunks equal to decoded whole, the pixel cap, and clear errors for what is too short or too large."""

import io
import random

import numpy as np
import pytest
import soundfile as sf
import torch
from PIL import Image
from test_audio_codec import tiny_codec
from test_video import clip, tiny_video
from train_helpers import TINY_IMAGE1D_MODEL, TINY_IMAGE_MODEL
from video_helpers import moving_frames, write_clip

from mmtok.data.audio_io import AudioDecodeError, AudioInputSpec, RecordingLevel, _wav_truncation
from mmtok.data.image_io import DEFAULT_MAX_PIXELS, ImageInputSpec, decode_image
from mmtok.data.video_io import VideoInputSpec
from mmtok.models import build_tokenizer
from mmtok.models.streaming import rechunk


def random_pieces(x: torch.Tensor, sizes: list[int], seed: int = 0) -> list[torch.Tensor]:
    """x cut along axis 2 into pieces of lengths drawn from `sizes`."""
    rng, pieces, start = random.Random(seed), [], 0
    while start < x.shape[2]:
        size = rng.choice(sizes)
        pieces.append(x[:, :, start : start + size])
        start += size
    return pieces


def wav_bytes(samples: np.ndarray, rate: int, subtype: str = "FLOAT") -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, samples, rate, format="WAV", subtype=subtype)
    return buffer.getvalue()


def noise(seconds: float, rate: int, channels: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (0.1 * rng.standard_normal((int(seconds * rate) + 17, channels))).astype(np.float32)


# -- preparing in pieces ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("source_rate", "source_channels", "spec"),
    [(44100, 2, AudioInputSpec(24000, 1)), (16000, 1, AudioInputSpec(24000, 2, loudness_db=None))],
)
def test_audio_prepared_in_pieces_equals_the_whole_recording(source_rate, source_channels, spec):
    # 3 s: the prepared recording spans more than one RecordingLevel block, so the gain is summed in blocks.
    data = wav_bytes(noise(3.0, source_rate, source_channels), source_rate)
    whole = spec.prepare(data)
    assert whole.tensor.shape[-1] > RecordingLevel.BLOCK
    file = io.BytesIO(data)
    file.seek(5)
    assert spec.stream_size(file) == whole.tensor.numel() and file.tell() == 5  # header only, file left as it was
    for chunk in (97, 999, 4096, 10**8):  # 97: blocks of a few resampler strides
        stream = spec.prepare_stream(lambda: io.BytesIO(data), "clip.wav", chunk)
        pieces = list(stream)
        assert max(p.shape[-1] for p in pieces) <= max(chunk // spec.channels, 160)  # about chunk values each
        # The resampled blocks see every sample the whole recording's resampler sees, and the gain is
        # the same RecordingLevel sum; what may differ is the convolution kernel the CPU library picks
        # for a short block (equal bits on one machine, up to one float32 step, 6e-8, on an AMD EPYC).
        difference = (torch.cat(pieces, dim=2) - whole.tensor).abs().max()
        assert difference <= 2e-7, (chunk, float(difference))
        assert stream.info == whole.info[0]
    assert stream.info["source_sample_rate"] == source_rate and stream.info["source_channels"] == source_channels


def test_streamed_audio_refuses_what_prepare_refuses():
    data = wav_bytes(noise(0.5, 16000, 1), 16000, subtype="PCM_16")
    spec = AudioInputSpec(16000)
    cut = io.BytesIO(data[: len(data) // 2])
    cut.seek(3)
    assert "truncated WAV" in _wav_truncation(cut) and cut.tell() == 3  # chunk headers and the size only
    for broken, reason in (
        (data[: len(data) // 2], "truncated WAV"),
        (b"", "empty file"),
        (b"RIFF not audio", "Format not recognised"),
    ):
        with pytest.raises(AudioDecodeError, match=reason):
            spec.prepare(broken)
        stream = spec.prepare_stream(lambda broken=broken: io.BytesIO(broken), "bad.wav", 1000)
        with pytest.raises(AudioDecodeError, match=f"cannot decode audio bad.wav: {reason}"):
            list(stream)
    assert spec.stream_size(io.BytesIO(b"not audio at all")) is None


@pytest.fixture(scope="module")
def video_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("video") / "clip.mp4"
    return write_clip(path, moving_frames(23, 40, 56), fps=25).read_bytes()


@pytest.mark.parametrize(
    "spec",
    [
        VideoInputSpec(short_side=24, multiple_of=8, pad_frames=True),
        VideoInputSpec(fps=12, min_side=48, crop_size=40, multiple_of=4, pad_frames=True),
    ],
)
def test_video_prepared_in_pieces_equals_the_whole_video(video_file, spec):
    whole = spec.prepare(video_file)
    assert whole.info[0]["padded_frames"] > 0  # the padding is emitted at the end of the stream too
    assert spec.stream_size(io.BytesIO(video_file)) == whole.tensor.numel()
    frame_values = 3 * whole.tensor.shape[-2] * whole.tensor.shape[-1]
    for chunk in (1, 3 * frame_values, 10**9):
        stream = spec.prepare_stream(lambda: io.BytesIO(video_file), "clip.mp4", chunk)
        pieces = list(stream)
        assert all(p.shape[2] <= max(1, chunk // frame_values) + whole.info[0]["padded_frames"] for p in pieces)
        assert torch.equal(torch.cat(pieces, dim=2), whole.tensor)
        assert stream.info == whole.info[0]


def test_a_streamed_video_off_the_frame_rule_fails_at_the_end_as_prepare_does(video_file):
    spec = VideoInputSpec(fps=10, multiple_of=4)  # 23 frames at 25 fps -> 10 frames at 10 fps
    with pytest.raises(ValueError) as whole:
        spec.prepare(video_file)
    pieces = []
    with pytest.raises(ValueError) as streamed:
        for piece in spec.prepare_stream(lambda: io.BytesIO(video_file), "clip.mp4", 1):
            pieces.append(piece)
    assert str(streamed.value) == str(whole.value) and "10 frames" in str(whole.value)
    assert len(pieces) == 10  # every frame came out before the count was known
    with pytest.raises(ValueError, match="cannot decode video cut.mp4"):
        list(spec.prepare_stream(lambda: io.BytesIO(video_file[:300]), "cut.mp4", 1))


def test_rechunk_cuts_any_pieces_into_the_lengths_asked_for():
    x = torch.arange(100.0).reshape(1, 1, 100)
    sizes = [7, 3, 3, 3, 3]
    out = list(rechunk(random_pieces(x, [1, 2, 13, 40]), iter(sizes + [10] * 10)))
    assert [p.shape[2] for p in out] == sizes + [10] * 8 + [1]
    assert torch.equal(torch.cat(out, dim=2), x)


# -- encoding in pieces -------------------------------------------------------------------------------------
def test_the_causal_codec_encodes_a_stream_with_the_whole_recordings_ids_in_bounded_memory():
    model = tiny_codec()
    model.config.chunk_seconds = 0.05  # 400 samples at 8 kHz
    x = torch.randn(1, 1, 9000)
    seen = []
    model.encoder.layers[0].register_forward_pre_hook(lambda module, args: seen.append(args[0].shape[-1]))
    for sizes in ([1, 7, 39, 41], [5000, 9000]):
        seen.clear()
        ids = model.encode_stream(random_pieces(x, sizes))
        assert torch.equal(ids, model.encode(x))
        assert max(seen[:-1]) == 400  # the encoder sees one chunk at a time, whatever the pieces
    assert torch.equal(model.encode_stream([x], num_codebooks=2), model.encode(x, num_codebooks=2))
    assert model.streams and not model.encoder.layers[0]._streaming  # the stream's state is gone after it


def test_a_long_batch_is_encoded_in_chunks_with_the_whole_signals_latents():
    model = tiny_codec()
    x = torch.randn(3, 1, 9000)
    whole = model.encoder(x).transpose(1, 2)  # the encoder over the whole batch at once
    model.config.chunk_seconds = 0.05  # 400 samples at 8 kHz
    seen = []
    model.encoder.layers[0].register_forward_pre_hook(lambda module, args: seen.append(args[0].shape[-1]))
    with torch.no_grad():
        chunked = model.encode_latent(x)
    assert max(seen) == 400 and len(seen) == 23  # memory follows the chunk, not the recording
    assert torch.allclose(chunked, whole, atol=1e-5) and chunked.shape == whole.shape
    assert torch.equal(model.encode(x), model.quantizer(whole).ids)


def test_a_non_causal_codec_encodes_a_stream_as_encode_long_does():
    model = tiny_codec(causal=False)
    model.config.chunk_seconds = 0.1
    x = torch.randn(1, 1, 4 * 8000 + 13)
    ids = model.encode_stream(random_pieces(x, [1, 300, 777, 5000]))
    assert torch.equal(ids, model.encode_long(x, chunk_seconds=0.1))
    assert (ids == model.encode(x)).float().mean() > 0.99  # margins of the receptive field; rounding may flip a tie


def test_the_video_tokenizer_encodes_a_stream_with_the_whole_videos_ids():
    model = tiny_video(chunk_latent_frames=2)
    x = torch.cat([clip(29, seed=1), clip(29, seed=2)])
    seen = []
    model.encoder.frames.layers[0].register_forward_pre_hook(lambda module, args: seen.append(args[0].shape[0]))
    for sizes in ([1, 2, 3, 11], [29]):
        seen.clear()
        assert torch.equal(model.encode_stream(random_pieces(x, sizes)), model.encode(x))
        assert seen[0] == 2 * 5 and max(seen) == 2 * 8  # chunks of 1 + 4 frames first, then 8 (two videos)
    with pytest.raises(ValueError, match="28 frames: .*nearest valid counts are 25 and 29"):
        model.encode_stream(random_pieces(x[:, :, :28], [3]))
    with pytest.raises(ValueError, match="differ only along the time axis"):
        model.encode_stream([clip(5), clip(4, h=24)])


def test_a_stream_from_a_file_gets_the_ids_of_the_whole_file(video_file):
    audio = tiny_codec()
    spec = audio.input_spec()
    data = wav_bytes(noise(1.5, 44100, 2), 44100)
    stream = spec.prepare_stream(lambda: io.BytesIO(data), "a.wav", 1000)
    assert torch.equal(audio.encode_stream(stream), audio.encode(spec.prepare(data).tensor))
    video = tiny_video(pad_frames=True)
    spec = video.input_spec()
    stream = spec.prepare_stream(lambda: io.BytesIO(video_file), "clip.mp4", 3 * 40 * 56)
    assert torch.equal(video.encode_stream(stream), video.encode(spec.prepare(video_file).tensor))


def test_a_family_that_does_not_stream_says_so():
    image = build_tokenizer(TINY_IMAGE_MODEL)
    assert not image.streams
    with pytest.raises(NotImplementedError, match="image tokenizer does not encode inputs piece by piece"):
        image.encode_stream([torch.zeros(1, 3, 16, 16)])
    with pytest.raises(NotImplementedError, match="not prepared in pieces"):
        image.input_spec().prepare_stream(lambda: io.BytesIO(b""), "x.png", 100)
    assert image.input_spec().stream_size(io.BytesIO(b"")) is None


# -- decoding in chunks ----------------------------------------------------------------------------------
@pytest.mark.parametrize("causal", [True, False])
def test_long_audio_ids_decode_in_chunks_as_they_decode_whole(causal):
    model = tiny_codec(causal=causal)
    model.config.chunk_seconds = 0.05  # chunks of 10 frames, far fewer than the decoder's context
    ids = model.encode(torch.randn(1, 1, 8000))
    latent = model.quantizer.decode_ids(ids)
    whole = model.decoder(latent.transpose(1, 2))
    chunked = model.decode(ids)
    assert chunked.shape == whole.shape == (1, 1, 8000)
    assert (chunked - whole).abs().max() < 1e-5
    if causal:  # what the left-only margin relies on: a frame's samples depend on frames up to it only
        changed = ids.clone()
        changed[:, 120] = (changed[:, 120] + 1) % model.codebook_sizes[0]
        difference = (model.decode(changed) - chunked).abs()[0, 0]
        assert difference[: 120 * 40].max() == 0 and difference[120 * 40 :].max() > 0


# -- the minimum length -----------------------------------------------------------------------------------
@pytest.mark.parametrize("causal", [True, False])
def test_audio_shorter_than_one_frame_is_refused_alone_and_in_a_batch(causal):
    model = tiny_codec(causal=causal)  # hop 40 at 8 kHz: 5 ms
    click, clip_ = torch.randn(1, 39), torch.randn(1, 8000)
    message = r"audio of 39 samples \(4.9 ms\) is shorter than one frame: this codec needs at least 40 samples \(5.0 ms"
    with pytest.raises(ValueError, match=message):
        model.encode(click[None])
    for batch in ([click], [clip_, click, clip_]):
        with pytest.raises(ValueError, match=message):
            model.encode_many(batch)
    with pytest.raises(ValueError, match=message):
        model.encode_stream(random_pieces(click[None], [5]))
    assert model.encode(torch.randn(1, 1, 40)).shape == (1, 1, 4)  # one frame is enough


def test_video_frames_too_small_for_the_group_norms_are_refused_alone_and_in_a_batch():
    model = tiny_video()  # spatial factor 4; its group norms at the 1x1 grid would hold one value each
    small, fine = clip(1, h=4, w=4)[0], clip(1, h=4, w=8)[0]
    for batch in ([small], [small, small], [fine, small]):
        with pytest.raises(ValueError, match="frames of 4x4 pixels give a 1x1 latent grid"):
            model.encode_many(batch)
    assert model.encode_many([fine])[0].shape == (1, 1, 2, 1)


# -- the pixel cap --------------------------------------------------------------------------------------------
def test_an_extreme_aspect_ratio_is_refused_before_it_is_resized(monkeypatch):
    def no_resizing(*args, **kwargs):
        raise AssertionError("resized before the size was checked")

    monkeypatch.setattr(Image.Image, "resize", no_resizing)
    tall = np.zeros((16, 4096, 3), np.uint8)
    cap = "becomes 32768x128 after resizing: 4194304 pixels, over this tokenizer's cap of 4000000 pixels"
    with pytest.raises(ValueError, match="a frame of 4096x16 pixels .*" + cap):
        VideoInputSpec(short_side=128, max_pixels=4_000_000).prepare(tall[None])
    with pytest.raises(ValueError, match="an image of 4096x16 pixels .*" + cap):
        ImageInputSpec(min_side=128, max_pixels=4_000_000).prepare(tall)
    with pytest.raises(ValueError, match="is not resized: 65536 pixels, over this tokenizer's cap of 1000"):
        ImageInputSpec(max_pixels=1000).prepare(tall)
    default_cap = "32768x128 after resizing: 4194304 pixels, over this tokenizer's cap of 2097152"
    with pytest.raises(ValueError, match=default_cap):
        VideoInputSpec(short_side=128).prepare(tall[None])  # the default cap of a video frame
    full_hd = np.zeros((1, 1080, 1920, 3), np.uint8)
    assert VideoInputSpec(multiple_of=8).prepare(full_hd).tensor.shape == (1, 3, 1, 1080, 1920)


def test_the_pixel_cap_comes_from_the_model_config_and_old_configs_get_the_default():
    for config in (TINY_IMAGE_MODEL, TINY_IMAGE1D_MODEL):  # no max_pixels, as config.json files written before it
        assert "max_pixels" not in config and build_tokenizer(config).input_spec().max_pixels == DEFAULT_MAX_PIXELS
    video = tiny_video(max_pixels=1234)
    assert video.input_spec().max_pixels == 1234 and video.input_spec().to_json()["max_pixels"] == 1234


def test_a_decompression_bomb_is_a_readable_value_error(monkeypatch):
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64)).save(buffer, format="PNG")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # PIL refuses twice this: 64 x 64 is over
    with pytest.raises(ValueError, match="refused as a possible decompression bomb .*4096 pixels.*MAX_IMAGE_PIXELS"):
        decode_image(buffer.getvalue())
