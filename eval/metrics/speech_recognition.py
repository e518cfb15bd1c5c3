"""Word error rate of speech, recognised by PocketSphinx (CMU Sphinx) with the US-English acoustic
model, dictionary and language model that ship inside the `pocketsphinx` wheel (no download).

PocketSphinx is a small, dated recogniser: on clean LibriVox read speech it already gets roughly a
third of the words wrong. Its WER on a reconstruction means little alone; the eval report sets it
beside the WER of the original clip, and the difference is what the codec added. The word
alignment (substitutions, deletions, insertions over the reference's words) is jiwer's.
"""

from __future__ import annotations

import functools
import os
import re

import numpy as np

from mmtok.eval.metrics.speech_quality import MODEL_RATE, mono_16k

_MARKUP = re.compile(r"</?s>|\(\S+\)\s*$")  # Sphinx transcripts: <s> words </s> (utterance id)
_NOT_WORD = re.compile(r"[^a-z0-9' ]+")


def normalise_words(text: str) -> str:
    """Lower case, Sphinx markup, punctuation (apostrophes kept) and extra spaces removed."""
    text = _MARKUP.sub(" ", text.lower())
    return " ".join(_NOT_WORD.sub(" ", text).split())


@functools.cache
def _decoder():
    from pocketsphinx import Decoder

    # The wheel's en-US model is the default; its log goes nowhere instead of stderr.
    return Decoder(samprate=MODEL_RATE, logfn=os.devnull)


def recognise(wave, sample_rate: int) -> str:
    """The words PocketSphinx hears in one clip ((samples,) or (channels, samples) in [-1, 1]), normalised."""
    samples = mono_16k(wave, sample_rate)
    pcm = (np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes()
    decoder = _decoder()
    decoder.start_utt()
    decoder.process_raw(pcm, full_utt=True)
    decoder.end_utt()
    hypothesis = decoder.hyp()
    return normalise_words(hypothesis.hypstr) if hypothesis is not None else ""


def word_error_rate(reference: str, hypothesis: str) -> float:
    """(substitutions + deletions + insertions) / words of the reference, both normalised; NaN for
    a reference without words. Above 1 when the hypothesis inserts more words than the reference has."""
    import jiwer

    reference, hypothesis = normalise_words(reference), normalise_words(hypothesis)
    if not reference:
        return float("nan")
    if not hypothesis:
        return 1.0  # every reference word deleted (jiwer refuses an empty hypothesis)
    return float(jiwer.wer(reference, hypothesis))


def recognised_wer(transcript: str, wave, sample_rate: int) -> float:
    return word_error_rate(transcript, recognise(wave, sample_rate))
