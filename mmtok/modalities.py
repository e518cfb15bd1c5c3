"""The modality table: everything that differs per modality, in one entry each.

Nothing else in mmtok compares a modality name: sources list files by `extensions`, parquet and
`datasets` sources look for `parquet_columns`, `mmtok eval` builds the entry's `suite` and draws its
`figures`, and `families` are the registry's tokenizer families that take this modality (a test
checks them against each family's class). Classes are named as "module:Class" and imported when
first asked for, so reading the table imports no modality's code. A new modality adds one entry.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Modality:
    name: str
    input_spec: str  # "module:Class" of its InputSpec (mmtok.data)
    extensions: tuple[str, ...]  # files a folder, glob or tar source lists as items
    parquet_columns: tuple[str, ...]  # tried in order when no column is given
    suite: str  # "module:Class" of its `mmtok eval` Suite
    families: tuple[str, ...]  # registry families (mmtok.models.registry) whose tokenizers take it
    # Files read beside a header file (BrainVision .eeg, WFDB .dat): counted apart, not as stray files.
    companion_extensions: tuple[str, ...] = ()
    figures: tuple[str, ...] = ()  # report figures beyond every modality's (mmtok.eval.report.plots): "grid"
    sample_suffix: str = ""  # the file a decoded item is written as (InputSpec.write_file)

    def spec_class(self) -> type:
        from mmtok.models.registry import load_target

        return load_target(self.input_spec)

    def suite_class(self) -> type:
        from mmtok.models.registry import load_target

        return load_target(self.suite)


MODALITIES: dict[str, Modality] = {
    m.name: m
    for m in (
        Modality(
            "image",
            "mmtok.data.image_io:ImageInputSpec",
            (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif"),
            # "image" is the Hugging Face convention, the others come from webdataset shards.
            ("image", "jpg", "png", "jpeg", "webp"),
            "mmtok.eval.suites.image:ImageSuite",
            ("image", "image1d", "hf-chameleon", "hf-janus", "hf-emu3", "diffusers-vqmodel"),
            figures=("grid",),
            sample_suffix=".png",
        ),
        Modality(
            "audio",
            "mmtok.data.audio_io:AudioInputSpec",
            (".wav", ".flac", ".ogg", ".oga", ".mp3"),
            ("audio", "wav", "flac", "mp3"),
            "mmtok.eval.suites.audio:AudioSuite",
            ("audio", "hf-encodec", "hf-dac", "hf-mimi", "hf-xcodec", "hf-xcodec2"),
            sample_suffix=".wav",
        ),
        Modality(
            "video",
            "mmtok.data.video_io:VideoInputSpec",
            (".mp4", ".webm", ".mkv", ".avi", ".mov"),
            ("video", "mp4", "webm"),
            "mmtok.eval.suites.video:VideoSuite",
            ("video",),
            sample_suffix=".mp4",
        ),
        Modality(
            "eeg",
            "mmtok.data.eeg_io:EEGInputSpec",
            (".edf", ".bdf", ".fif", ".vhdr", ".set", ".npz"),
            ("eeg", "signal"),
            "mmtok.eval.suites.eeg:EEGSuite",
            ("eeg",),
            companion_extensions=(".eeg", ".vmrk", ".fdt"),
        ),
        Modality(
            "ecg",
            "mmtok.data.ecg_io:ECGInputSpec",
            (".hea", ".edf"),  # WFDB headers (their samples in .dat beside them), EDF
            ("ecg", "signal"),
            "mmtok.eval.suites.ecg:ECGSuite",
            ("ecg",),
            companion_extensions=(".dat", ".atr", ".qrs", ".xws"),
        ),
    )
}


def modality(name: str) -> Modality:
    """The table's entry for `name`; an unknown name is an error that lists the known ones."""
    try:
        return MODALITIES[name]
    except KeyError:
        raise ValueError(f"unknown modality {name!r}; mmtok knows {', '.join(MODALITIES)}") from None
