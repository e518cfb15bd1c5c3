"""mmtok pack: shards + text -> Megatron indexed dataset, parquet rows and the extended tokenizer;
every media span read back decodes to the shards' ids, under both document policies."""

import json

import numpy as np
import pyarrow.parquet as pq
import pytest
import soundfile as sf
import torch
from audio_helpers import SR, speech_like
from hypothesis import given, settings
from hypothesis import strategies as st
from train_helpers import TINY_AUDIO_MODEL, TINY_IMAGE_MODEL, write_images

from mmtok.cli import main
from mmtok.llm_vocab import JointVocabulary
from mmtok.megatron import IndexedDatasetReader
from mmtok.models import build_tokenizer
from mmtok.pack import PackSettings, run_pack
from mmtok.pack_text import open_text
from mmtok.packing import Packer
from mmtok.shards import shard_files
from mmtok.tokenize import tokenize
from mmtok.vocab import VocabLayout

pytest.importorskip("transformers")


def _tokenized(tmp, name, model, media_dir, **options):
    torch.manual_seed(0)
    tok = build_tokenizer(model).save_pretrained(tmp / f"tok_{name}")
    out = tmp / f"shards_{name}"
    tokenize(tok, media_dir, out, batch_size=4, num_workers=0, shard_size=5, progress=False, **options)
    return out


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Image shards (flat ids, 3 shards) and audio shards (framed --llm-ids, clips of several
    lengths), a caption table for both and a saved BPE text tokenizer."""
    from mmtok.llm_client import build_text_tokenizer

    tmp = tmp_path_factory.mktemp("pack")
    write_images(tmp / "images", 12, size=16)
    audio = tmp / "audio"
    audio.mkdir()
    for i, seconds in enumerate([0.3, 0.5, 0.8, 0.4]):
        sf.write(audio / f"clip_{i}.wav", speech_like(seconds, SR, seed=i), SR)
    images = _tokenized(tmp, "image", TINY_IMAGE_MODEL, tmp / "images")
    sounds = _tokenized(tmp, "audio", TINY_AUDIO_MODEL, audio, llm_ids=True)
    texts = {f"img_{i:03d}.png": f"picture number {i}" for i in range(12)}
    texts.update({f"clip_{i}.wav": f"a clip said {i} times" for i in range(4)})
    table = tmp / "texts.jsonl"
    table.write_text("".join(json.dumps({"key": k, "text": t}) + "\n" for k, t in texts.items()))
    text_tokenizer = tmp / "text_tokenizer"
    build_text_tokenizer().save_pretrained(text_tokenizer)
    return {"images": images, "audio": sounds, "table": table, "texts": texts, "text_tokenizer": text_tokenizer}


def shard_rows(folder) -> dict[str, dict]:
    rows = {}
    for path in shard_files(folder):
        for row in pq.read_table(path).to_pylist():
            rows[row["key"]] = row
    return rows


def media_ids(folder, row) -> torch.Tensor:
    """A shard row's ids as (*token_shape, codebooks), whatever form the shard stores."""
    manifest = json.loads((folder / "manifest.json").read_text())
    layout = VocabLayout.from_json(manifest["vocab"])
    flat = torch.tensor(row["ids"])
    if manifest["llm_ids"]:
        return layout.media_segments(flat)[0]
    return layout.unflatten_ids(flat, row["token_shape"])


def check_documents(out, corpus, documents: list[np.ndarray]):
    """Each document: its caption's text ids, one media segment equal to its shard row's ids, eod."""
    record = json.loads((out / "pack.json").read_text())
    vocab = JointVocabulary.from_json(record["vocab"])
    provenance = pq.read_table(out / "documents.parquet").to_pylist()
    assert len(documents) == len(provenance) == record["counts"]["documents"] == 16
    from transformers import AutoTokenizer

    text_tokenizer = AutoTokenizer.from_pretrained(out / "tokenizer")
    inputs = [corpus["images"], corpus["audio"]]
    rows = [shard_rows(folder) for folder in inputs]
    for document, where in zip(documents, provenance):
        assert document[-1] == vocab.eod_id
        text, (modality, ids) = vocab.split(document[:-1])
        folder = inputs[where["input"]]
        assert modality == ("image" if where["input"] == 0 else "audio")
        assert torch.equal(ids, media_ids(folder, rows[where["input"]][where["key"]]))
        assert text_tokenizer.decode(text) == corpus["texts"][where["key"]]
        assert len(document) == where["tokens"]


def packed_stream(out) -> tuple[list[np.ndarray], list[dict]]:
    """The parquet rows through `datasets`, as a trainer reads them."""
    import datasets

    files = sorted(str(p) for p in (out / "parquet").glob("part-*.parquet"))
    rows = list(datasets.load_dataset("parquet", data_files=files, split="train"))
    return [np.asarray(r["input_ids"])[np.asarray(r["attention_mask"], bool)] for r in rows], rows


def split_at_eod(stream: np.ndarray, eod: int) -> list[np.ndarray]:
    ends = np.flatnonzero(stream == eod) + 1
    return [piece for piece in np.split(stream, ends) if len(piece)]


def test_round_trip_megatron_and_parquet(corpus, tmp_path):
    out = tmp_path / "packed"
    text = open_text(str(corpus["table"]))
    settings_ = PackSettings(seq_len=64)
    record = run_pack(
        [corpus["images"], corpus["audio"]], out, settings_, text_source=text, text_tokenizer=corpus["text_tokenizer"]
    )
    vocab = JointVocabulary.from_json(record["vocab"])
    assert [layout.modality for layout in vocab.layouts] == ["image", "audio"]
    assert vocab.layouts[0].base_offset == vocab.text_size  # media ids start right after the text vocabulary

    reader = IndexedDatasetReader(out / "megatron" / "documents")
    assert reader.dtype == np.uint16 and len(reader) == 16
    megatron_documents = [np.asarray(reader[i]) for i in range(len(reader))]
    check_documents(out, corpus, megatron_documents)
    try:  # megatron-core's own reader, where it installs (the dev extras)
        from megatron.core.datasets.indexed_dataset import IndexedDataset
    except ImportError:
        pass
    else:
        theirs = IndexedDataset(str(out / "megatron" / "documents"))
        assert all(np.array_equal(theirs[i], d) for i, d in enumerate(megatron_documents))
        assert theirs.document_indices.tolist() == list(range(17))

    real, rows = packed_stream(out)
    assert all(len(r["input_ids"]) == 64 for r in rows)
    stream = np.concatenate(real)
    assert np.array_equal(stream, np.concatenate(megatron_documents))  # the same documents, the same order
    check_documents(out, corpus, split_at_eod(stream, vocab.eod_id))
    for row in rows:  # positions restart at every document piece the row records
        starts = np.cumsum([0, *row["document_lengths"][:-1]])
        assert all(row["position_ids"][s] == 0 for s in starts)
        assert sum(row["document_lengths"]) == sum(row["attention_mask"])
    assert record["counts"]["tokens"] == len(stream)


def test_whole_documents_never_cross_rows(corpus, tmp_path):
    out = tmp_path / "whole"
    text = open_text(str(corpus["table"]))
    record = run_pack(
        [corpus["images"], corpus["audio"]],
        out,
        PackSettings(seq_len=4096, documents="whole", formats=("parquet",)),  # longer than any document
        text_source=text,
        text_tokenizer=corpus["text_tokenizer"],
    )
    eod = record["vocab"]["eod_id"]
    real, rows = packed_stream(out)
    documents = []
    for ids, row in zip(real, rows):
        pieces = split_at_eod(ids, eod)
        assert [len(p) for p in pieces] == row["document_lengths"]
        assert all(p[-1] == eod for p in pieces)  # every piece is a whole document
        documents += pieces
    assert record["counts"]["documents_cut"] == 0 and record["counts"]["padding_tokens"] > 0
    assert not (out / "megatron").exists()
    check_documents(out, corpus, documents)


def test_shuffle_is_a_seeded_permutation(corpus, tmp_path):
    def pack(name, seed):
        out = tmp_path / name
        run_pack(
            [corpus["images"], corpus["audio"]],
            out,
            PackSettings(seq_len=64, shuffle=True, seed=seed, shuffle_buffer=4),
            text_source=open_text(str(corpus["table"])),
            text_tokenizer=corpus["text_tokenizer"],
        )
        return out, pq.read_table(out / "documents.parquet").column("key").to_pylist()

    first, keys = pack("a", 1)
    again, keys_again = pack("b", 1)
    _, other = pack("c", 2)
    assert keys == keys_again and keys != other
    assert sorted(keys) == sorted(other) == sorted(corpus["texts"])
    for suffix in (".bin", ".idx"):
        assert (first / "megatron" / f"documents{suffix}").read_bytes() == (
            again / "megatron" / f"documents{suffix}"
        ).read_bytes()
    reader = IndexedDatasetReader(first / "megatron" / "documents")
    check_documents(first, corpus, [np.asarray(reader[i]) for i in range(len(reader))])


def test_extended_tokenizer_is_the_vocabulary(corpus, tmp_path):
    from transformers import AutoTokenizer

    out = tmp_path / "vocab"
    record = run_pack([corpus["images"]], out, PackSettings(seq_len=32), text_source=None)
    vocab = JointVocabulary.from_json(record["vocab"])
    loaded = AutoTokenizer.from_pretrained(out / "tokenizer")
    assert len(loaded) == vocab.size == vocab.layouts[0].end_offset
    assert loaded.convert_tokens_to_ids("<|image_start|>") == vocab.layouts[0].special_tokens["<|image_start|>"]
    assert loaded.eos_token_id == vocab.eod_id == 0  # the bare text side: only the end-of-document token
    reader = IndexedDatasetReader(out / "megatron" / "documents")
    image = vocab.layouts[0]
    assert (
        reader[0][0] == image.special_tokens["<|image_start|>"]
        and reader[0][-2] == image.special_tokens["<|image_end|>"]
    )


def test_wide_vocabulary_is_int32(tmp_path):
    model = {**TINY_IMAGE_MODEL, "latent_dim": 6, "quantizer": {"kind": "fsq", "options": {"levels": [8] * 6}}}
    write_images(tmp_path / "images", 3, size=16)
    shards = _tokenized(tmp_path, "wide", model, tmp_path / "images")
    record = run_pack([shards], tmp_path / "out", PackSettings(seq_len=32))
    assert record["ids_dtype"] == "int32" and record["vocab"]["size"] > 2**16
    reader = IndexedDatasetReader(tmp_path / "out" / "megatron" / "documents")
    assert reader.dtype == np.int32
    vocab = JointVocabulary.from_json(record["vocab"])
    rows = shard_rows(shards)
    for i, where in enumerate(pq.read_table(tmp_path / "out" / "documents.parquet").to_pylist()):
        [(_, ids)] = vocab.split(np.asarray(reader[i])[:-1])
        assert torch.equal(ids, media_ids(shards, rows[where["key"]]))


def test_missing_text_policies(corpus, tmp_path):
    partial = tmp_path / "partial.jsonl"
    partial.write_text("".join(json.dumps({"key": f"img_{i:03d}.png", "text": "x"}) + "\n" for i in range(10)))
    with pytest.raises(ValueError, match="img_010.png"):
        run_pack([corpus["images"]], tmp_path / "a", text_source=open_text(str(partial)))
    dropped = run_pack(
        [corpus["images"]], tmp_path / "b", PackSettings(missing_text="drop"), text_source=open_text(str(partial))
    )
    assert dropped["counts"]["documents"] == 10 and dropped["counts"]["dropped_without_text"] == 2
    kept = run_pack(
        [corpus["images"]], tmp_path / "c", PackSettings(missing_text="keep"), text_source=open_text(str(partial))
    )
    assert kept["counts"]["documents"] == 12 and kept["counts"]["kept_without_text"] == 2


def test_sidecar_text_files_and_a_template(tmp_path):
    write_images(tmp_path / "images", 4, size=16)
    for i in range(4):
        (tmp_path / "images" / f"img_{i:03d}.txt").write_text(f"caption {i}\n")
    shards = _tokenized(tmp_path, "side", TINY_IMAGE_MODEL, tmp_path / "images")
    from mmtok.llm_client import build_text_tokenizer

    build_text_tokenizer().save_pretrained(tmp_path / "tt")
    record = run_pack(
        [shards],
        tmp_path / "out",
        PackSettings(templates={"image": "{media} means {text}"}),
        text_source=open_text(None, files=".txt"),
        text_tokenizer=tmp_path / "tt",
    )
    vocab = JointVocabulary.from_json(record["vocab"])
    from transformers import AutoTokenizer

    text_tokenizer = AutoTokenizer.from_pretrained(tmp_path / "out" / "tokenizer")
    reader = IndexedDatasetReader(tmp_path / "out" / "megatron" / "documents")
    keys = pq.read_table(tmp_path / "out" / "documents.parquet").column("key").to_pylist()
    for i, key in enumerate(keys):
        (modality, _), text = vocab.split(np.asarray(reader[i])[:-1])
        assert modality == "image"
        assert text_tokenizer.decode(text) == f" means caption {int(key[4:7])}"


def test_rerun_is_a_no_op_and_other_settings_are_refused(corpus, tmp_path, capsys):
    out = tmp_path / "out"
    args = ["pack", str(corpus["images"]), str(out), "--seq-len", "32"]
    assert main(args) == 0
    assert "packed 12 documents" in capsys.readouterr().out
    stamp = (out / "megatron" / "documents.bin").stat().st_mtime_ns
    assert main(args) == 0
    assert (out / "megatron" / "documents.bin").stat().st_mtime_ns == stamp
    assert main([*args[:-1], "48"]) == 1
    assert "--overwrite" in capsys.readouterr().err
    assert main([*args[:-1], "48", "--overwrite"]) == 0
    assert json.loads((out / "pack.json").read_text())["settings"]["seq_len"] == 48


def test_a_missing_shard_folder_is_named(tmp_path, capsys):
    assert main(["pack", str(tmp_path / "nowhere"), str(tmp_path / "o")]) == 1
    assert "shard folder" in capsys.readouterr().err and not (tmp_path / "o").exists()


def test_bad_templates_are_refused(corpus, tmp_path, capsys):
    assert main(["pack", str(corpus["images"]), str(tmp_path / "o"), "--template", "{text} only"]) == 1
    assert "{media}" in capsys.readouterr().err
    assert main(["pack", str(corpus["images"]), str(tmp_path / "o"), "--template", "audio={media}"]) == 1
    assert "templates for ['audio'], but the inputs hold ['image']" in capsys.readouterr().err


@settings(max_examples=80, deadline=None)
@given(
    lengths=st.lists(st.integers(1, 40), min_size=1, max_size=30),
    seq_len=st.integers(2, 25),
    policy=st.sampled_from(["split", "whole"]),
    batch=st.integers(1, 7),
)
def test_packer_keeps_every_id_in_order(lengths, seq_len, policy, batch):
    documents = [np.full(n, i + 1) for i, n in enumerate(lengths)]
    packer = Packer(seq_len, policy, pad_id=0)
    batches = [
        packer.push(np.concatenate(documents[i : i + batch]), lengths[i : i + batch])
        for i in range(0, len(lengths), batch)
    ]
    batches.append(packer.finish())
    rows = [(b.ids[r], b.lengths_of_row(r), b.position_ids()[r]) for b in batches for r in range(len(b))]
    assert all(len(ids) == seq_len for ids, _, _ in rows)
    real = np.concatenate([ids[: sum(pieces)] for ids, pieces, _ in rows])
    assert np.array_equal(real, np.concatenate(documents))
    assert all((ids[sum(pieces) :] == 0).all() for ids, pieces, _ in rows)
    pieces = iter(n for _, row_pieces, _ in rows for n in row_pieces)
    cut = 0
    for n in lengths:  # the pieces, in order, add up to each document in turn
        parts, got = 0, 0
        while got < n:
            got, parts = got + next(pieces), parts + 1
        assert got == n
        cut += parts > 1
        if policy == "whole" and n <= seq_len:
            assert parts == 1  # a document that fits in a row is never cut
    assert next(pieces, None) is None and packer.documents_cut == cut
    if policy == "split":
        assert all(sum(p) == seq_len for _, p, _ in rows[:-1])
    for _, row_pieces, positions in rows:
        starts = np.cumsum([0, *row_pieces])
        expected = np.concatenate([np.arange(n) for n in row_pieces] + [np.zeros(seq_len - starts[-1], int)])
        assert np.array_equal(positions, expected)


@settings(max_examples=40, deadline=None)
@given(batch=st.integers(1, 9), policy=st.sampled_from(["split", "whole"]))
def test_rows_do_not_depend_on_batching(batch, policy):
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 30, 25)
    ids = rng.integers(1, 100, int(lengths.sum()))

    def rows(step):
        packer, out, start = Packer(16, policy, pad_id=0), [], 0
        for i in range(0, len(lengths), step):
            n = lengths[i : i + step]
            out.append(packer.push(ids[start : start + n.sum()], n))
            start += n.sum()
        out.append(packer.finish())
        return np.concatenate([b.ids for b in out]), np.concatenate([b.piece_lengths for b in out])

    one = rows(len(lengths))
    other = rows(batch)
    assert np.array_equal(one[0], other[0]) and np.array_equal(one[1], other[1])


def test_frame_flat_matches_to_llm_ids():
    rng = np.random.default_rng(0)
    layouts = [
        VocabLayout("image", [4, 5], [7, 9], base_offset=3),
        VocabLayout("image", [4, 5], [7, 9], flatten="codebook_major"),
        VocabLayout("image", [4, 5], [7, 9], row_markers=True, base_offset=10),
        VocabLayout("eeg", [None, None], [5], row_markers=True),
        VocabLayout("audio", [None], [6, 6, 6], codebook_offsets="shared"),
    ]
    for layout in layouts:
        shapes, flat, expected = [], [], []
        for _ in range(5):
            shape = [s if s is not None else int(rng.integers(1, 4)) for s in layout.token_shape]
            ids = torch.stack([torch.randint(0, size, shape) for size in layout.codebook_sizes], -1)
            shapes.append([*shape, layout.num_codebooks])
            flat.append(layout.flatten_ids(ids).numpy())
            expected.append(layout.to_llm_ids(ids).numpy())
        framed, lengths = layout.frame_flat(np.concatenate(flat), [len(f) for f in flat], shapes)
        assert np.array_equal(framed, np.concatenate(expected))
        assert lengths.tolist() == [len(e) for e in expected]
    with pytest.raises(ValueError, match="out of range"):
        layouts[0].frame_flat(np.full(40, 8), [40], [[4, 5, 2]])


@pytest.mark.parametrize("as_dataset", [False, True])
def test_captions_of_a_tokenized_parquet_match_by_row(tmp_path, as_dataset):
    """A captioned parquet (image bytes + caption, no key column): tokenized, then packed with its
    own caption column as the text, rows matched by row number -- also read as datasets:FOLDER."""
    import pyarrow as pa

    paths = write_images(tmp_path / "images", 5, size=16)
    table = pa.table({"image": [p.read_bytes() for p in paths], "caption": [f"row {i}" for i in range(5)]})
    (tmp_path / "data").mkdir()
    pq.write_table(table, tmp_path / "data" / "train.parquet")
    shards = _tokenized(tmp_path, "pq", TINY_IMAGE_MODEL, tmp_path / "data" / "train.parquet")
    from mmtok.llm_client import build_text_tokenizer

    build_text_tokenizer().save_pretrained(tmp_path / "tt")
    spec = f"datasets:{tmp_path / 'data'}" if as_dataset else str(tmp_path / "data" / "train.parquet")
    text = open_text(spec, column="caption")
    assert text.matched_by == "row number"
    record = run_pack([shards], tmp_path / "out", text_source=text, text_tokenizer=tmp_path / "tt")
    vocab = JointVocabulary.from_json(record["vocab"])
    from transformers import AutoTokenizer

    text_tokenizer = AutoTokenizer.from_pretrained(tmp_path / "out" / "tokenizer")
    reader = IndexedDatasetReader(tmp_path / "out" / "megatron" / "documents")
    indexes = pq.read_table(tmp_path / "out" / "documents.parquet").column("index").to_pylist()
    assert sorted(indexes) == list(range(5))
    for i, index in enumerate(indexes):
        caption, (_, ids) = vocab.split(np.asarray(reader[i])[:-1])
        assert text_tokenizer.decode(caption) == f"row {index}"
