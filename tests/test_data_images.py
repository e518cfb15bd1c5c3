import io
import math
import re
import tarfile

import numpy as np
import pytest
import torch
from PIL import Image

from mmtok.data import SAMPLE_IMAGE_NAMES, ImageDataset, sample_images, write_sample_images
from mmtok.data.images import rotate_hue, to_gray

SIZE = 32


def _rgb(h, w, seed):
    return np.random.default_rng(seed).integers(0, 256, size=(h, w, 3), dtype=np.uint8)


def _encode(img: Image.Image, fmt: str) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue()


@pytest.fixture
def good_images():
    """name -> encoded bytes; sorted names are the dataset order."""
    gray = Image.fromarray(_rgb(40, 48, 1)[..., 0], mode="L")
    return {
        "a_rgb.png": _encode(Image.fromarray(_rgb(40, 50, 0)), "PNG"),
        "b_gray.jpg": _encode(gray, "JPEG"),
        "c_small.png": _encode(Image.fromarray(_rgb(20, 30, 2)), "PNG"),  # needs upscaling
        "d_rgb.webp": _encode(Image.fromarray(_rgb(36, 36, 3)), "WEBP"),
    }


@pytest.fixture
def mixed_folder(tmp_path, good_images):
    """Good images plus a corrupt jpg, a truncated png (in a subfolder) and a text file."""
    for name, data in good_images.items():
        (tmp_path / name).write_bytes(data)
    (tmp_path / "b_zcorrupt.jpg").write_bytes(b"definitely not a jpeg" * 10)
    (tmp_path / "sub").mkdir()
    truncated = good_images["a_rgb.png"]
    (tmp_path / "sub" / "truncated.png").write_bytes(truncated[: len(truncated) // 2])
    (tmp_path / "notes.txt").write_text("not an image")
    return tmp_path


def _all_items(ds):
    return [ds[i] for i in range(len(ds))]


def test_folder_skips_and_counts_bad_files(mixed_folder):
    ds = ImageDataset(mixed_folder, size=SIZE)
    assert len(ds) == 6  # 4 good + 2 bad image files; notes.txt never enters the index

    items = _all_items(ds)
    for item in items:
        assert item.shape == (3, SIZE, SIZE)
        assert item.dtype == torch.float32
        assert item.min() >= -1.0 and item.max() <= 1.0
    assert ds.num_failed == 2
    assert sorted(p.rsplit("/", 1)[-1] for p in ds.failed_sources) == ["b_zcorrupt.jpg", "truncated.png"]
    assert not any("notes.txt" in p for p in ds.failed_sources)

    # Meeting the bad files again (next epoch) does not count them twice.
    _all_items(ds)
    assert ds.num_failed == 2


def test_bad_item_returns_next_good_item(mixed_folder):
    ds = ImageDataset(mixed_folder, size=SIZE, random_crop=False, random_flip=False)
    names = [p.name for p in ds._reader.paths]
    bad = names.index("b_zcorrupt.jpg")
    assert torch.equal(ds[bad], ds[bad + 1])


def test_validate_drops_failures(mixed_folder):
    ds = ImageDataset(mixed_folder, size=SIZE)
    failures = ds.validate()
    assert sorted(p.rsplit("/", 1)[-1] for p in failures) == ["b_zcorrupt.jpg", "truncated.png"]
    assert len(ds) == 4
    assert ds.num_failed == 2
    _all_items(ds)
    assert ds.num_failed == 2


def test_grayscale_becomes_rgb(mixed_folder):
    ds = ImageDataset(mixed_folder, size=SIZE, random_crop=False, random_flip=False)
    names = [p.name for p in ds._reader.paths]
    item = ds[names.index("b_gray.jpg")]
    assert torch.equal(item[0], item[1]) and torch.equal(item[1], item[2])


def test_transparent_pixels_become_white(tmp_path):
    rgba = np.zeros((SIZE, SIZE, 4), dtype=np.uint8)  # fully transparent black
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "clear.png")
    item = ImageDataset(tmp_path, size=SIZE, random_flip=False)[0]
    assert torch.all(item == 1.0)


def test_16bit_grayscale_is_rescaled(tmp_path):
    pixels = np.full((SIZE, SIZE), 32768, dtype=np.uint16)
    Image.fromarray(pixels).save(tmp_path / "deep.png")
    item = ImageDataset(tmp_path, size=SIZE, random_flip=False)[0]
    assert torch.allclose(item, torch.full_like(item, 128 / 255 * 2 - 1), atol=1e-6)


def test_small_image_is_upscaled_then_cropped(tmp_path):
    Image.fromarray(_rgb(10, 20, 0)).save(tmp_path / "tiny.png")
    assert ImageDataset(tmp_path, size=SIZE)[0].shape == (3, SIZE, SIZE)


def test_center_crop_without_flip_is_deterministic_and_flip_mirrors(tmp_path):
    Image.fromarray(_rgb(40, 50, 0)).save(tmp_path / "x.png")
    fixed = ImageDataset(tmp_path, size=SIZE, random_crop=False, random_flip=False)[0]
    flipping = ImageDataset(tmp_path, size=SIZE, random_crop=False, random_flip=True)
    torch.manual_seed(0)
    draws = [flipping[0] for _ in range(12)]
    assert all(torch.equal(d, fixed) or torch.equal(d, fixed.flip(-1)) for d in draws)
    assert any(torch.equal(d, fixed.flip(-1)) for d in draws)


def test_hue_rotation_keeps_gray_levels_and_turns_colours():
    torch.manual_seed(0)
    x = torch.rand(3, 8, 8) * 1.2 - 0.6  # inside the cube after any rotation: nothing clips
    chroma = x - x.mean(dim=0)
    for angle in (0.3, 2.0, 4.0):
        y = rotate_hue(x, angle)
        assert torch.allclose(y.mean(dim=0), x.mean(dim=0), atol=1e-6)  # gray level kept
        assert torch.allclose((y - y.mean(dim=0)).norm(dim=0), chroma.norm(dim=0), atol=1e-5)  # saturation kept
        assert not torch.allclose(y, x, atol=1e-2)
    assert torch.allclose(rotate_hue(x, 2 * math.pi / 3), x[[2, 0, 1]], atol=1e-6)  # a third of a turn: R->G->B
    gray = torch.full((3, 4, 4), 0.25)
    assert torch.allclose(rotate_hue(gray, 1.0), gray)


def test_dataset_rotates_hues_with_the_given_probability(tmp_path):
    Image.fromarray((_rgb(40, 50, 0) // 3 + 85).astype(np.uint8)).save(tmp_path / "x.png")  # no clipping
    fixed = ImageDataset(tmp_path, size=SIZE, random_crop=False, random_flip=False)[0]
    always = ImageDataset(tmp_path, size=SIZE, random_crop=False, random_flip=False, hue_rotation=1.0)
    torch.manual_seed(0)
    draws = [always[0] for _ in range(4)]
    assert all(not torch.allclose(d, fixed, atol=1e-3) for d in draws)
    assert all(torch.allclose(d.mean(dim=0), fixed.mean(dim=0), atol=1e-5) for d in draws)
    with pytest.raises(ValueError, match="hue_rotation"):
        ImageDataset(tmp_path, size=SIZE, hue_rotation=1.5)


def test_zoomed_out_crops_show_more_of_the_photo(tmp_path):
    # Left half black, right half white: a 32 px crop of the 256 px photo at its own size shows both
    # only near the middle column; zoomed out to 0.125 (32 px) every crop is the whole photo.
    pixels = np.zeros((256, 256, 3), np.uint8)
    pixels[:, 128:] = 255
    Image.fromarray(pixels).save(tmp_path / "x.png")
    torch.manual_seed(0)
    native = ImageDataset(tmp_path, size=SIZE, random_flip=False)
    zoomed = ImageDataset(tmp_path, size=SIZE, random_flip=False, min_scale=0.125)

    def both_halves(crop):
        return bool(crop.min() < -0.9 and crop.max() > 0.9)

    assert sum(both_halves(native[0]) for _ in range(40)) < 10
    assert sum(both_halves(zoomed[0]) for _ in range(40)) > 15  # log-uniform: a fair share near 0.125
    assert all(zoomed[0].shape == (3, SIZE, SIZE) for _ in range(10))
    with pytest.raises(ValueError, match="min_scale"):
        ImageDataset(tmp_path, size=SIZE, min_scale=0.0)


def test_grayscale_crops_are_the_photo_in_gray(tmp_path):
    (tmp_path / "colour").mkdir()
    Image.fromarray(_rgb(40, 50, 0)).save(tmp_path / "colour" / "x.png")
    colour = ImageDataset(tmp_path / "colour", size=SIZE, random_crop=False, random_flip=False)[0]
    gray = ImageDataset(tmp_path / "colour", size=SIZE, random_crop=False, random_flip=False, grayscale=1.0)[0]
    assert torch.equal(gray[0], gray[1]) and torch.equal(gray[1], gray[2])
    assert torch.allclose(gray, to_gray(colour)) and not torch.allclose(gray, colour, atol=0.1)
    # The luma weights are Pillow's "L": the gray a gray file of the photo decodes to (± rounding).
    (tmp_path / "gray").mkdir()
    Image.open(tmp_path / "colour" / "x.png").convert("L").save(tmp_path / "gray" / "x.png")
    from_file = ImageDataset(tmp_path / "gray", size=SIZE, random_crop=False, random_flip=False)[0]
    assert (gray - from_file).abs().max() <= 1.01 / 127.5
    with pytest.raises(ValueError, match="grayscale"):
        ImageDataset(tmp_path / "colour", size=SIZE, grayscale=2.0)


def test_random_crops_differ(tmp_path):
    Image.fromarray(_rgb(64, 64, 0)).save(tmp_path / "x.png")
    ds = ImageDataset(tmp_path, size=SIZE, random_flip=False)
    torch.manual_seed(0)
    assert len({ds[0].sum().item() for _ in range(8)}) > 1


def test_tar_and_parquet_match_folder(tmp_path, good_images):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")

    folder = tmp_path / "folder"
    folder.mkdir()
    for name, data in good_images.items():
        (folder / name).write_bytes(data)

    # webdataset-style shard: image members next to metadata members, which are ignored
    shard = tmp_path / "shard-000.tar"
    with tarfile.open(shard, "w") as tar:
        for name, data in reversed(good_images.items()):
            for member, payload in ((name, data), (name.rsplit(".", 1)[0] + ".json", b"{}")):
                info = tarfile.TarInfo(member)
                info.size = len(payload)
                tar.addfile(info, io.BytesIO(payload))

    names = sorted(good_images)
    blobs = [good_images[n] for n in names]
    plain = tmp_path / "plain.parquet"
    pq.write_table(pa.table({"image": blobs, "caption": names}), plain)
    hf_style = tmp_path / "hf.parquet"
    pq.write_table(pa.table({"image": [{"bytes": b, "path": n} for b, n in zip(blobs, names)]}), hf_style)
    custom = tmp_path / "custom.parquet"
    pq.write_table(pa.table({"pixels_encoded": blobs}), custom, row_group_size=2)

    def items(source, **kw):
        return _all_items(ImageDataset(source, size=SIZE, random_crop=False, random_flip=False, **kw))

    expected = items(folder)
    assert len(expected) == len(good_images)
    for other in (items(shard), items(plain), items(hf_style), items(custom, column="pixels_encoded")):
        assert len(other) == len(expected)
        assert all(torch.equal(a, b) for a, b in zip(expected, other))


def test_parquet_bad_row_is_skipped(tmp_path, good_images):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    path = tmp_path / "rows.parquet"
    pq.write_table(pa.table({"jpg": [b"garbage", good_images["b_gray.jpg"], None]}), path)
    ds = ImageDataset(path, size=SIZE)
    assert ds.validate() and len(ds) == 1
    assert ds.num_failed == 2


def test_parquet_without_image_column_is_rejected(tmp_path):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    path = tmp_path / "meta.parquet"
    pq.write_table(pa.table({"caption": ["a"]}), path)
    with pytest.raises(ValueError, match="column"):
        ImageDataset(path, size=SIZE)


def test_empty_sources_raise(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="empty"):
        ImageDataset(empty, size=SIZE)

    only_text = tmp_path / "only_text"
    only_text.mkdir()
    (only_text / "readme.txt").write_text("hi")
    with pytest.raises(ValueError, match="only_text"):
        ImageDataset(only_text, size=SIZE)

    empty_tar = tmp_path / "empty.tar"
    tarfile.open(empty_tar, "w").close()
    with pytest.raises(ValueError, match="empty.tar"):
        ImageDataset(empty_tar, size=SIZE)

    with pytest.raises(FileNotFoundError):
        ImageDataset(tmp_path / "missing", size=SIZE)


def test_all_corrupt_source_raises(tmp_path):
    (tmp_path / "bad1.png").write_bytes(b"nope")
    (tmp_path / "bad2.jpg").write_bytes(b"nope")
    ds = ImageDataset(tmp_path, size=SIZE)
    with pytest.raises(ValueError, match=re.escape(str(tmp_path))):
        ds[0]
    with pytest.raises(ValueError, match="no decodable image in"):
        ds.validate()


def test_index_out_of_range(mixed_folder):
    ds = ImageDataset(mixed_folder, size=SIZE)
    with pytest.raises(IndexError):
        ds[len(ds)]


def test_sample_images_and_split():
    images = sample_images()
    assert [name for name, _ in images] == list(SAMPLE_IMAGE_NAMES)
    for name, pixels in images:
        assert pixels.dtype == np.uint8 and pixels.ndim == 3 and pixels.shape[2] == 3, name

    train, held = sample_images(held_out=3, seed=0)
    again_train, again_held = sample_images(held_out=3, seed=0)
    assert [n for n, _ in held] == [n for n, _ in again_held]
    assert len(held) == 3 and len(train) == len(images) - 3
    assert sorted(n for n, _ in train + held) == sorted(SAMPLE_IMAGE_NAMES)
    other_seeds = {tuple(n for n, _ in sample_images(held_out=3, seed=s)[1]) for s in range(1, 6)}
    assert len(other_seeds | {tuple(n for n, _ in held)}) > 1

    with pytest.raises(ValueError):
        sample_images(held_out=len(images))


def test_write_sample_images_feed_the_folder_dataset(tmp_path):
    paths = write_sample_images(tmp_path, names=["camera", "coins"])
    assert [p.name for p in paths] == ["camera.png", "coins.png"]
    ds = ImageDataset(tmp_path, size=64, random_crop=False, random_flip=False)
    camera = ds[0]
    assert camera.shape == (3, 64, 64)
    assert torch.equal(camera[0], camera[2])  # grayscale photo stored as RGB
    assert ds.num_failed == 0
    with pytest.raises(ValueError, match="unknown"):
        write_sample_images(tmp_path, names=["lena"])
