"""What EEG tokens keep (metrics, the DCT baseline, linear probes), and a trained tokenizer through
export and `mmtok tokenize`."""

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from eeg_helpers import CAP, TINY_EEG, recording, write_brainvision, write_edf, write_npz
from train_helpers import write_config

from mmtok import load_tokenizer
from mmtok.data.eeg_io import EEGInputSpec
from mmtok.data.eeg_montage import unpack_eeg
from mmtok.eval.codecs.dct import DCTCodec, best_dct_codec
from mmtok.eval.metrics.eeg import BANDS, band_power_error, nmse, pearson_r, signal_report
from mmtok.eval.probes.eeg import band_power_features, linear_probe, token_features
from mmtok.shards import read_manifest, shard_files
from mmtok.tokenize import tokenize
from mmtok.train.config import load_run_config
from mmtok.train.trainer import Trainer

SPEC = EEGInputSpec()


def sine(hz: float, amplitude: float = 10.0, seconds: float = 4.0, rate: int = 200) -> np.ndarray:
    return amplitude * np.sin(2 * np.pi * hz * np.arange(int(seconds * rate)) / rate)[None, None]


def test_band_power_error_of_a_pure_sinusoid():
    alpha = sine(10.0)
    assert band_power_error(alpha, alpha, 200) == {band: 0.0 for band in BANDS}
    errors = band_power_error(alpha, 2 * alpha, 200)  # twice the amplitude: four times the power
    assert errors["alpha"] == pytest.approx(3.0, rel=1e-6)
    other = band_power_error(alpha, alpha + sine(20.0, 5.0), 200)  # a beta rhythm added
    assert other["alpha"] < 0.01 and other["beta"] > 100


def test_nmse_and_pearson_r():
    x = sine(10.0)
    assert nmse(x, x) == 0.0 and pearson_r(x, x) == pytest.approx(1.0)
    assert nmse(x, 0.5 * x) == pytest.approx(0.25) and pearson_r(x, 0.5 * x) == pytest.approx(1.0)
    assert pearson_r(x, -x) == pytest.approx(-1.0)
    assert signal_report(x, 0.5 * x, 200)["band_error_alpha"] == pytest.approx(0.75)


def test_the_dct_codec_spends_its_bits_and_keeps_more_with_more():
    signals = np.concatenate([recording(CAP, seed=s).data[None] for s in range(4)])  # (4, 10, 400)
    coarse, fine = DCTCodec.fit(signals, 200, 10, 4), DCTCodec.fit(signals, 200, 40, 6)
    assert coarse.bits_per_patch == 40 and coarse(signals).shape == signals.shape
    assert nmse(signals, fine(signals)) < nmse(signals, coarse(signals)) < 1.0
    best = best_dct_codec(signals, 200, 80, 200)
    assert best.bits_per_patch <= 80 and best.kept * (best.bits + 1) > 80 - best.bits  # uses its budget


def two_class_trials(count: int, seed: int) -> tuple[list, np.ndarray]:
    """Eyes shut (strong 10 Hz at the back) against eyes open (weak), 1 s at 128 Hz."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, count)
    alphas = np.where(labels == 1, 25.0, 3.0)
    return [recording(CAP, rate=128, seconds=1, seed=seed * 1000 + i, alpha=a) for i, a in enumerate(alphas)], labels


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny tokenizer trained for 60 steps on unlabelled synthetic trials, exported."""
    root = tmp_path_factory.mktemp("eeg")
    (root / "train").mkdir()
    for i, trial in enumerate(two_class_trials(24, seed=1)[0]):
        write_npz(root / "train" / f"trial{i:02d}.npz", trial)
    config = {
        "output_dir": str(root / "run"),
        "model": TINY_EEG,
        "data": {"source": str(root / "train"), "segment_patches": 4, "channels": 6},
        "loss": {"reconstruction": "l2", "modality": {"log_amplitude_weight": 2.0}},
        "train": {"max_steps": 60, "batch_size": 8, "log_every": 10, "health_every": 20, "sample_every": 1000,
                  "checkpoint_every": 1000, "ema_decay": 0.0, "generator": {"lr": 1e-3, "betas": [0.9, 0.99]}},
    }  # fmt: skip
    trainer = Trainer(load_run_config(write_config(root / "eeg.yaml", config), []))
    trainer.fit()
    trainer.inference_model.save_pretrained(root / "tokenizer")
    return root, load_tokenizer(root / "tokenizer")


def test_probes_on_a_synthetic_two_class_set_beat_chance(trained):
    _, frozen = trained
    train, train_y = two_class_trials(40, seed=2)
    test, test_y = two_class_trials(40, seed=3)
    train_x, test_x = frozen.prepare(train).tensor, frozen.prepare(test).tensor
    tokens = linear_probe(token_features(frozen, train_x), train_y, token_features(frozen, test_x), test_y)
    raw = linear_probe(band_power_features(train_x, 200), train_y, band_power_features(test_x, 200), test_y)
    assert raw["balanced_accuracy"] > 0.9
    assert tokens["balanced_accuracy"] > 0.75 and tokens["kappa"] > 0.5 and tokens["weighted_f1"] > 0.75


def test_export_round_trip(trained, tmp_path):
    root, frozen = trained
    rec = recording(["EEG Fp1-REF", "EEG C3-REF", "EEG O2-REF", "EEG AFF1h-REF"], rate=256, seconds=2)
    path = write_edf(tmp_path / "a.edf", rec)
    encoded = frozen.encode_media(path)
    assert encoded.info[0]["channel_names"] == "Fp1,C3,O2,AFF1h" and encoded.info[0]["unknown_positions"] == 0
    assert torch.equal(encoded.ids, frozen.model.encode(SPEC.prepare(path).tensor))
    assert encoded.ids.shape == (1, 4, 8, 2)
    again = load_tokenizer(root / "tokenizer")
    assert torch.equal(again.encode(path), encoded.ids)
    [decoded] = frozen.decode_media(encoded)
    assert decoded.channel_names == ["Fp1", "C3", "O2", "AFF1h"] and decoded.data.shape == (4, 400)
    llm_ids = frozen.to_llm_ids(path)[0]
    assert torch.equal(frozen.vocab.media_segments(llm_ids)[0], encoded.ids[0])


def test_an_electrode_never_seen_in_training_is_placed_by_its_position(trained):
    _, frozen = trained
    model = frozen.model
    positions = unpack_eeg(SPEC.prepare(recording(["AFF1h", "PO9", *CAP], seconds=1)).tensor)[0][0]
    embeddings = model.electrode_embedding(positions)
    assert not positions.isnan().any()
    assert not torch.allclose(embeddings[0], model.electrode_embedding.fallback)
    distances = torch.cdist(embeddings[:2], embeddings[2:])
    assert (distances > 1e-4).all()  # an embedding of its own, not a copy of a trained electrode's


def test_tokenize_a_folder_of_recordings_with_a_broken_one(trained, tmp_path):
    _, frozen = trained
    folder = tmp_path / "in"
    folder.mkdir()
    files = {
        "a.edf": write_edf(folder / "a.edf", recording(CAP[:4], rate=256, seconds=2)),
        "b.vhdr": write_brainvision(folder, "b", recording(CAP[4:], rate=500, seconds=3, seed=1)),
        "c.npz": write_npz(folder / "c.npz", recording(["Cz", "Pz"], rate=200, seconds=1, seed=2)),
    }
    (folder / "broken.edf").write_bytes(b"0       " + b"\x00" * 100)
    manifest = tokenize(frozen.path, folder, tmp_path / "out", batch_size=2, num_workers=0, progress=False)
    assert manifest["counts"] == {
        "inputs": 4,
        "samples": 3,
        "tokens": 4 * 8 * 2 + 6 * 12 * 2 + 2 * 4 * 2,
        "errors": 1,
        "skipped": 2,
    }
    companions = manifest["skipped"]["companion data file (read with its header file)"]
    assert sorted(name.rsplit("/", 1)[1] for name in companions["examples"]) == ["b.eeg", "b.vmrk"]
    errors = (tmp_path / "out" / "errors.jsonl").read_text()
    assert "broken.edf" in errors and errors.count("\n") == 1
    rows = pq.read_table(shard_files(tmp_path / "out")[0]).to_pylist()
    assert [row["key"] for row in rows] == ["a.edf", "b.vhdr", "c.npz"]
    assert rows[1]["channel_names"] == ",".join(CAP[4:]) and rows[1]["source_sample_rate"] == 500.0
    for row in rows:
        ids = frozen.vocab.unflatten_ids(torch.tensor(row["ids"], dtype=torch.long), row["token_shape"])
        assert torch.equal(ids, frozen.encode(files[row["key"]])[0])
    assert read_manifest(tmp_path / "out")["tokenizer"]["input"]["modality"] == "eeg"
