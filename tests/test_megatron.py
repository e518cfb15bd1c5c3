"""The Megatron indexed dataset writer, against the documented layout and megatron-core's reader."""

import struct

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


@pytest.mark.parametrize("dtype, high", [(np.uint16, 2**16), (np.int32, 2**20)])
def test_round_trip(tmp_path, dtype, high):
    documents = random_documents(0, high)
    write(tmp_path / "data", documents, dtype)
    reader = IndexedDatasetReader(tmp_path / "data")
    assert reader.dtype == np.dtype(dtype)
    sequences = [s for d in documents for s in d]
    assert len(reader) == len(sequences)
    assert all(np.array_equal(reader[i], s) for i, s in enumerate(sequences))
    assert reader.document_indices.tolist() == [0, *np.cumsum([len(d) for d in documents]).tolist()]
    for got, document in zip(reader.documents(), documents):
        assert np.array_equal(got, np.concatenate(document))


def test_header_bytes_follow_the_layout(tmp_path):
    with IndexedDatasetWriter(tmp_path / "d", np.uint16) as writer:
        writer.add_document([5, 6, 7])
        writer.add_document([8])
    idx = (tmp_path / "d.idx").read_bytes()
    # magic, version 1, dtype code 8 (uint16), 2 sequences, 3 document-index entries
    assert idx[:34] == b"MMIDIDX\x00\x00" + struct.pack("<QBQQ", 1, 8, 2, 3)
    lengths = np.frombuffer(idx, np.int32, 2, 34)
    pointers = np.frombuffer(idx, np.int64, 2, 42)
    documents = np.frombuffer(idx, np.int64, 3, 58)
    assert lengths.tolist() == [3, 1] and pointers.tolist() == [0, 6] and documents.tolist() == [0, 1, 2]
    assert len(idx) == 58 + 24
    assert (tmp_path / "d.bin").read_bytes() == np.asarray([5, 6, 7, 8], np.uint16).tobytes()
    with IndexedDatasetWriter(tmp_path / "w", np.int32) as writer:
        writer.add_document([1])
    assert (tmp_path / "w.idx").read_bytes()[17] == 4  # int32's code


def test_dtype_rule():
    assert dtype_for_vocab(65_536) == np.uint16 and dtype_for_vocab(65_537) == np.int32


def test_ids_that_do_not_fit_are_refused(tmp_path):
    with pytest.raises(ValueError, match="65536 does not fit uint16"):
        with IndexedDatasetWriter(tmp_path / "d", np.uint16) as writer:
            writer.add_document([1, 65_536])
    with pytest.raises(ValueError, match="-1 does not fit"):
        with IndexedDatasetWriter(tmp_path / "d", np.uint16) as writer:
            writer.add_document([-1])


def test_a_crash_leaves_no_dataset(tmp_path):
    with pytest.raises(RuntimeError):
        with IndexedDatasetWriter(tmp_path / "d", np.uint16) as writer:
            writer.add_document([1, 2])
            raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []


def test_truncated_files_are_refused(tmp_path):
    write(tmp_path / "d", random_documents(1, 100), np.uint16)
    data = (tmp_path / "d.bin").read_bytes()
    (tmp_path / "d.bin").write_bytes(data[:-2])
    with pytest.raises(ValueError, match="truncated or mismatched"):
        IndexedDatasetReader(tmp_path / "d")
    (tmp_path / "d.bin").write_bytes(data)
    index = (tmp_path / "d.idx").read_bytes()
    (tmp_path / "d.idx").write_bytes(index[:40])
    with pytest.raises(ValueError, match="truncated"):
        IndexedDatasetReader(tmp_path / "d")
    (tmp_path / "d.idx").write_bytes(b"NOTMEGA" + index[7:])
    with pytest.raises(ValueError, match="MMIDIDX"):
        IndexedDatasetReader(tmp_path / "d")


def test_megatron_core_reads_what_we_write(tmp_path):
    indexed_dataset = pytest.importorskip("megatron.core.datasets.indexed_dataset")
    for dtype, high in ((np.uint16, 2**16), (np.int32, 2**20)):
        documents = random_documents(2, high)
        prefix = tmp_path / np.dtype(dtype).name
        write(prefix, documents, dtype)
        dataset = indexed_dataset.IndexedDataset(str(prefix))
        sequences = [s for d in documents for s in d]
        assert len(dataset) == len(sequences)
        assert all(np.array_equal(dataset[i], s) for i, s in enumerate(sequences))
        assert dataset.document_indices.tolist() == [0, *np.cumsum([len(d) for d in documents]).tolist()]
        assert dataset.index.dtype == dtype
