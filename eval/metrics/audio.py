"""Audio reconstruction metrics, bitrate and speed.

SI-SDR comes from ``torchmetrics``; the spectral distances are our own, in torch (auraloss's
spectral losses are not the same quantity: see the comments at ``mel_distance`` and
``stft_distance``), so all three run batched on the model's device. STOI and PESQ call the
reference implementations (``pystoi``; ``pesq``, the ITU-T P.862 C code) one clip at a time on
the CPU; torchmetrics' wrappers of the same two packages pass pystoi's 1e-5 on as a score and
stop a batch at the first clip PESQ cannot score, so they are not used.

Signals are ``(samples,)``, ``(batch, samples)`` or ``(batch, channels, samples)``, as torch
tensors or numpy arrays, with both arguments of a metric the same shape. A 1-D input gives a
Python float, a batch gives one value per item, shape ``(batch,)`` (channels are averaged). STOI
and PESQ are defined for mono speech only.

STOI and PESQ cannot score every input: too little speech after their silence detection, or too
short a clip. Then they raise ``AudioMetricError`` naming the reason, or, with ``on_error="nan"``,
warn and give NaN for that clip, so one bad clip need not stop an evaluation run. They never
return a made-up score (pystoi's 1e-5, PESQ's floor) as if it were one.
"""

from __future__ import annotations

import math
import statistics
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Literal

import numpy as np
import torch
import torchaudio.functional as AF
from torchaudio.transforms import MelSpectrogram
from torchmetrics.functional.audio import scale_invariant_signal_distortion_ratio

__all__ = [
    "AudioMetricError",
    "mel_distance",
    "stft_distance",
    "si_sdr",
    "stoi",
    "pesq_wb",
    "real_time_factor",
]

# Short, medium and long windows: transients, pitch harmonics, and the spectral envelope.
MEL_FFT_SIZES = (2048, 512, 128)
STFT_FFT_SIZES = (2048, 1024, 512)
LOG_FLOOR = 1e-5  # magnitudes below this count as silence (-100 dB) in the log spectra
PESQ_SAMPLE_RATE = 16_000  # wide-band PESQ (P.862.2) is defined at 16 kHz

OnError = Literal["raise", "nan"]


class AudioMetricError(ValueError):
    """A metric that cannot score its input (e.g. PESQ finds no utterances); says why."""


def _as_batch(x: torch.Tensor | np.ndarray, y: torch.Tensor | np.ndarray) -> tuple[torch.Tensor, torch.Tensor, bool]:
    """Both signals as (batch, channels, samples) in a float dtype, and whether the input was 1-D."""
    x, y = torch.as_tensor(x), torch.as_tensor(y)
    if x.shape != y.shape:
        raise ValueError(f"signal shapes differ: {tuple(x.shape)} vs {tuple(y.shape)}")
    if not 1 <= x.ndim <= 3:
        raise ValueError(f"expected (samples,), (batch, samples) or (batch, channels, samples), got {tuple(x.shape)}")
    if x.shape[-1] == 0:
        raise ValueError("signals have no samples")
    single = x.ndim == 1
    while x.ndim < 3:  # (T,) -> (1, 1, T); (B, T) -> (B, 1, T)
        x, y = x.unsqueeze(-2), y.unsqueeze(-2)
    dtype = torch.float64 if torch.float64 in (x.dtype, y.dtype) else torch.float32
    return x.to(dtype), y.to(dtype), single


def _result(values: torch.Tensor, single: bool) -> torch.Tensor | float:
    return values.item() if single else values


def mel_distance(
    x: torch.Tensor | np.ndarray,
    y: torch.Tensor | np.ndarray,
    sample_rate: int,
    *,
    fft_sizes: Sequence[int] = MEL_FFT_SIZES,
) -> torch.Tensor | float:
    """Multi-resolution log-mel distance: 0 for identical signals, larger is worse.

    For each FFT size n (default 2048, 512, 128 samples, Hann window of n, hop n/4), the mean
    absolute difference of log10 mel magnitudes with n/16 mel bands (128, 32, 8: fewer bands for
    the shorter windows, so that none of them is narrower than an FFT bin); magnitudes are floored
    at 1e-5. The result is the mean over the FFT sizes.
    """
    # Not auraloss's MelSTFTLoss: that uses librosa's Slaney-normalised filterbank (librosa is not a dependency),
    # natural log with a 1e-4 magnitude floor, one band count for every size, and adds spectral convergence;
    # the mel distances in the README are this definition.
    x, y, single = _as_batch(x, y)
    distances = []
    for n_fft in fft_sizes:
        mel = MelSpectrogram(
            sample_rate, n_fft=n_fft, hop_length=n_fft // 4, n_mels=n_fft // 16, power=1.0, pad_mode="constant"
        ).to(device=x.device, dtype=x.dtype)
        log_x = mel(x).clamp_min(LOG_FLOOR).log10()
        log_y = mel(y).clamp_min(LOG_FLOOR).log10()
        distances.append((log_x - log_y).abs().flatten(1).mean(dim=1))
    return _result(torch.stack(distances).mean(dim=0), single)


def _magnitudes(signal: torch.Tensor, n_fft: int) -> torch.Tensor:
    window = torch.hann_window(n_fft, dtype=signal.dtype, device=signal.device)
    flat = signal.flatten(0, 1)  # stft wants (batch, samples)
    spec = torch.stft(flat, n_fft, hop_length=n_fft // 4, window=window, pad_mode="constant", return_complex=True)
    return spec.abs().unflatten(0, signal.shape[:2])


def stft_distance(
    x: torch.Tensor | np.ndarray,
    y: torch.Tensor | np.ndarray,
    *,
    fft_sizes: Sequence[int] = STFT_FFT_SIZES,
) -> torch.Tensor | float:
    """Multi-resolution STFT distance of ``x`` (the reconstruction) from ``y`` (the reference).

    For each FFT size n (default 2048, 1024, 512; Hann window of n, hop n/4), spectral
    convergence ``||Y - X||_F / ||Y||_F`` on magnitudes plus the mean absolute difference of
    natural-log magnitudes (floored at 1e-5); the result is the mean over the FFT sizes, 0 for
    identical signals. Spectral convergence is relative to ``y``, so the order of the arguments
    matters.
    """
    # Not auraloss's MultiResolutionSTFTLoss: it pools spectral convergence over the whole batch (no per-item
    # values) and pads the frames by reflection rather than with zeros (0.02 to 0.2 % apart on one clip).
    x, y, single = _as_batch(x, y)
    distances = []
    for n_fft in fft_sizes:
        mag_x, mag_y = _magnitudes(x, n_fft), _magnitudes(y, n_fft)
        diff = (mag_y - mag_x).flatten(1)
        convergence = diff.norm(dim=1) / mag_y.flatten(1).norm(dim=1).clamp_min(LOG_FLOOR)
        log_l1 = (mag_y.clamp_min(LOG_FLOOR).log() - mag_x.clamp_min(LOG_FLOOR).log()).abs().flatten(1).mean(dim=1)
        distances.append(convergence + log_l1)
    return _result(torch.stack(distances).mean(dim=0), single)


def si_sdr(
    estimate: torch.Tensor | np.ndarray, reference: torch.Tensor | np.ndarray, *, zero_mean: bool = True
) -> torch.Tensor | float:
    """Scale-invariant signal-to-distortion ratio in dB (Le Roux et al. 2019); higher is better.

    The estimate is projected on the reference; the ratio is the energy of that projection over
    the energy of the rest (``torchmetrics``, in float64, per channel, then averaged over channels).
    NaN where the reference or the estimate is silent (after removing the mean when ``zero_mean``):
    the projection is undefined there. An estimate that is an exact multiple of the reference is
    finite, not ``inf``: torchmetrics adds float64 epsilon (2.2e-16) to both energies, which caps it
    at about ``10 * log10(E / 2.2e-16)`` dB, E the estimate's energy (about 180 dB for one second at
    16 kHz and -20 dBFS).
    """
    estimate, reference, single = _as_batch(estimate, reference)
    estimate, reference = estimate.double(), reference.double()
    values = scale_invariant_signal_distortion_ratio(estimate, reference, zero_mean=zero_mean)
    # torchmetrics' epsilon turns the undefined 0/0 cases into made-up scores (0 dB for a silent
    # estimate, about -10 * log10(E / 2.2e-16) dB, some -170 dB, for a silent reference); NaN says so.
    values = values.masked_fill(_silent(reference, zero_mean) | _silent(estimate, zero_mean), math.nan)
    return _result(values.mean(dim=1), single)


def _silent(signal: torch.Tensor, zero_mean: bool) -> torch.Tensor:
    """Per channel: no energy left (a constant signal, when the mean is removed, counts as silent)."""
    energy = signal.pow(2).sum(dim=-1)
    if not zero_mean:
        return energy == 0
    centred = (signal - signal.mean(dim=-1, keepdim=True)).pow(2).sum(dim=-1)
    # Removing the mean of a constant leaves rounding residue, not signal.
    return centred <= torch.finfo(signal.dtype).eps * energy


def _mono_clips(x, y, metric: str) -> tuple[list[np.ndarray], list[np.ndarray], bool]:
    x, y, single = _as_batch(x, y)
    if x.shape[1] != 1:
        raise ValueError(f"{metric} is defined for mono signals; got {x.shape[1]} channels (mix them down first)")
    as_numpy = lambda t: t[:, 0].detach().cpu().double().numpy()  # noqa: E731
    return list(as_numpy(x)), list(as_numpy(y)), single


def _failed(reason: str, on_error: OnError) -> float:
    if on_error == "raise":
        raise AudioMetricError(reason)
    if on_error != "nan":
        raise ValueError(f"on_error must be 'raise' or 'nan', got {on_error!r}")
    warnings.warn(reason + "; scoring it NaN", RuntimeWarning, stacklevel=3)
    return math.nan


def stoi(
    x: torch.Tensor | np.ndarray,
    y: torch.Tensor | np.ndarray,
    sample_rate: int,
    *,
    on_error: OnError = "raise",
) -> torch.Tensor | float:
    """Short-time objective intelligibility (Taal et al. 2011) of ``y`` against the clean ``x``.

    Classic STOI (``pystoi``, ``extended=False``), in about [0, 1], higher is better; pystoi
    resamples to 10 kHz itself. Needs about 30 frames (~0.4 s) of speech left after its silence
    removal; otherwise see the module docstring for ``on_error``.
    """
    from pystoi import stoi as pystoi_stoi

    clean, processed, single = _mono_clips(x, y, "STOI")
    scores = []
    for item, (c, p) in enumerate(zip(clean, processed)):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            score = pystoi_stoi(c, p, sample_rate, extended=False)
        # pystoi warns and returns 1e-5 when too little speech is left; that is not a score.
        if any(issubclass(w.category, RuntimeWarning) for w in caught):
            reason = "fewer than 30 frames (~0.4 s) of speech are left after pystoi's silence removal"
            score = _failed(f"STOI cannot score clip {item}: {reason}", on_error)
        scores.append(float(score))
    return _result(torch.tensor(scores, dtype=torch.float64), single)


def pesq_wb(
    reference: torch.Tensor | np.ndarray,
    degraded: torch.Tensor | np.ndarray,
    sample_rate: int,
    *,
    on_error: OnError = "raise",
) -> torch.Tensor | float:
    """Wide-band PESQ (ITU-T P.862.2) MOS-LQO of ``degraded`` against ``reference``: ~1.04 to 4.64.

    Both are resampled to 16 kHz first. Raises ImportError when the ``pesq`` package is missing;
    for PESQ's own errors (no utterances detected, clip too short, ...) see the module docstring
    for ``on_error``.
    """
    try:
        from pesq import PesqError, pesq
    except ImportError as err:
        raise ImportError("pesq_wb needs the 'pesq' package: pip install pesq (builds with a C compiler)") from err

    ref_clips, deg_clips, single = _mono_clips(reference, degraded, "PESQ")
    scores = []
    for item, (ref, deg) in enumerate(zip(ref_clips, deg_clips)):
        if sample_rate != PESQ_SAMPLE_RATE:
            ref, deg = (AF.resample(torch.from_numpy(s), sample_rate, PESQ_SAMPLE_RATE).numpy() for s in (ref, deg))
        if not (np.any(ref) and np.any(deg)):
            # pesq divides by the peak; all zeros would give NaNs, not an error.
            scores.append(_failed(f"PESQ cannot score clip {item}: a signal is all zeros", on_error))
            continue
        try:
            scores.append(float(pesq(PESQ_SAMPLE_RATE, ref, deg, "wb")))
        except PesqError as err:
            # The C extension passes its message as bytes.
            detail = err.args[0].decode(errors="replace") if err.args and isinstance(err.args[0], bytes) else str(err)
            reason = f"{type(err).__name__}: {detail}" if detail else type(err).__name__
            scores.append(_failed(f"PESQ cannot score clip {item}: {reason}", on_error))
    return _result(torch.tensor(scores, dtype=torch.float64), single)


def _wait_for_cuda() -> None:
    if torch.cuda.is_available() and torch.cuda.is_initialized():  # fn may be what starts CUDA
        torch.cuda.synchronize()


def real_time_factor(fn: Callable[[], object], seconds_of_audio: float, repeats: int = 3) -> float:
    """Median wall time of ``fn()`` over ``repeats`` calls, divided by ``seconds_of_audio``.

    Below 1 is faster than real time. Pending CUDA work is waited for before each clock read, so
    asynchronous kernels are counted; run ``fn`` once beforehand if warm-up should not count.
    """
    if seconds_of_audio <= 0 or repeats < 1:
        raise ValueError("seconds_of_audio and repeats must be positive")
    times = []
    for _ in range(repeats):
        _wait_for_cuda()
        start = time.perf_counter()
        fn()
        _wait_for_cuda()
        times.append(time.perf_counter() - start)
    return statistics.median(times) / seconds_of_audio
