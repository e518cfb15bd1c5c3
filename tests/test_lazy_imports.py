"""Importing a tokenizer loads its own modality's input path and no other's (issue 23 item 4): the
`mmtok.data` names are imported on first access, no family imports another family's module, and
vector-quantize-pytorch (seconds to import) loads only when one of its kinds is built."""

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

import mmtok.data

# What the checks look for: the modalities' readers and input paths, and the slow imports.
WATCHED = (
    *("av", "mne", "wfdb", "soundfile", "torchaudio"),
    *(f"mmtok.data.{name}_io" for name in ("image", "audio", "video", "eeg", "ecg")),
    *("vector_quantize_pytorch", "mmtok.train", "mmtok.eval"),
)
TOKENIZER_CLASS = "from mmtok.models import tokenizer_class\ntokenizer_class({!r})"
# Each snippet runs in a fresh interpreter; the WATCHED modules in sys.modules afterwards are its result.
SNIPPETS = {
    "mmtok.data and the image tokenizer": "import mmtok, mmtok.data, mmtok.models, mmtok.models.image",
    **{family: TOKENIZER_CLASS.format(family) for family in ("image1d", "audio", "video", "eeg", "ecg")},
    "an EEG tokenizer built": "from mmtok.models import build_tokenizer, flavour\nbuild_tokenizer(flavour('eeg'))",
    "lazy names": (
        "import mmtok.data\n"
        "from mmtok.data import VideoInputSpec, EEGDataset\n"
        "from mmtok.data.video_io import VideoInputSpec as direct\n"
        "assert VideoInputSpec is direct and mmtok.data.EEGDataset is EEGDataset"
    ),
}


def _loaded_after(code: str) -> set[str]:
    script = f"import json, sys\n{code}\nprint(json.dumps([m for m in {WATCHED!r} if m in sys.modules]))"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, env=env)
    return set(json.loads(result.stdout.splitlines()[-1]))


@pytest.fixture(scope="module")
def loaded() -> dict[str, set[str]]:
    """Every snippet's result, two interpreters at a time (each spends seconds importing torch)."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(zip(SNIPPETS, pool.map(_loaded_after, SNIPPETS.values())))


def test_importing_mmtok_data_and_the_image_tokenizer_loads_no_other_modality(loaded):
    assert loaded["mmtok.data and the image tokenizer"] == {"mmtok.data.image_io"}


@pytest.mark.parametrize(
    "family, allowed",
    [
        ("image1d", {"mmtok.data.image_io"}),
        ("audio", {"mmtok.data.audio_io", "soundfile", "torchaudio"}),
        # A video's first frame is an image: the video path is built on the image one.
        ("video", {"mmtok.data.video_io", "mmtok.data.image_io"}),
        ("eeg", {"mmtok.data.eeg_io"}),
        # ECG runs on the EEG tokenizer and the EEG input path's steps.
        ("ecg", {"mmtok.data.ecg_io", "mmtok.data.eeg_io"}),
    ],
)
def test_a_tokenizer_class_loads_only_its_own_input_path(loaded, family, allowed):
    assert loaded[family] == allowed


def test_a_tokenizer_on_mmtoks_own_quantizer_never_loads_vector_quantize_pytorch(loaded):
    assert loaded["an EEG tokenizer built"] == {"mmtok.data.eeg_io"}  # residual VQ: mmtok's own codebooks


def test_lazy_names_resolve_to_the_same_objects(loaded):
    assert {"mmtok.data.video_io", "mmtok.data.eeg_io"} <= loaded["lazy names"]
    assert not {"av", "mne", "wfdb"} & loaded["lazy names"]  # the readers themselves load on first read


def test_every_exported_name_resolves():
    from mmtok.data import sample_images as function
    from mmtok.data.sample_images import sample_images

    assert function is sample_images and callable(mmtok.data.sample_images)
    for name in mmtok.data.__all__:
        assert getattr(mmtok.data, name) is not None, name
    assert set(mmtok.data.__all__) <= set(dir(mmtok.data))
    with pytest.raises(AttributeError, match="no attribute 'VideoReader'"):
        mmtok.data.VideoReader  # noqa: B018
