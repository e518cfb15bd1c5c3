"""Speech quality that needs no reference signal (DNSMOS) and speaker similarity between a clip and
its reconstruction, with the models that ship inside their packages (no download):

- DNSMOS P.835 (Reddy et al. 2022): the ONNX models in the ``speechmos`` wheel, run with
  onnxruntime. SIG (speech), BAK (background) and OVRL (overall) on a 1-5 MOS scale; clips are
  scored at 16 kHz in the models' 9.01 s windows. A shorter clip is repeated to fill one window
  (as Microsoft's script does; it then slides over the doubled copies as well, which only scores the
  same audio again); a longer one is cut into consecutive windows whose scores are averaged, where
  the reference script slides a window by 1 s (about 9 times the work for near the same mean).
- Speaker similarity: cosine of the ``resemblyzer`` voice-encoder embeddings (GE2E, the weights in
  its wheel) of the reference and the reconstruction; 1 for the same voice.

Both models are loaded once per process and kept.
"""

from __future__ import annotations

import functools
import warnings
from pathlib import Path

import numpy as np
import torch
import torchaudio.functional as AF

MODEL_RATE = 16_000  # both models take 16 kHz mono


def mono_16k(wave, sample_rate: int) -> np.ndarray:
    """One clip ((samples,) or (channels, samples)) as 16 kHz mono float32 in [-1, 1], as the speech models take it."""
    x = torch.as_tensor(wave, dtype=torch.float32)
    x = x.reshape(-1, x.shape[-1]).mean(dim=0) if x.ndim > 1 else x
    if sample_rate != MODEL_RATE:
        x = AF.resample(x, sample_rate, MODEL_RATE)
    return x.clamp(-1, 1).numpy()


@functools.cache
def _dnsmos_model():
    import onnxruntime as ort
    from speechmos import dnsmos

    folder = Path(dnsmos.__file__).parent / "dnsmos_models"

    class SingleThreadDNSMOS(dnsmos.DNSMOS):
        # speechmos' sessions take every core; evaluation runs beside other work, so use torch's thread count.
        def __init__(self, primary: str, p808: str):
            options = ort.SessionOptions()
            options.intra_op_num_threads = options.inter_op_num_threads = torch.get_num_threads()
            self.primary_model_path = primary
            self.onnx_sess = ort.InferenceSession(primary, options, providers=["CPUExecutionProvider"])
            self.p808_onnx_sess = ort.InferenceSession(p808, options, providers=["CPUExecutionProvider"])

    return SingleThreadDNSMOS(str(folder / "sig_bak_ovr.onnx"), str(folder / "model_v8.onnx"))


def dnsmos(wave, sample_rate: int) -> dict[str, float]:
    """{"sig", "bak", "ovrl"}: DNSMOS P.835 scores (about 1 to 5, higher is better) of one clip
    ``(samples,)`` or ``(channels, samples)`` in [-1, 1]; channels are mixed down."""
    from speechmos.dnsmos import INPUT_LENGTH

    samples = mono_16k(wave, sample_rate)
    window = int(INPUT_LENGTH * MODEL_RATE)
    if samples.size < window:
        samples = np.tile(samples, -(-window // max(samples.size, 1)))[:window]
    starts = range(0, samples.size - window + 1, window)
    scores = [_dnsmos_model()(samples[s : s + window], MODEL_RATE, False) for s in starts]
    return {key: float(np.mean([s[f"{key}_mos"] for s in scores])) for key in ("sig", "bak", "ovrl")}


def _resemblyzer():
    with warnings.catch_warnings():  # its imports use deprecated scipy and pkg_resources names; not ours to fix
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.filterwarnings("ignore", message="pkg_resources is deprecated")
        import resemblyzer
    return resemblyzer


@functools.cache
def _voice_encoder():
    return _resemblyzer().VoiceEncoder("cpu", verbose=False)


def speaker_embedding(wave, sample_rate: int) -> np.ndarray:
    """The unit-norm 256-d resemblyzer embedding of one clip (long silences trimmed by its VAD)."""
    samples = _resemblyzer().preprocess_wav(mono_16k(wave, sample_rate), MODEL_RATE)
    if samples.size < MODEL_RATE // 10:  # the VAD kept almost nothing: embed the clip as it is
        samples = mono_16k(wave, sample_rate)
    return _voice_encoder().embed_utterance(samples)


def speaker_similarity(reference, reconstruction, sample_rate: int) -> float:
    """Cosine similarity of the two clips' speaker embeddings, in [-1, 1]; higher is the same voice."""
    a, b = speaker_embedding(reference, sample_rate), speaker_embedding(reconstruction, sample_rate)
    return float(np.dot(a, b) / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-12))
