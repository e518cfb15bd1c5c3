"""The word error rate in `mmtok eval`: normalisation, transcripts beside the clips, and PocketSphinx
on real LibriVox speech (pocketsphinx-testdata), for the original and for a codec."""

import math
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import torchaudio.functional as AF
from train_helpers import TINY_AUDIO_MODEL

from mmtok.eval.harness import EvalOptions, run_eval
from mmtok.eval.metrics.speech_recognition import normalise_words, recognise, word_error_rate
from mmtok.eval.metrics.transcripts import item_stem, read_transcripts
from mmtok.models import build_tokenizer

SPEECH_FOLDERS = (
    Path("/usr/share/pocketsphinx/test/data/librivox"),  # the Debian package, as CI installs it
    Path(__file__).parents[1] / "data_cache" / "speech" / "pocketsphinx-testdata" / "librivox",  # fetch_data.sh
)
SHORT_CLIPS = ("sense_and_sensibility_01_austen_64kb-0880", "sense_and_sensibility_01_austen_64kb-0930")


def test_words_are_normalised_and_counted_against_the_reference():
    assert normalise_words("<s> He was NOT an ill-disposed, young man! </s> (utt-1)") == (
        "he was not an ill disposed young man"
    )
    reference = "he was not an ill disposed young man"  # 8 words
    assert word_error_rate(reference, reference.upper()) == 0.0
    assert word_error_rate(reference, "he was not an ill disposed old man") == pytest.approx(1 / 8)
    assert word_error_rate(reference, "he was an ill disposed young man") == pytest.approx(1 / 8)  # a deletion
    assert word_error_rate(reference, "") == 1.0
    assert math.isnan(word_error_rate("", "anything"))


def test_transcripts_come_from_sphinx_files_tsv_files_and_sidecars(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "transcription").write_text("<s> ten of clubs </s> (001)\nbroken line\nfive five (002)\n")
    (tmp_path / "b.tsv").write_text("clips/003.wav\tseven of hearts\n")
    sf.write(tmp_path / "004.wav", np.zeros(160), 16_000)
    (tmp_path / "004.txt").write_text("queen\nof spades\n")
    (tmp_path / "notes.txt").write_text("not a transcript: no audio beside it")
    assert read_transcripts(tmp_path) == {
        "001": "ten of clubs",
        "002": "five five",
        "003": "seven of hearts",
        "004": "queen of spades",
    }
    assert read_transcripts(tmp_path / "b.tsv") == {"003": "seven of hearts"}
    assert item_stem("librivox/clip-0870.wav#1") == item_stem("clip-0870.flac") == "clip-0870"


@pytest.fixture(scope="module")
def librivox():
    """A folder of two short LibriVox clips and their Sphinx transcription file."""
    folder = next((f for f in SPEECH_FOLDERS if (f / "transcription").is_file()), None)
    if folder is None:
        if os.environ.get("MMTOK_REQUIRE_SPEECH_DATA"):
            pytest.fail("pocketsphinx-testdata's LibriVox clips are missing (apt-get install pocketsphinx-testdata)")
        pytest.skip("no LibriVox clips: apt-get install pocketsphinx-testdata, or scripts/fetch_data.sh data_cache")
    return folder


def test_pocketsphinx_hears_real_speech_and_misses_more_of_a_muffled_copy(librivox):
    transcripts = read_transcripts(librivox)
    errors, muffled_errors = [], []
    for stem in SHORT_CLIPS:
        wave, rate = sf.read(librivox / f"{stem}.wav", dtype="float32")
        errors.append(word_error_rate(transcripts[stem], recognise(wave, rate)))
        # Telephone-band speech cut to 400 Hz and buried in noise: the words are gone.
        low = AF.lowpass_biquad(torch.from_numpy(wave), rate, 400.0).numpy()
        noisy = low + 0.3 * np.random.default_rng(0).standard_normal(low.shape).astype(np.float32) * np.abs(low).max()
        muffled_errors.append(word_error_rate(transcripts[stem], recognise(noisy, rate)))
    assert np.mean(errors) < 0.5  # about a third of the words wrong on clean read speech
    assert np.mean(muffled_errors) > np.mean(errors) + 0.3


def test_the_report_sets_each_systems_word_error_beside_the_originals(librivox, tmp_path):
    clips = tmp_path / "clips"
    clips.mkdir()
    for stem in SHORT_CLIPS:
        shutil.copy(librivox / f"{stem}.wav", clips)
    shutil.copy(librivox / "transcription", clips)
    codec = build_tokenizer(TINY_AUDIO_MODEL).save_pretrained(tmp_path / "codec")  # random weights: noise
    report = run_eval([codec], str(clips), tmp_path / "report", EvalOptions(media_items=0, sweep=False))
    original = report["baselines"]["reference"]["wer"]["mean"]
    tokenizer = report["tokenizers"][0]
    assert original < 0.5 and tokenizer["summary"]["wer"]["mean"] > original + 0.3
    assert all("wer" in row for row in tokenizer["items"])
    assert "wer" in tokenizer["matched"]["Opus"]["summary"]  # the codec at its rate gets one too
    # Without transcripts there is no WER at all (rather than a column of misses).
    (clips / "transcription").unlink()
    bare = run_eval([codec], str(clips), tmp_path / "bare", EvalOptions(media_items=0, sweep=False, baselines=False))
    assert "wer" not in bare["tokenizers"][0]["summary"]
