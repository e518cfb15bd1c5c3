"""Per-item scores -> means with 95 % confidence intervals (Student's t over the items).

A t interval rather than a bootstrap: it is deterministic, needs no resampling seed, and with the
handful of held-out items an evaluation usually has, a percentile bootstrap's interval is too
narrow. NaN scores (a metric that could not score an item, e.g. PESQ on a clip without speech) are
left out and counted.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
from scipy import stats

CONFIDENCE = 0.95


def mean_ci(values: Iterable[float], confidence: float = CONFIDENCE) -> dict:
    """{"mean", "low", "high", "n", "missing"}: the mean of the finite values and its t interval
    (low = high = mean for one value; all None when no value is finite)."""
    array = np.asarray([float(v) for v in values], dtype=np.float64)
    finite = array[np.isfinite(array)]
    missing = int(array.size - finite.size)
    if finite.size == 0:
        return {"mean": None, "low": None, "high": None, "n": 0, "missing": missing}
    mean = float(finite.mean())
    if finite.size == 1 or float(finite.std()) == 0.0:
        return {"mean": mean, "low": mean, "high": mean, "n": int(finite.size), "missing": missing}
    sem = float(finite.std(ddof=1)) / math.sqrt(finite.size)
    half = float(stats.t.ppf(0.5 + confidence / 2, df=finite.size - 1)) * sem
    return {"mean": mean, "low": mean - half, "high": mean + half, "n": int(finite.size), "missing": missing}


def summarise(rows: list[dict], keys: Iterable[str]) -> dict[str, dict]:
    """{key: mean_ci over the rows that have the key} for each key."""
    return {key: mean_ci(row[key] for row in rows if key in row) for key in keys}


def means(summary: dict[str, dict]) -> dict[str, float | None]:
    """{key: its mean} of a `summarise` result: what tables print."""
    return {key: entry["mean"] for key, entry in summary.items()}


def numeric_keys(rows: list[dict]) -> list[str]:
    """The keys holding numbers in any row, in first-seen order."""
    keys: dict[str, None] = {}
    for row in rows:
        for key, value in row.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                keys.setdefault(key)
    return list(keys)
