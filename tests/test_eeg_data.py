"""The one EEG input path: readers (EDF, FIF, .npz, aeon .ts, arrays), names and positions,
resampling, filtering and clipping, the training dataset."""

import json
import logging

import numpy as np
import pytest
import torch
from eeg_helpers import CAP, recording, write_edf, write_npz
from scipy.signal import welch

from mmtok.data.eeg import EEGDataset
from mmtok.data.eeg_io import EEGInputSpec
from mmtok.data.eeg_montage import channel_position, normalise_channel_name, unpack_eeg
from mmtok.data.eeg_read import EEGDecodeError, EEGRecording, read_recordings
from mmtok.data.eeg_ts import read_ts

SPEC = EEGInputSpec()


@pytest.mark.parametrize(
    "raw, name",
    [("EEG Fp1-REF", "Fp1"), ("FP1", "Fp1"), ("Fp1-LE", "Fp1"), ("EEG T3-REF", "T3"), ("fp1-f7", "Fp1-F7"),
     ("EEG 001", "EEG 001"), ("CZ", "Cz")],
)  # fmt: skip
def test_channel_names_are_normalised_to_the_10_05_spelling(raw, name):
    assert normalise_channel_name(raw) == name


def test_a_bipolar_channel_sits_between_its_electrodes():
    fp1, f7 = channel_position("Fp1"), channel_position("F7")
    assert np.allclose(channel_position("Fp1-F7"), (fp1 + f7) / 2)
    assert not np.allclose(fp1, f7)


@pytest.mark.parametrize("rate", [128, 256])
def test_recordings_are_resampled_to_200_hz_and_keep_their_rhythm(rate):
    t = np.arange(rate * 4) / rate
    sine = 20 * np.sin(2 * np.pi * 10 * t)
    prepared = SPEC.prepare(EEGRecording(np.stack([sine, sine + 3]), ["O1", "O2"], rate))
    positions, signal = unpack_eeg(prepared.tensor[0])
    assert signal.shape == (2, 800) and prepared.info[0]["source_sample_rate"] == rate
    expected = 20 * np.sin(2 * np.pi * 10 * np.arange(800) / 200)
    middle = slice(100, 700)  # away from the filters' edges
    assert np.corrcoef(signal[0, middle].numpy(), expected[middle])[0, 1] > 0.999
    assert abs(signal[1].mean().item()) < 0.5  # the constant offset went with the channel means
    freqs, power = welch(signal[0].numpy(), fs=200, nperseg=200)
    assert freqs[power.argmax()] == 10.0


def test_band_pass_notch_and_clipping_are_applied_and_clipping_counted():
    t = np.arange(2000) / 200
    hum = 30 * np.sin(2 * np.pi * 50 * t)  # mains at 50 Hz: the notch removes it
    fast = 30 * np.sin(2 * np.pi * 95 * t)  # past the 75 Hz low-pass's transition band (75-93.75 Hz)
    spike = np.zeros_like(t)
    spike[1000:1003] = 5000.0
    data = np.stack([10 * np.sin(2 * np.pi * 10 * t) + hum + fast, spike])
    prepared = SPEC.prepare(EEGRecording(data, ["Cz", "Pz"], 200))
    signal = unpack_eeg(prepared.tensor[0])[1].numpy()
    freqs, power = welch(signal[0, 200:-200], fs=200, nperseg=200)
    assert power[freqs == 50][0] < 1e-2 * power[freqs == 10][0]  # from 9x the 10 Hz power
    assert power[freqs == 95][0] < 1e-2 * power[freqs == 10][0]
    assert np.abs(signal[1]).max() <= 500.0 and prepared.info[0]["clipped_samples"] > 0
    assert prepared.info[0]["clipped_samples"] == int((np.abs(signal[1]) >= 500.0).sum())


def test_an_edf_written_with_pyedflib_reads_back_through_the_one_path(tmp_path):
    rec = recording(["EEG Fp1-REF", "EEG Cz-REF", "EEG O2-REF", "EEG EKG1-REF"], rate=256, seconds=3)
    path = write_edf(tmp_path / "a.edf", rec)
    from_path, from_bytes = SPEC.prepare(path), SPEC.prepare(path.read_bytes())
    from_array = SPEC.prepare(rec)
    assert torch.equal(from_path.tensor, from_bytes.tensor)
    assert from_path.info[0]["channel_names"] == "Fp1,Cz,O2" and from_path.info[0]["dropped_channels"] == 1
    # The same samples as the array (up to EDF's 16-bit steps of 1000 / 65535 µV).
    assert torch.allclose(from_path.tensor, from_array.tensor, atol=0.05)
    assert torch.allclose(unpack_eeg(from_path.tensor)[0][0, 1], torch.tensor(channel_position("Cz")).float())


def test_a_truncated_edf_is_an_error_that_says_header_against_file_size(tmp_path):
    path = write_edf(tmp_path / "a.edf", recording(["Fp1", "Cz"], rate=256, seconds=3))  # 3 records of 1 s
    whole = path.read_bytes()
    (tmp_path / "cut.edf").write_bytes(whole[:-100])  # the last record cut short
    message = r"cut.edf: truncated EDF: the header declares 3 data records of \d+ bytes, the file holds 2 "
    with pytest.raises(EEGDecodeError, match=message):
        read_recordings(tmp_path / "cut.edf")
    with pytest.raises(EEGDecodeError, match="truncated EDF: the header declares 3 data records"):
        SPEC.prepare(whole[:-100])  # bytes, as mmtok tokenize hands them over
    # -1 records: the recorder had not finished writing; legal, and every whole record is read.
    (tmp_path / "open.edf").write_bytes(whole[:236] + b"-1      " + whole[244:])
    assert read_recordings(tmp_path / "open.edf")[0].data.shape == (2, 3 * 256)


def test_a_truncated_bdf_is_an_error_too(tmp_path):
    rec = recording(["Fp1", "Cz"], rate=256, seconds=2)
    whole = write_edf(tmp_path / "a.bdf", rec).read_bytes()  # pyedflib writes BDF+ for a .bdf name
    assert whole[:8] == b"\xffBIOSEMI"
    assert np.allclose(read_recordings(tmp_path / "a.bdf")[0].microvolts(), rec.microvolts(), atol=0.05)
    (tmp_path / "cut.bdf").write_bytes(whole[: len(whole) - 3 * 256])  # one channel's second of 24-bit samples
    with pytest.raises(EEGDecodeError, match="truncated BDF: the header declares 2 data records"):
        read_recordings(tmp_path / "cut.bdf")


def test_channels_dropped_by_type_or_by_name_are_all_counted(tmp_path):
    # MNE types "EOG left" as an eog channel named "left" and "Status" as a trigger, and leaves the
    # others typed EEG: ECG, STI 014 and EKG are then dropped by their names.
    names = ["Fp1", "EEG Cz-REF", "O2", "ECG", "EOG left", "STI 014", "Status", "EKG"]
    path = write_edf(tmp_path / "a.edf", recording(names, rate=200, seconds=2))
    info = SPEC.prepare(path).info[0]
    assert info["channel_names"] == "Fp1,Cz,O2" and info["channels"] == 3
    assert info["dropped_channels"] == 5 and info["source_channels"] == 8
    raw = recording(["Cz", "Pz", "heart", "trigger"], rate=200, seconds=2).to_raw()
    raw.set_channel_types({"heart": "ecg", "trigger": "stim"})
    info = SPEC.prepare(raw).info[0]  # an mne Raw given directly, typed by its owner
    assert (info["channels"], info["dropped_channels"], info["source_channels"]) == (2, 2, 4)
    raw.pick(["heart", "trigger"]).save(tmp_path / "none_raw.fif", verbose="error")
    with pytest.raises(EEGDecodeError, match=r"no EEG channels \(2 channels of other types\)"):
        read_recordings(tmp_path / "none_raw.fif")


def test_fif_and_npz_read_back_with_their_names_and_units(tmp_path):
    rec = recording(CAP[:3], rate=250, seconds=2)
    rec.to_raw().save(tmp_path / "a_raw.fif", verbose="error")
    write_npz(tmp_path / "b.npz", rec)
    expected = SPEC.prepare(rec).tensor
    for path in (tmp_path / "a_raw.fif", tmp_path / "b.npz"):
        assert torch.allclose(SPEC.prepare(path).tensor, expected, atol=1e-3), path.name
    assert torch.allclose(SPEC.prepare((tmp_path / "a_raw.fif").read_bytes()).tensor, expected, atol=1e-3)


def test_unreadable_recordings_raise_naming_the_source(tmp_path):
    (tmp_path / "broken.edf").write_bytes(b"0       this is not an EDF header")
    with pytest.raises(EEGDecodeError, match="broken.edf"):
        read_recordings(tmp_path / "broken.edf")
    with pytest.raises(EEGDecodeError, match="NaN"):
        SPEC.prepare(EEGRecording(np.full((2, 400), np.nan), ["Cz", "Pz"], 200))
    with pytest.raises(EEGDecodeError, match="companion"):
        read_recordings(b"Brain Vision Data Exchange Header File Version 1.0", name="x.vhdr")


TS = """# a generated file
@problemName Tiny
@timestamps false
@univariate false
@equalLength true
@seriesLength 4
@classLabel true open shut
@data
1,2,3,4:5,6,7,8:open
-1,-2,?,-4:0,0,0,1:shut
"""


def test_the_ts_parser_reads_trials_labels_and_the_sets_auxiliary_metadata(tmp_path):
    folder = tmp_path / "data" / "Tiny"
    folder.mkdir(parents=True)
    (folder / "Tiny_TRAIN.ts").write_text(TS)
    (tmp_path / "data" / "auxiliary").mkdir()
    (tmp_path / "data" / "auxiliary" / "Tiny.json").write_text(json.dumps({"sfreq": 128, "channels": ["O1", "O2"]}))
    trials = read_ts(folder / "Tiny_TRAIN.ts")
    assert trials.labels == ["open", "shut"] and trials.class_names == ["open", "shut"]
    assert trials.recordings[0].channel_names == ["O1", "O2"] and trials.recordings[0].sample_rate == 128
    assert np.array_equal(trials.recordings[0].data, [[1, 2, 3, 4], [5, 6, 7, 8]])
    assert np.isnan(trials.recordings[1].data[0, 2])  # "?" is a missing value
    unnamed = read_ts(TS.encode(), sample_rate=100)  # bytes: no folder to look in
    assert unnamed.recordings[0].channel_names == ["ch1", "ch2"] and unnamed.recordings[0].sample_rate == 100
    with pytest.raises(ValueError, match="sampling rate"):
        read_ts(TS.encode())


def test_an_unknown_channel_name_is_reported_once(caplog):
    rec = EEGRecording(np.random.default_rng(0).normal(size=(2, 400)), ["Cz", "Mystery9"], 200)
    with caplog.at_level(logging.WARNING, logger="mmtok.eeg"):
        first = SPEC.prepare(rec)
        SPEC.prepare(rec)
    assert [r.getMessage().count("Mystery9") for r in caplog.records] == [1]
    assert first.info[0]["unknown_positions"] == 1
    assert torch.isnan(unpack_eeg(first.tensor)[0][0, 1]).all()


def test_the_dataset_draws_windows_pads_as_missing_and_lists_failed_files(tmp_path):
    write_npz(tmp_path / "long.npz", recording(CAP, rate=200, seconds=3))
    write_npz(tmp_path / "short_small.npz", recording(CAP[:3], rate=100, seconds=0.6))
    (tmp_path / "broken.edf").write_bytes(b"garbage")
    dataset = EEGDataset(tmp_path, spec=SPEC, patch_size=100, segment_patches=2, channels=4)
    assert len(dataset) == 3 + 1  # 3 s hold three windows of 2 patches of 0.5 s; 0.6 s less than one
    assert dataset.num_failed == 1
    torch.manual_seed(0)
    long_item, short_item = dataset[0], dataset[3]
    assert dataset.failed_sources == [str(tmp_path / "broken.edf")]
    assert long_item.shape == short_item.shape == (4, 3 + 200)
    assert not long_item.isnan().any()  # 4 of the 10 channels
    positions, signal = unpack_eeg(short_item)
    assert signal[:3, :100].isfinite().all() and signal[:3, 100:].isnan().all()  # 1 whole patch of 2: the rest missing
    assert signal[3].isnan().all() and positions[3].isnan().all()  # a 3-channel cap padded to 4
