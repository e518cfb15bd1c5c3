"""Hugging Face `datasets` datasets as inputs: one with an image column and one with an audio
column (written with save_to_disk), and a streamed one, through mmtok tokenize and training."""

import io

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import soundfile as sf
import torch
from train_helpers import TINY_AUDIO_MODEL, TINY_IMAGE_MODEL, write_images

from mmtok import load_tokenizer
from mmtok.data import AudioDataset, ImageDataset
from mmtok.data.sources import open_source
from mmtok.models import build_tokenizer
from mmtok.shards import shard_files
from mmtok.tokenize import tokenize

datasets = pytest.importorskip("datasets")


def rows(output_dir) -> list[dict]:
    table = pa.concat_tables([pq.read_table(f) for f in shard_files(output_dir)])
    return sorted(table.to_pylist(), key=lambda r: r["index"])


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """12 PNGs in a folder and the same as a dataset with an image and a label column (splits
    train and test), written with save_to_disk; and the tokenizer."""
    root = tmp_path_factory.mktemp("hfdata")
    paths = write_images(root / "folder", 12, size=24)
    cells = [{"bytes": p.read_bytes(), "path": p.name} for p in paths]
    table = datasets.Dataset.from_dict({"label": list(range(12)), "image": cells})
    table = table.cast_column("image", datasets.Image())
    datasets.DatasetDict({"train": table.select(range(8)), "test": table.select(range(8, 12))}).save_to_disk(
        root / "saved"
    )
    torch.manual_seed(0)
    return root, build_tokenizer(TINY_IMAGE_MODEL).save_pretrained(root / "tok")


def test_image_column_gives_the_folders_ids(images):
    root, tok = images
    tokenize(tok, root / "folder", root / "from-folder", shard_size=5, num_workers=0, progress=False)
    manifest = tokenize(tok, f"datasets:{root / 'saved'}", root / "train", shard_size=5, num_workers=1, progress=False)
    assert manifest["counts"]["samples"] == 8 and manifest["split"] is None
    folder = rows(root / "from-folder")
    train = rows(root / "train")
    assert [r["key"] for r in train] == [f"train/{i}" for i in range(8)]
    assert [r["ids"] for r in train] == [r["ids"] for r in folder[:8]]
    assert train[0]["source"] == f"datasets:{root / 'saved'}[train, image, row 0]"
    test = tokenize(tok, f"datasets:{root / 'saved'}:test", root / "test", num_workers=0, progress=False)
    assert test["counts"]["samples"] == 4
    assert [r["ids"] for r in rows(root / "test")] == [r["ids"] for r in folder[8:]]
    with pytest.raises(ValueError, match="'label' .* holds Value"):
        open_source(f"datasets:{root / 'saved'}", column="label")
    with pytest.raises(ValueError, match="no image column"):
        open_source(f"datasets:{root / 'saved'}", column="caption")
    with pytest.raises(ValueError, match="splits"):
        open_source(f"datasets:{root / 'saved'}", split="validation")


def test_training_reads_a_dataset(images):
    root, _ = images
    local = ImageDataset(root / "folder", size=16, random_crop=False, random_flip=False)
    dataset = ImageDataset(f"datasets:{root / 'saved'}:test", size=16, random_crop=False, random_flip=False)
    assert len(dataset) == 4 and torch.equal(dataset[0], local[8])


def test_streamed_parquet_dataset_in_order_across_workers(images):
    """A dataset streamed from parquet files (no download, no cache): two decoding workers each
    read the stream and skip what the other decodes; rows equal the folder's."""
    root, tok = images
    paths = sorted((root / "folder").glob("*.png"))
    stream_dir = root / "stream"
    stream_dir.mkdir()
    for part in range(3):  # three files, so the stream crosses file boundaries
        chunk = paths[part * 4 : part * 4 + 4]
        pq.write_table(pa.table({"image": [p.read_bytes() for p in chunk]}), stream_dir / f"part-{part}.parquet")
    with pytest.raises(ValueError, match="give a limit"):
        tokenize(tok, f"datasets:{stream_dir}", root / "nolimit", streaming=True, num_workers=0, progress=False)
    manifest = tokenize(
        tok,
        f"datasets:{stream_dir}",
        root / "streamed",
        streaming=True,
        limit=11,
        batch_size=2,
        shard_size=4,
        num_workers=2,
        progress=False,
    )
    assert manifest["counts"]["samples"] == 11
    assert [r["ids"] for r in rows(root / "streamed")] == [r["ids"] for r in rows(root / "from-folder")][:11]
    source = open_source(f"datasets:{stream_dir}", streaming=True, limit=12)
    assert source.read(9) == paths[9].read_bytes() and source.read(2) == paths[2].read_bytes()  # back: restarts


def test_audio_column(tmp_path):
    clips = []
    for i, (samples, rate) in enumerate([(16000, 16000), (8000, 16000), (12000, 24000)]):
        buffer = io.BytesIO()
        sf.write(buffer, (np.sin(np.arange(samples) / (4 + i)) * 0.3).astype(np.float32), rate, format="WAV")
        clips.append({"bytes": buffer.getvalue(), "path": f"clip{i}.wav"})
    table = datasets.Dataset.from_dict({"audio": clips, "text": ["a", "b", "c"]})
    table.cast_column("audio", datasets.Audio()).save_to_disk(tmp_path / "speech")
    torch.manual_seed(0)
    tok = build_tokenizer(TINY_AUDIO_MODEL).save_pretrained(tmp_path / "tok")
    manifest = tokenize(tok, f"datasets:{tmp_path / 'speech'}", tmp_path / "out", num_workers=0, progress=False)
    assert manifest["counts"] == {
        "inputs": 3,
        "samples": 3,
        "tokens": (2000 + 1000 + 1000) * 2,
        "errors": 0,
        "skipped": 0,
    }
    frozen = load_tokenizer(tok)
    for row, clip in zip(rows(tmp_path / "out"), clips):
        ids = frozen.vocab.unflatten_ids(torch.tensor(row["ids"]), row["token_shape"])
        assert torch.equal(ids, frozen.encode(clip["bytes"])[0])
    training = AudioDataset(f"datasets:{tmp_path / 'speech'}", spec=frozen.input_spec, segment_seconds=0.25)
    assert len(training) == 3 and training[1].shape == (1, 4000)
