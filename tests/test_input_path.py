"""One input path per modality: the training datasets, FrozenTokenizer and `mmtok tokenize` prepare
the same file into the same tensor, and every normalisation is recorded and undone where it can be."""

import io

import numpy as np
import pyarrow.parquet as pq
import pytest
import soundfile as sf
import torch
from PIL import Image
from train_helpers import TINY_AUDIO_MODEL, TINY_IMAGE_MODEL

from mmtok import load_tokenizer
from mmtok.data import AudioDataset, ImageDataset
from mmtok.data.image_io import centre_window
from mmtok.data.sources import open_source
from mmtok.models import build_tokenizer
from mmtok.shards import shard_files
from mmtok.tokenize import _PreparedItems, tokenize

CROP = 16
TINY_IMAGE = {**TINY_IMAGE_MODEL, "image_size": CROP}


def gradient(h, w, channels=3, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    planes = [(yy * rng.uniform(1, 5) + xx * rng.uniform(1, 5)) % 256 for _ in range(channels)]
    return np.stack(planes, -1).astype(np.uint8)


def encoded(image: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **({"quality": 95} if fmt == "JPEG" else {}))
    return buffer.getvalue()


def image_files() -> dict[str, tuple[bytes, np.ndarray]]:
    """name -> (file bytes, the 8-bit RGB pixels any reader must see)."""
    deep = (gradient(CROP, CROP, 1)[..., 0].astype(np.uint16) * 257 + 128).astype(np.uint16)  # 16-bit gray
    rgba = np.concatenate([gradient(CROP, CROP), np.zeros((CROP, CROP, 1), np.uint8)], -1)
    rgba[: CROP // 2, :, 3] = 255  # top half opaque, bottom half fully transparent
    palette = Image.fromarray(gradient(CROP, CROP)).quantize(8)
    palette.info["transparency"] = 0
    cmyk = Image.fromarray(gradient(CROP, CROP, 4), mode="CMYK")
    gray = Image.fromarray(gradient(CROP, CROP, 1)[..., 0], mode="L")
    small = Image.fromarray(gradient(6, 9))  # below the training crop: upscaled to 16 px first
    files = {
        "a_deep16.png": encoded(Image.fromarray(deep), "PNG"),
        "b_rgba.png": encoded(Image.fromarray(rgba, mode="RGBA"), "PNG"),
        "c_palette.png": encoded(palette, "PNG"),
        "d_cmyk.jpg": encoded(cmyk, "JPEG"),
        "e_gray.jpg": encoded(gray, "JPEG"),
        "f_small.png": encoded(small, "PNG"),
    }
    pixels = {name: np.asarray(Image.open(io.BytesIO(data)).convert("RGB")) for name, data in files.items()}
    pixels["a_deep16.png"] = np.repeat((deep >> 8).astype(np.uint8)[..., None], 3, -1)  # rescaled, not clipped
    opaque = np.asarray(Image.open(io.BytesIO(files["b_rgba.png"])).convert("RGB")).copy()
    opaque[CROP // 2 :] = 255  # transparent pixels shown on white
    pixels["b_rgba.png"] = opaque
    rgba = np.asarray(Image.open(io.BytesIO(files["c_palette.png"])).convert("RGBA"))
    assert 0 < (rgba[..., 3] == 0).sum() < CROP * CROP  # some pixels use the transparent palette entry
    pixels["c_palette.png"] = np.where(rgba[..., 3:] == 0, 255, rgba[..., :3]).astype(np.uint8)
    return {name: (data, pixels[name]) for name, data in files.items()}


@pytest.fixture(scope="module")
def image_setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("images")
    files = image_files()
    for name, (data, _) in files.items():
        (root / "in" / name).parent.mkdir(exist_ok=True)
        (root / "in" / name).write_bytes(data)
    torch.manual_seed(0)
    return root, files, load_tokenizer(build_tokenizer(TINY_IMAGE).save_pretrained(root / "tok"))


def test_every_image_format_reaches_training_and_tokenize_as_the_same_tensor(image_setup):
    root, files, frozen = image_setup
    dataset = ImageDataset(root / "in", size=CROP, spec=frozen.input_spec, random_crop=False, random_flip=False)
    workers = _PreparedItems(open_source(root / "in"), frozen.input_spec)  # what `mmtok tokenize` runs
    names = sorted(files)
    for index, name in enumerate(names):
        via_tokenize = workers[index]
        assert via_tokenize.error is None, via_tokenize.error
        x = via_tokenize.tensor
        assert torch.equal(x[None], frozen.media_to_tensor(str(root / "in" / name)))
        top, left, h, w = centre_window(*x.shape[-2:], CROP, 1)
        assert torch.equal(dataset[index], x[:, top : top + h, left : left + w]), name
        if name != "f_small.png":
            expected = torch.from_numpy(files[name][1].copy()).permute(2, 0, 1).float() / 127.5 - 1
            assert torch.equal(x, expected), name
    small = workers[names.index("f_small.png")]
    assert tuple(small.tensor.shape) == (3, 16, 24)  # 6x9 upscaled so the shorter side is 16
    assert (small.info["source_height"], small.info["source_width"]) == (6, 9)


def test_tokenize_rows_hold_the_ids_of_the_training_tensors(image_setup, tmp_path):
    root, files, frozen = image_setup
    tokenize(frozen.path, root / "in", tmp_path / "out", batch_size=4, num_workers=0, progress=False)
    rows = pq.read_table(shard_files(tmp_path / "out")[0]).to_pylist()
    assert [r["key"] for r in rows] == sorted(files)
    dataset = ImageDataset(root / "in", size=CROP, spec=frozen.input_spec, random_crop=False, random_flip=False)
    for index, row in enumerate(rows[:-1]):  # the square ones: the training crop is the whole image
        ids = frozen.encode_tensor(dataset[index][None])[0]
        assert torch.equal(frozen.vocab.unflatten_ids(torch.tensor(row["ids"]), row["token_shape"]), ids)


def level_db(x) -> float:
    return 20 * np.log10(np.sqrt(np.mean(np.asarray(x, dtype=np.float64) ** 2)))


@pytest.fixture(scope="module")
def audio_setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("audio")
    (root / "in").mkdir()
    t = np.arange(int(0.5 * 44100)) / 44100
    stereo = np.stack([0.3 * np.sin(2 * np.pi * 330 * t), 0.2 * np.sin(2 * np.pi * 550 * t)], 1)
    sf.write(root / "in" / "a_stereo.flac", stereo.astype(np.float32), 44100)
    quiet = 0.01 * np.sin(2 * np.pi * 440 * np.arange(8000) / 16000)  # -43 dBFS
    sf.write(root / "in" / "b_quiet.wav", quiet.astype(np.float32), 16000, subtype="FLOAT")
    torch.manual_seed(0)
    return root, quiet, load_tokenizer(build_tokenizer(TINY_AUDIO_MODEL).save_pretrained(root / "tok"))


def test_audio_reaches_training_and_tokenize_as_the_same_tensor(audio_setup):
    root, _, frozen = audio_setup
    spec = frozen.input_spec
    dataset = AudioDataset(root / "in", spec=spec, segment_seconds=1.0, random_segment=False)
    workers = _PreparedItems(open_source(root / "in", modality="audio"), spec)
    for index, name in enumerate(["a_stereo.flac", "b_quiet.wav"]):
        x = workers[index].tensor
        assert x.shape[0] == 1 and x.shape[-1] == 8000  # mono, 0.5 s at 16 kHz
        assert torch.equal(x[None], frozen.media_to_tensor(str(root / "in" / name)))
        assert torch.equal(dataset[index][:, :8000], x) and not dataset[index][:, 8000:].any()
        assert level_db(x) == pytest.approx(-20.0, abs=0.05)


def test_a_quiet_recording_gets_its_level_back(audio_setup, tmp_path):
    root, quiet, frozen = audio_setup
    encoded_media = frozen.encode_media(str(root / "in" / "b_quiet.wav"))
    [info] = encoded_media.info
    assert info["gain_db"] == pytest.approx(-20.0 - level_db(quiet), abs=0.01)
    normalised = frozen.decode(encoded_media.ids).numpy()
    restored = frozen.decode_media(encoded_media)
    assert level_db(restored) == pytest.approx(level_db(normalised) - info["gain_db"], abs=0.01)
    # Whatever the codec returns is scaled back by the recorded gain: a codec that reproduced its
    # (normalised) input would give the recording back at its own level.
    prepared = frozen.prepare(str(root / "in" / "b_quiet.wav"))
    assert level_db(frozen.input_spec.to_media(prepared.tensor, prepared.info)) == pytest.approx(
        level_db(quiet), abs=0.5
    )
    # The gain travels with the ids into the shard row.
    tokenize(frozen.path, root / "in", tmp_path / "out", batch_size=2, num_workers=0, progress=False)
    rows = {r["key"]: r for r in pq.read_table(shard_files(tmp_path / "out")[0]).to_pylist()}
    assert rows["b_quiet.wav"]["gain_db"] == pytest.approx(info["gain_db"])
    assert rows["a_stereo.flac"]["source_channels"] == 2 and rows["a_stereo.flac"]["source_sample_rate"] == 44100
