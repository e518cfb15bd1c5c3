"""ECG, the fifth modality: WFDB and EDF records through the one input path, the tokenizer on the
EEG spine, `mmtok tokenize` and `mmtok eval` (NMSE, PRD, DCT at equal bits)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import wfdb

from mmtok.data.ecg_io import LEAD_DIRECTIONS, ECGInputSpec, lead_name
from mmtok.data.eeg_read import EEGDecodeError, EEGRecording
from mmtok.eval.harness import EvalOptions, run_eval
from mmtok.models import build_tokenizer, flavour
from mmtok.tokenize import tokenize

RATE = 360


def synthetic_ecg(seconds: float = 8.0, rate: int = RATE, seed: int = 0) -> np.ndarray:
    """Millivolts: beats of P, QRS and T waves (Gaussians) at about 75 per minute."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    signal = np.zeros_like(t)
    for beat in np.arange(0.3, seconds, 0.8 + rng.uniform(-0.05, 0.05)):
        for offset, width, height in ((-0.2, 0.025, 0.15), (0.0, 0.01, 1.2), (0.25, 0.04, 0.3)):
            signal += height * np.exp(-(((t - beat - offset) / width) ** 2))
    return signal + rng.normal(0, 0.01, t.size)


def write_record(folder, name: str, leads: dict[str, np.ndarray], rate: int = RATE):
    folder.mkdir(parents=True, exist_ok=True)
    signals = np.stack(list(leads.values()), axis=1)
    wfdb.wrsamp(name, fs=rate, units=["mV"] * len(leads), sig_name=list(leads), p_signal=signals,
                fmt=["16"] * len(leads), write_dir=str(folder))  # fmt: skip
    return folder / f"{name}.hea"


def test_wfdb_leads_are_kept_named_placed_and_prepared_in_microvolts(tmp_path):
    ecg = synthetic_ecg()
    header = write_record(tmp_path, "r1", {"MLII": ecg, "V1": -0.5 * ecg, "RESP": np.sin(np.arange(ecg.size) / 500)})
    prepared = ECGInputSpec().prepare(header)
    info = prepared.info[0]
    assert info["channel_names"] == "MLII,V1" and info["dropped_channels"] == 1
    assert info["sample_rate"] == 250 and info["num_samples"] == round(ecg.size * 250 / RATE)
    signal = prepared.tensor[0, :, 3:]
    # R peaks of 1.2 mV stay about 1,200 uV after the 0.5-100 Hz band-pass; V1 is MLII inverted, halved.
    assert 900 < signal[0].max() < 1300
    assert torch.corrcoef(signal)[0, 1] < -0.99
    positions = prepared.tensor[0, :, :3]
    assert not torch.allclose(positions[0], positions[1]) and not positions.isnan().any()


def test_lead_names_are_normalised_and_non_leads_refused(tmp_path):
    assert [lead_name(n) for n in ("ECG II", "avf", "EKG lead v5", "MLII")] == ["II", "aVF", "V5", "MLII"]
    assert set(LEAD_DIRECTIONS) >= {"I", "II", "III", "aVR", "aVL", "aVF", *(f"V{i}" for i in range(1, 7))}
    with pytest.raises(EEGDecodeError, match="no ECG channels"):
        ECGInputSpec().prepare(EEGRecording(np.zeros((1, 1000)), ["Fp1"], 250, "uV"))
    (tmp_path / "broken.hea").write_text("broken 1 360 1000\nbroken.dat 16 200/mV 16 0 0 0 0 II\n")
    with pytest.raises(EEGDecodeError, match="broken.hea"):
        ECGInputSpec().prepare(tmp_path / "broken.hea")  # its .dat is missing


def test_edf_keeps_the_ecg_leads(tmp_path):
    pyedflib = pytest.importorskip("pyedflib.highlevel")
    ecg = synthetic_ecg(rate=250) * 1000
    headers = pyedflib.make_signal_headers(["ECG II", "EEG Fp1"], "uV", 250, physical_min=-3000, physical_max=3000)
    pyedflib.write_edf(str(tmp_path / "r.edf"), np.stack([ecg, ecg * 0.01]), headers)
    info = ECGInputSpec().prepare(tmp_path / "r.edf").info[0]
    assert info["channel_names"] == "II" and info["dropped_channels"] == 1


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    root = tmp_path_factory.mktemp("ecg")
    for i in range(3):
        ecg = synthetic_ecg(seed=i)
        write_record(root / "held", f"h{i}", {"II": ecg, "V2": 0.7 * np.roll(ecg, 20)})
    (root / "held" / "stray.dat").write_bytes(b"")
    return root


def test_a_long_record_gives_the_same_ids_window_by_window(records):
    torch.manual_seed(0)
    tokenizer = build_tokenizer({"family": "ecg", **flavour("ecg")}).eval()
    x = tokenizer.input_spec().prepare(records / "held" / "h0.hea").tensor
    whole = tokenizer.encode(x)
    tokenizer.window_patches = 7
    assert torch.equal(tokenizer.encode(x), whole)
    assert whole.shape[:3] == (1, 2, (x.shape[-1] - 3) // tokenizer.config.patch_size)


def test_tokenize_and_eval_read_ecg_records(records, tmp_path):
    torch.manual_seed(0)
    tok_dir = build_tokenizer({"family": "ecg", **flavour("ecg")}).save_pretrained(tmp_path / "tok")
    manifest = tokenize(tok_dir, records / "held", tmp_path / "shards", num_workers=0, progress=False)
    assert manifest["counts"]["samples"] == 3 and manifest["counts"]["errors"] == 0
    # each record's .dat and the stray one: counted as read with a header, not as stray files
    assert manifest["skipped"]["companion data file (read with its header file)"]["count"] == 4
    report = run_eval([str(tok_dir)], str(records / "held"), tmp_path / "report", EvalOptions(sweep=False))
    assert report["modality"] == "ecg" and report["rate_name"] == "bits per lead-second"
    tok = report["tokenizers"][0]
    for row in tok["items"]:
        assert row["prd"] == pytest.approx(100 * math.sqrt(row["nmse"]))
    [dct] = tok["matched"].values()
    assert dct["summary"]["rate"]["mean"] <= tok["summary"]["rate"]["mean"]
    assert dct["summary"]["nmse"]["mean"] < 1  # the baseline reconstructs the beats
