"""Generated audio for tests: a sine, and a voiced speech stand-in."""

import math

import numpy as np
from scipy.signal import lfilter

SR = 16_000


def sine(freq: float, seconds: float, sample_rate: int, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(round(seconds * sample_rate)) / sample_rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def speech_like(seconds: float = 4.0, sample_rate: int = SR, seed: int = 0) -> np.ndarray:
    """Voiced speech stand-in: glottal pulses with a wandering pitch, through vowel formants
    that change every syllable, under a ~4 syllables/s envelope with pauses (PESQ and STOI need
    speech-like activity to score anything)."""
    rng = np.random.default_rng(seed)
    n = round(seconds * sample_rate)
    t = np.arange(n) / sample_rate
    pitch = 120 + 25 * np.sin(2 * np.pi * 0.7 * t) + 10 * np.sin(2 * np.pi * 3.1 * t)
    pulses = np.diff(np.floor(np.cumsum(pitch) / sample_rate), prepend=0.0)  # one per glottal period
    source = lfilter([1.0], [1.0, -0.97], pulses) + 0.01 * rng.standard_normal(n)
    vowels = [(730, 1090, 2440), (270, 2290, 3010), (530, 1840, 2480), (300, 870, 2240), (660, 1720, 2410)]
    syllable = round(0.25 * sample_rate)
    radius = math.exp(-math.pi * 80 / sample_rate)  # 80 Hz formant bandwidth
    out = np.zeros(n)
    for k, start in enumerate(range(0, n, syllable)):
        segment = source[start : start + syllable]
        for formant in vowels[k % len(vowels)]:
            poles = [1.0, -2 * radius * math.cos(2 * math.pi * formant / sample_rate), radius**2]
            segment = lfilter([1 - radius], poles, segment)
        out[start : start + syllable] = segment
    out *= np.clip(np.sin(2 * np.pi * 2.0 * t), 0, None) ** 0.5
    return (0.3 * out / np.abs(out).max()).astype(np.float32)
