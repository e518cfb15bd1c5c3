"""The Megatron indexed dataset writer and reader, against the documented layout and megatron-core's own code."""

import os

import numpy as np
import pytest

from mmtok.megatron import IndexedDatasetReader, IndexedDatasetWriter, dtype_for_vocab


def random_documents(seed: int, high: int) -> list[list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    return [
        [rng.integers(0, high, int(rng.integers(1, 50))) for _ in range(int(rng.integers(1, 4)))] for _ in range(20)
    ]


def write(prefix, documents, dtype):
    with IndexedDatasetWriter(prefix, dtype) as writer:
        for document in documents:
            for sequence in document:
                writer.add_sequence(sequence)
            writer.end_document()


def cumulative_sequence_counts(documents) -> list[int]:
    return [0, *np.cumsum([len(d) for d in documents]).tolist()]


def u64(value: int) -> bytes:
    return value.to_bytes(8, "little")


@pytest.fixture(scope="module")
def megatron_indexed_dataset():
    return pytest.importorskip("megatron.core.datasets.indexed_dataset")


@pytest.mark.parametrize("dtype, high", [(np.uint16, 2**16), (np.int32, 2**20)])
def test_round_trip(tmp_path, dtype, high):
    documents = random_documents(0, high)
    documents[0][0][0] = high - 1  # the largest id the dtype is asked to hold
    write(tmp_path / "data", documents, dtype)
    reader = IndexedDatasetReader(tmp_path / "data")
    assert reader.dtype == np.dtype(dtype) and reader.sequence_modes is None
    sequences = [s for d in documents for s in d]
    assert len(reader) == len(sequences)
    assert all(np.array_equal(reader[i], s) for i, s in enumerate(sequences))
    assert reader.sequence_lengths.tolist() == [len(s) for s in sequences]
    assert reader.document_indices.tolist() == cumulative_sequence_counts(documents)
    got = list(reader.documents())
    assert len(got) == len(documents)
    assert all(np.array_equal(g, np.concatenate(d)) for g, d in zip(got, documents))


def test_header_and_arrays_are_the_documented_bytes(tmp_path):
    with IndexedDatasetWriter(tmp_path / "d", np.uint16) as writer:
        writer.add_document([5, 6, 7])
        writer.add_sequence([8])
        writer.add_sequence([9, 10])
        writer.end_document()
    # megatron-core: b"MMIDIDX\x00\x00", uint64 version 1, uint8 dtype code (uint16 = 8), uint64 sequence
    # count, uint64 document-index length, then int32 lengths, int64 byte pointers, int64 document indices.
    expected = b"MMIDIDX\x00\x00" + u64(1) + b"\x08" + u64(3) + u64(3)
    expected += b"\x03\x00\x00\x00" + b"\x01\x00\x00\x00" + b"\x02\x00\x00\x00"
    expected += u64(0) + u64(6) + u64(8)
    expected += u64(0) + u64(1) + u64(3)
    assert (tmp_path / "d.idx").read_bytes() == expected
    assert (tmp_path / "d.bin").read_bytes() == bytes([5, 0, 6, 0, 7, 0, 8, 0, 9, 0, 10, 0])
    with IndexedDatasetWriter(tmp_path / "w", np.int32) as writer:
        writer.add_document([1, 2])
    idx = (tmp_path / "w.idx").read_bytes()
    assert idx[17] == 4  # int32's code
    assert idx[34 + 4 : 34 + 12] == u64(0) and (tmp_path / "w.bin").read_bytes() == b"\x01\x00\x00\x00\x02\x00\x00\x00"


def test_dtype_rule():
    assert dtype_for_vocab(65_535) == np.uint16
    assert dtype_for_vocab(65_536) == np.uint16  # ids 0..65,535
    assert dtype_for_vocab(65_537) == np.int32


def test_ids_that_do_not_fit_are_refused(tmp_path):
    cases = [([1, 65_536], "id 65536 does not fit uint16"), ([-1], "id -1 does not fit uint16")]
    cases += [(np.asarray([1.5]), "must be integers"), (np.zeros((2, 2), int), "1-D")]
    for ids, message in cases:
        with pytest.raises(ValueError, match=message):
            with IndexedDatasetWriter(tmp_path / "d", np.uint16) as writer:
                writer.add_document(ids)
    with pytest.raises(ValueError, match="2147483648 does not fit int32"):
        with IndexedDatasetWriter(tmp_path / "d", np.int32) as writer:
            writer.add_document([2**31])
    with pytest.raises(ValueError, match="integer dtypes"):
        IndexedDatasetWriter(tmp_path / "d", np.float32)
    with pytest.raises(ValueError, match="at least one sequence"):
        with IndexedDatasetWriter(tmp_path / "d", np.uint16) as writer:
            writer.end_document()
    assert list(tmp_path.iterdir()) == []  # every refusal aborted its temporaries


def test_a_crash_leaves_no_dataset_and_keeps_an_older_one(tmp_path):
    with pytest.raises(RuntimeError):
        with IndexedDatasetWriter(tmp_path / "d", np.uint16) as writer:
            writer.add_document([1, 2])
            raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []
    write(tmp_path / "d", [[np.asarray([3, 4])]], np.uint16)
    with pytest.raises(RuntimeError):
        with IndexedDatasetWriter(tmp_path / "d", np.uint16) as writer:
            writer.add_document([7, 7, 7])
            raise RuntimeError("killed")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.bin", "d.idx"]
    assert IndexedDatasetReader(tmp_path / "d")[0].tolist() == [3, 4]


def test_a_death_between_the_renames_leaves_no_mismatched_pair(tmp_path, monkeypatch):
    write(tmp_path / "d", [[np.asarray([3, 4])]], np.uint16)
    replace = os.replace

    def dies_before_the_index(source, target):
        if str(target).endswith(".idx"):
            raise KeyboardInterrupt("killed between the renames")
        replace(source, target)

    monkeypatch.setattr("mmtok.megatron.os.replace", dies_before_the_index)
    with pytest.raises(KeyboardInterrupt):
        write(tmp_path / "d", [[np.asarray([7, 7])]], np.uint16)  # same sizes: an old .idx would fit the new .bin
    assert not (tmp_path / "d.idx").exists()


def test_damaged_files_are_refused(tmp_path):
    write(tmp_path / "d", random_documents(1, 100), np.uint16)
    data, index = (tmp_path / "d.bin").read_bytes(), (tmp_path / "d.idx").read_bytes()

    def refused(bin_bytes, idx_bytes, message):
        (tmp_path / "d.bin").write_bytes(bin_bytes)
        (tmp_path / "d.idx").write_bytes(idx_bytes)
        with pytest.raises(ValueError, match=message):
            IndexedDatasetReader(tmp_path / "d")

    refused(data[:-2], index, "truncated or mismatched")
    refused(data + b"\x00\x00", index, "truncated or mismatched")
    refused(data, index[:40], "truncated")
    refused(data, index + b"\x00", "truncated")  # one stray byte: neither without nor with sequence_modes
    refused(data, index[:20], "shorter than its header")
    refused(data, b"NOTMEGA" + index[7:], "MMIDIDX")
    refused(data, index[:9] + u64(2) + index[17:], "version 2")
    refused(data, index[:17] + b"\x09" + index[18:], "unknown dtype code 9")
    refused(data, index[:-8] + u64(999), "document_indices")
    sequences = int.from_bytes(index[18:26], "little")
    second_pointer = 34 + 4 * sequences + 8
    refused(data, index[:second_pointer] + u64(1) + index[second_pointer + 8 :], "sequence_pointers")


def test_sequence_modes_are_read_when_present(tmp_path):
    write(tmp_path / "d", [[np.asarray([1, 2])], [np.asarray([3]), np.asarray([4])]], np.uint16)
    with open(tmp_path / "d.idx", "ab") as idx:
        idx.write(bytes([0, 1, 1]))  # megatron's optional int8 mode per sequence
    assert IndexedDatasetReader(tmp_path / "d").sequence_modes.tolist() == [0, 1, 1]


def test_megatron_core_reads_what_we_write(tmp_path, megatron_indexed_dataset):
    for dtype, high in ((np.uint16, 2**16), (np.int32, 2**20)):
        documents = random_documents(2, high)
        prefix = tmp_path / np.dtype(dtype).name
        write(prefix, documents, dtype)
        dataset = megatron_indexed_dataset.IndexedDataset(str(prefix))
        sequences = [s for d in documents for s in d]
        assert dataset.index.dtype == dtype
        assert len(dataset) == len(sequences)
        assert all(np.array_equal(dataset[i], s) for i, s in enumerate(sequences))
        assert dataset.sequence_lengths.tolist() == [len(s) for s in sequences]
        assert dataset.document_indices.tolist() == cumulative_sequence_counts(documents)


def test_we_read_what_megatron_core_writes(tmp_path, megatron_indexed_dataset):
    torch = pytest.importorskip("torch")
    documents = random_documents(3, 2**16)
    for multimodal in (False, True):
        prefix = str(tmp_path / f"theirs{int(multimodal)}")
        builder = megatron_indexed_dataset.IndexedDatasetBuilder(prefix + ".bin", np.uint16, multimodal=multimodal)
        for document in documents:
            for sequence in document:
                builder.add_item(torch.from_numpy(sequence), mode=len(sequence) % 2)
            builder.end_document()
        builder.finalize(prefix + ".idx")
        reader = IndexedDatasetReader(prefix)
        sequences = [s for d in documents for s in d]
        assert reader.dtype == np.uint16 and len(reader) == len(sequences)
        assert all(np.array_equal(reader[i], s) for i, s in enumerate(sequences))
        assert reader.document_indices.tolist() == cumulative_sequence_counts(documents)
        modes = reader.sequence_modes.tolist() if multimodal else reader.sequence_modes
        assert modes == ([len(s) % 2 for s in sequences] if multimodal else None)


def test_a_batch_of_documents_writes_what_one_at_a_time_does(tmp_path):
    rng = np.random.default_rng(5)
    documents = [rng.integers(0, 1000, int(rng.integers(1, 30))) for _ in range(40)]
    with IndexedDatasetWriter(tmp_path / "one", np.uint16) as writer:
        for document in documents:
            writer.add_document(document)
    with IndexedDatasetWriter(tmp_path / "batch", np.uint16) as writer:
        writer.add_documents(np.concatenate(documents[:25]), [len(d) for d in documents[:25]])
        writer.add_documents(np.concatenate(documents[25:]), [len(d) for d in documents[25:]])
        with pytest.raises(ValueError, match="add up"):
            writer.add_documents(np.arange(5), [2, 2])
    for suffix in (".bin", ".idx"):
        assert (tmp_path / f"one{suffix}").read_bytes() == (tmp_path / f"batch{suffix}").read_bytes()
