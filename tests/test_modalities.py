"""The modality table is the one place that knows modality names."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mmtok.modalities import MODALITIES, modality
from mmtok.models.registry import FAMILIES, tokenizer_class

ROOT = Path(__file__).parents[1]


def test_every_family_is_listed_under_its_own_modality():
    listed = {family: m.name for m in MODALITIES.values() for family in m.families}
    assert sorted(listed) == sorted(FAMILIES)
    for family, name in listed.items():
        assert tokenizer_class(family).modality == name, family


def test_each_entry_names_its_own_spec_and_suite():
    for name, entry in MODALITIES.items():
        assert entry.spec_class().modality == name and entry.suite_class().modality == name
        assert (
            entry.extensions and entry.parquet_columns and not set(entry.extensions) & set(entry.companion_extensions)
        )
    with pytest.raises(ValueError, match="unknown modality 'smell'"):
        modality("smell")


def test_no_code_outside_the_table_switches_on_a_modality_name():
    names = "|".join(MODALITIES)
    switch = re.compile(rf"""modality\W*\s*(==|!=|\bin\b)\s*[(\[]?\s*["']|["']({names})["']\s*(==|!=)""")
    offenders = [
        f"{path.relative_to(ROOT)}:{number}"
        for folder in ("mmtok", "models", "train", "eval")
        for path in (ROOT / folder).rglob("*.py")
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if switch.search(line)
    ]
    assert offenders == []
