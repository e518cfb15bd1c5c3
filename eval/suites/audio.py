"""Audio in `mmtok eval`: mel and STFT distance, SI-SDR, STOI, wide-band PESQ (mmtok.eval.metrics.audio),
DNSMOS of the reconstruction and speaker similarity to the original (mmtok.eval.metrics.speech_quality),
and for items with a transcript the word error rate of PocketSphinx (mmtok.eval.metrics.speech_recognition),
of the original too, so what a codec adds shows; Opus as the baseline. Media: a WAV per item and
system, and its spectrogram.

Clips are compared as the tokenizer's input path prepared them (its rate, its loudness). DNSMOS and
speaker similarity are speech measures: on music they are reported but say little."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from matplotlib.figure import Figure

from mmtok.eval.codecs.baselines import audio_curve, audio_matched
from mmtok.eval.metrics.audio import mel_distance, pesq_wb, si_sdr, stft_distance, stoi
from mmtok.eval.metrics.speech_quality import dnsmos, speaker_similarity
from mmtok.eval.metrics.speech_recognition import recognised_wer
from mmtok.eval.metrics.transcripts import item_stem
from mmtok.eval.suites import Suite


class AudioSuite(Suite):
    modality = "audio"
    rate_name = "kbps"
    metrics = {
        "mel_distance": False,
        "stft_distance": False,
        "si_sdr": True,
        "stoi": True,
        "pesq": True,
        "dnsmos_ovrl": True,
        "speaker_similarity": True,
        "wer": False,
    }
    uses_transcripts = True

    amount_name = "s of audio"

    def amount(self, reference: torch.Tensor, info: dict) -> float:
        return reference.shape[-1] / info["sample_rate"]

    def rate(self, bits: float, reference: torch.Tensor, info: dict) -> float:
        return bits / (reference.shape[-1] / info["sample_rate"]) / 1000

    def scores(self, reference: torch.Tensor, reconstruction: torch.Tensor, info: dict) -> dict[str, float]:
        rate = info["sample_rate"]
        x, y = reference[0].mean(dim=0), reconstruction[0].clamp(-1, 1).mean(dim=0)  # mono for STOI/PESQ/DNSMOS
        quality = dnsmos(y, rate)
        return {
            "mel_distance": float(mel_distance(reconstruction[0], reference[0], rate)),
            "stft_distance": float(stft_distance(reconstruction[0], reference[0])),
            "si_sdr": float(si_sdr(y, x)),
            "stoi": float(stoi(x, y, rate, on_error="nan")),
            "pesq": float(pesq_wb(x, y, rate, on_error="nan")),
            "dnsmos_ovrl": quality["ovrl"],
            "dnsmos_sig": quality["sig"],
            "dnsmos_bak": quality["bak"],
            "speaker_similarity": speaker_similarity(x, y, rate),
            **self._word_error(y, info),
        }

    def reference_scores(self, reference: torch.Tensor, info: dict) -> dict[str, float]:
        original = reference[0].mean(dim=0)
        quality = dnsmos(original, info["sample_rate"])
        return {**{f"dnsmos_{key}": value for key, value in quality.items()}, **self._word_error(original, info)}

    def _word_error(self, wave: torch.Tensor, info: dict) -> dict[str, float]:
        """{"wer": ...} for an item with a transcript, else {}."""
        transcript = self.transcripts.get(item_stem(info.get("item", "")))
        if transcript is None:
            return {}
        return {"wer": recognised_wer(transcript, wave, info["sample_rate"])}

    def curve(self, reference: torch.Tensor, info: dict):
        return audio_curve(reference, info["sample_rate"])

    def matched(self, reference: torch.Tensor, info: dict, rate: float):
        return audio_matched(reference, info["sample_rate"], rate)

    def write_media(self, folder: Path, stem: str, x: torch.Tensor, info: dict, reference=None) -> dict[str, str]:
        rate = info["sample_rate"]
        wave = x[0].clamp(-1, 1).float().cpu().numpy().T  # (samples, channels)
        sf.write(folder / f"{stem}.wav", wave, rate, subtype="PCM_16")
        spectrogram(wave.mean(axis=1), rate, folder / f"{stem}.png")
        return {"audio": f"{stem}.wav", "spectrogram": f"{stem}.png"}


def spectrogram(wave: np.ndarray, sample_rate: int, path: Path, title: str | None = None) -> None:
    """A log-magnitude spectrogram picture (matplotlib's specgram: 1024-sample Hann frames)."""
    figure = Figure(figsize=(3.2, 1.8), layout="constrained")
    axis = figure.subplots()
    if title:
        axis.set_title(title, fontsize=7)
    with np.errstate(divide="ignore"):  # silent frames: log of 0 power, drawn at the floor
        axis.specgram(wave, NFFT=1024, Fs=sample_rate, noverlap=768, cmap="magma", vmin=-140)
    axis.set_xlabel("s", fontsize=7)
    axis.set_ylabel("Hz", fontsize=7)
    axis.tick_params(labelsize=6)
    figure.savefig(path, dpi=80)
