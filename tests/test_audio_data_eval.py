"""Audio decoding, the audio dataset, and the audio metrics, on generated signals."""

import math
import time

import numpy as np
import pytest
import soundfile as sf
import torch
from audio_helpers import sine, speech_like

from mmtok.data.audio import AudioDataset
from mmtok.data.audio_io import AudioDecodeError, AudioInputSpec, load_audio, normalize_loudness
from mmtok.eval.metrics.audio import (
    AudioMetricError,
    mel_distance,
    pesq_wb,
    real_time_factor,
    si_sdr,
    stft_distance,
    stoi,
)

SR = 16_000


def rms_db(x: torch.Tensor) -> float:
    return 20 * math.log10(x.pow(2).mean().sqrt().item())


# -- bad files: each kind must fail loudly, naming the file ------------------------------------


def write_bad_files(folder) -> dict[str, object]:
    good = folder / "for_truncating.wav"
    sf.write(good, sine(440, 1.0, SR), SR, subtype="PCM_16")
    data = good.read_bytes()
    good.unlink()
    files = {
        "empty": folder / "empty.wav",
        "truncated": folder / "truncated.wav",
        "text": folder / "notes.wav",
        "no samples": folder / "no_samples.wav",
    }
    files["empty"].write_bytes(b"")
    files["truncated"].write_bytes(data[: len(data) // 2])  # a half-copied file
    files["text"].write_text("this is not audio\n" * 20)
    sf.write(files["no samples"], np.zeros(0, dtype=np.float32), SR)  # a valid header, no frames
    return files


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        ("empty", "empty file"),
        ("truncated", "truncated WAV"),
        ("text", "Format not recognised"),
        ("no samples", "no samples"),
    ],
)
def test_load_audio_raises_naming_the_file_and_reason(tmp_path, kind, reason):
    path = write_bad_files(tmp_path)[kind]
    with pytest.raises(AudioDecodeError, match=f"{path.name}: .*{reason}"):
        load_audio(path)
    with pytest.raises(AudioDecodeError, match="bytes of encoded audio"):
        load_audio(path.read_bytes())


def test_load_audio_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.wav"):
        load_audio(tmp_path / "nope.wav")


# -- decoding, resampling, mixing ---------------------------------------------------------------


def test_resampling_keeps_the_frequency(tmp_path):
    path = tmp_path / "sine.wav"
    sf.write(path, sine(1000, 1.0, 44_100), 44_100, subtype="FLOAT")
    wave, rate = load_audio(path, sample_rate=SR)
    assert rate == SR and wave.shape == (1, SR) and wave.dtype == torch.float32
    spectrum = torch.fft.rfft(wave[0]).abs()
    peak_hz = spectrum.argmax().item() * SR / wave.shape[-1]  # 1 Hz bins for 1 s
    assert abs(peak_hz - 1000) <= 1
    assert wave.abs().max() <= 1.0


def test_mono_is_the_mean_of_the_channels(tmp_path):
    left, right = sine(300, 0.5, SR, 0.6), sine(700, 0.5, SR, 0.2)
    path = tmp_path / "stereo.flac"
    sf.write(path, np.stack([left, right], axis=1), SR, subtype="PCM_24")
    stereo, _ = load_audio(path, mono=False)
    mono, rate = load_audio(path)
    assert rate == SR and stereo.shape == (2, len(left)) and mono.shape == (1, len(left))
    torch.testing.assert_close(stereo, torch.from_numpy(np.stack([left, right])), atol=1e-6, rtol=0)
    torch.testing.assert_close(mono[0], torch.from_numpy((left + right) / 2), atol=1e-6, rtol=0)


def test_prepare_batches_and_maps_channels(tmp_path):
    path = tmp_path / "clip.ogg"
    sf.write(path, sine(440, 0.5, 22_050), 22_050)
    assert AudioInputSpec(SR).prepare(path).tensor.shape == (1, 1, SR // 2)
    stereo = AudioInputSpec(SR, channels=2).prepare([path, path])
    assert stereo.tensor.shape == (2, 2, SR // 2)
    assert [item["source_sample_rate"] for item in stereo.info] == [22_050, 22_050]
    assert AudioInputSpec(SR).prepare(torch.zeros(2, 100)).tensor.shape == (1, 1, 100)
    with pytest.raises(ValueError, match="float"):
        AudioInputSpec(SR).prepare(np.zeros(100, dtype=np.int16))


# -- loudness -----------------------------------------------------------------------------------


@pytest.mark.parametrize("target_db", [-20.0, -30.0])
def test_normalize_loudness_hits_the_target_rms(target_db):
    wave = torch.from_numpy(sine(440, 1.0, SR, 0.05))[None]
    out = normalize_loudness(wave, target_db)
    assert rms_db(out) == pytest.approx(target_db, abs=0.01)
    batch = torch.stack([wave, 4 * wave])  # one gain per item
    assert [rms_db(item) for item in normalize_loudness(batch, target_db)] == pytest.approx([target_db] * 2, abs=0.01)


def test_normalize_loudness_does_not_blow_up_silence_or_clip():
    assert torch.equal(normalize_loudness(torch.zeros(1, 1000)), torch.zeros(1, 1000))
    hiss = 1e-5 * torch.randn(1, SR)
    assert rms_db(normalize_loudness(hiss, max_gain_db=30.0)) == pytest.approx(rms_db(hiss) + 30.0, abs=0.01)
    clicks = torch.zeros(1, SR)
    clicks[0, ::4000] = 0.1  # crest factor far above 20 dB: the peak limits the gain
    assert normalize_loudness(clicks).abs().max().item() == pytest.approx(1.0)


# -- the dataset --------------------------------------------------------------------------------


def test_dataset_segments_pads_and_is_seeded(tmp_path):
    (tmp_path / "sub").mkdir()
    sf.write(tmp_path / "a_long.wav", sine(440, 2.0, 44_100), 44_100)
    sf.write(tmp_path / "sub" / "b_short.flac", sine(440, 0.25, SR), SR)
    dataset = AudioDataset(tmp_path, spec=AudioInputSpec(SR), segment_seconds=0.5)
    assert len(dataset) == 2
    for item in (dataset[0], dataset[1]):
        assert item.shape == (1, SR // 2) and item.dtype == torch.float32
    short = dataset[1]
    assert rms_db(short[:, : SR // 4]) == pytest.approx(-20.0, abs=0.1)  # the recording's level, padding aside
    assert torch.all(short[:, SR // 4 :] == 0)
    torch.manual_seed(3)
    first = dataset[0]
    torch.manual_seed(3)
    assert torch.equal(first, dataset[0])
    fixed = AudioDataset(tmp_path, spec=AudioInputSpec(SR, loudness_db=None), segment_seconds=0.5, random_segment=False)
    expected, _ = load_audio(tmp_path / "a_long.wav", sample_rate=SR)
    torch.testing.assert_close(fixed[0], expected[:, : SR // 2])


def test_dataset_skips_and_counts_undecodable_files(tmp_path):
    bad = write_bad_files(tmp_path)
    sf.write(tmp_path / "z_good.wav", sine(440, 1.0, SR), SR)
    dataset = AudioDataset(tmp_path, spec=AudioInputSpec(SR), segment_seconds=0.5)
    assert len(dataset) == 5
    items = [dataset[i] for i in range(len(dataset))]  # every bad index yields the next good item
    assert all(item.shape == (1, SR // 2) for item in items)
    assert dataset.num_failed == 4
    assert sorted(dataset.failed_sources) == sorted(str(p) for p in bad.values())
    assert dataset.validate() == sorted(str(p) for p in bad.values())  # one folder: path order = name order
    assert len(dataset) == 1


def test_dataset_without_decodable_audio_names_the_source(tmp_path):
    write_bad_files(tmp_path)
    dataset = AudioDataset(tmp_path, spec=AudioInputSpec(SR), segment_seconds=0.5)
    with pytest.raises(ValueError, match=f"no decodable audio in {tmp_path}"):
        dataset[0]
    (tmp_path / "nothing").mkdir()
    with pytest.raises(ValueError, match="no audio files in"):
        AudioDataset(tmp_path / "nothing", spec=AudioInputSpec(SR), segment_seconds=0.5)


# -- metrics ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def speech_and_noise():
    speech = speech_like()
    noise = (0.1 * np.random.default_rng(1).standard_normal(len(speech))).astype(np.float32)
    return speech, noise


def test_metrics_on_identical_signals(speech_and_noise):
    speech, _ = speech_and_noise
    assert pesq_wb(speech, speech, SR) > 4.4
    assert stoi(speech, speech, SR) > 0.99
    assert si_sdr(speech, speech) > 40
    assert mel_distance(speech, speech, SR) == pytest.approx(0.0, abs=1e-6)
    assert stft_distance(speech, speech) == pytest.approx(0.0, abs=1e-6)


def test_metrics_on_noise(speech_and_noise):
    speech, noise = speech_and_noise
    assert pesq_wb(speech, noise, SR) < 1.5
    assert stoi(speech, noise, SR) < 0.4
    assert si_sdr(noise, speech) < 0
    slightly_off = speech + 0.01 * noise
    assert mel_distance(noise, speech, SR) > mel_distance(slightly_off, speech, SR) > 0.01
    assert stft_distance(noise, speech) > stft_distance(slightly_off, speech) > 0.01


def test_metrics_score_batches_item_by_item(speech_and_noise):
    speech, noise = speech_and_noise
    reference = torch.from_numpy(np.stack([speech, speech]))[:, None]  # (2, 1, T)
    degraded = torch.from_numpy(np.stack([speech, noise]))[:, None]
    for metric in (si_sdr, stft_distance):
        assert metric(degraded, reference).shape == (2,)
    for metric in (mel_distance, pesq_wb, stoi):
        assert metric(reference, degraded, SR).shape == (2,)
    assert mel_distance(degraded, reference, SR)[0] == 0 < mel_distance(degraded, reference, SR)[1]
    # PESQ resamples to 16 kHz itself.
    at_8k = reference[..., ::2]
    assert pesq_wb(at_8k, at_8k, 8000)[0] > 4.4


def test_pesq_and_stoi_refuse_what_they_cannot_score(speech_and_noise):
    speech, _ = speech_and_noise
    with pytest.raises(AudioMetricError, match="all zeros"):
        pesq_wb(np.zeros(SR), np.zeros(SR), SR)
    with pytest.raises(AudioMetricError, match="BufferTooShort"):
        pesq_wb(speech[:2000], speech[:2000], SR)
    with pytest.raises(AudioMetricError, match="silence removal"):
        stoi(speech[:2000], speech[:2000], SR)
    with pytest.warns(RuntimeWarning, match="BufferTooShort"):
        assert math.isnan(pesq_wb(speech[:2000], speech[:2000], SR, on_error="nan"))


def test_si_sdr_equals_the_closed_form():
    # estimate = a * reference + noise orthogonal to the (zero-mean) reference: SI-SDR is
    # 10 log10(a^2 |reference|^2 / |noise|^2), whatever the DC offsets (zero_mean removes them).
    rng = np.random.default_rng(3)
    reference = rng.standard_normal(8000)
    reference -= reference.mean()
    noise = rng.standard_normal(8000)
    noise -= noise.mean()
    noise -= (noise @ reference) / (reference @ reference) * reference
    expected = 10 * np.log10(0.7**2 * (reference @ reference) / (noise @ noise))
    assert si_sdr(0.7 * reference + noise + 0.3, reference - 0.1) == pytest.approx(expected, abs=1e-9)
    # Without zero_mean the offsets count as distortion.
    assert si_sdr(0.7 * reference + noise + 0.3, reference - 0.1, zero_mean=False) < expected - 0.1


def test_si_sdr_batches_average_channels_in_float64():
    rng = np.random.default_rng(4)
    reference = torch.from_numpy(rng.standard_normal((2, 2, 4000)).astype(np.float32))
    estimate = reference + torch.from_numpy(rng.standard_normal((2, 2, 4000)).astype(np.float32)) * torch.tensor(
        [[[0.1], [0.5]], [[1.0], [2.0]]]
    )
    values = si_sdr(estimate, reference)
    assert values.shape == (2,) and values.dtype == torch.float64
    for item in range(2):
        per_channel = [si_sdr(estimate[item, c], reference[item, c]) for c in range(2)]
        assert values[item].item() == pytest.approx(np.mean(per_channel), abs=1e-9)
    assert si_sdr(estimate[:, 0], reference[:, 0]).shape == (2,)  # (batch, samples)


def test_si_sdr_edge_cases(speech_and_noise):
    speech, _ = speech_and_noise
    silence = np.zeros_like(speech)
    # An exact multiple is finite (torchmetrics' epsilon), at about 10 log10(energy / 2.2e-16) dB.
    energy = float(np.sum((0.5 * speech.astype(np.float64) - 0.5 * speech.mean()) ** 2))
    assert si_sdr(0.5 * speech, speech) == pytest.approx(10 * np.log10(energy / np.finfo(np.float64).eps), abs=1.0)
    # Undefined: a silent reference or estimate, or a constant reference once its mean is removed.
    assert math.isnan(si_sdr(speech, silence))
    assert math.isnan(si_sdr(silence, speech))
    assert math.isnan(si_sdr(speech, np.full_like(speech, 0.1)))
    assert math.isfinite(si_sdr(speech, np.full_like(speech, 0.1), zero_mean=False))
    batch = si_sdr(np.stack([speech, speech]), np.stack([speech, silence]))
    assert batch[0] > 100 and math.isnan(batch[1])


def test_real_time_factor_is_wall_time_over_duration():
    rtf = real_time_factor(lambda: time.sleep(0.02), seconds_of_audio=2.0, repeats=3)
    assert 0.009 < rtf < 0.2
