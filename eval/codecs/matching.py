"""The search that sets a classical codec at a tokenizer's bits: its cheapest setting that reaches them."""

from __future__ import annotations

from collections.abc import Callable, Sequence


def cheapest_reaching(settings: Sequence, code: Callable, bits: Callable, target: float):
    """(matched, lowest) over `settings` ordered from the fewest bits to the most: `lowest` is the
    first setting's result; `matched` the first whose bits reach `target`, found by halving the
    range (about 7 encodes instead of up to 95), or None when even the last stays below. Bisection
    takes the bits to grow along the settings, which holds for JPEG, WebP, AVIF and H.264 except
    for a few bytes here and there between neighbouring settings."""
    lowest = code(settings[0])
    if bits(lowest) >= target:
        return lowest, lowest
    best = code(settings[-1])
    if bits(best) < target:
        return None, lowest
    low, high = 0, len(settings) - 1  # bits(low) < target <= bits(high)
    while high - low > 1:
        middle = (low + high) // 2
        result = code(settings[middle])
        if bits(result) >= target:
            high, best = middle, result
        else:
            low = middle
    return best, lowest
