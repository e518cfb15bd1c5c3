"""Transcripts of speech items, for the word error rate of `mmtok eval`: {audio file stem: words}.

Found in a file or a folder (and its subfolders), in any mix of:
- Sphinx transcription files (named `transcription` or `*.transcription`): one utterance a line,
  `<s> words </s> (id)` or `words (id)`, the id being the audio file's stem (pocketsphinx-testdata's);
- tab-separated files (`*.tsv`): `stem<TAB>words` a line;
- sidecar text files: `clip.txt` beside `clip.wav` holds that clip's words.
An item is looked up by the stem of its name (the part after the last `/`, without its suffix or
`#n` example index). Stems are assumed unique; a later file's entry replaces an earlier one's.
"""

from __future__ import annotations

import re
from pathlib import Path

from mmtok.modalities import MODALITIES

_SPHINX_LINE = re.compile(r"^(?P<words>.*?)\s*\((?P<id>[^()\s]+)\)\s*$")


def _sphinx(text: str) -> dict[str, str]:
    entries = {}
    for line in text.splitlines():
        match = _SPHINX_LINE.match(line.strip())
        if match:
            entries[match["id"]] = re.sub(r"</?s>", " ", match["words"]).strip()
    return entries


def _tsv(text: str) -> dict[str, str]:
    rows = (line.split("\t", 1) for line in text.splitlines() if "\t" in line)
    return {Path(stem.strip()).stem: words.strip() for stem, words in rows}


def _is_sphinx(path: Path) -> bool:
    return path.name == "transcription" or path.suffix == ".transcription"


def _sidecar(path: Path) -> bool:
    """A .txt file with an audio file of the same stem beside it."""
    return path.suffix == ".txt" and any(
        path.with_suffix(extension).exists() for extension in MODALITIES["audio"].extensions
    )


def read_transcripts(path: str | Path) -> dict[str, str]:
    """The transcripts in `path` (a file or folder, module docstring); {} when it holds none."""
    path = Path(path)
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    transcripts: dict[str, str] = {}
    for file in files:
        if _is_sphinx(file):
            transcripts.update(_sphinx(file.read_text(errors="replace")))
        elif file.suffix == ".tsv":
            transcripts.update(_tsv(file.read_text(errors="replace")))
        elif _sidecar(file):
            transcripts[file.stem] = " ".join(file.read_text(errors="replace").split())
    return transcripts


def item_stem(item: str) -> str:
    """The stem an item is looked up by: "librivox/clip-0870.wav#1" -> "clip-0870"."""
    return Path(item.split("#", 1)[0]).stem
