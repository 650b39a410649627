"""Comparing two engines' results: the same keys, strings and ints; floats to a relative gap."""

from __future__ import annotations

from typing import Any


def worst_gap(a: Any, b: Any, path: str = "") -> tuple[float, str]:
    """The largest relative difference between two results' floats, and where it is.

    Keys, lists, strings and ints must be equal (``…/engine`` excepted); floats
    that are zero up to rounding (a policy compared with itself) are skipped.
    """
    worst, where = 0.0, ""
    if isinstance(a, dict):
        assert set(a) == set(b), path
        pairs = [(a[key], b[key], f"{path}/{key}") for key in a]
    elif isinstance(a, list):
        pairs = [(x, y, f"{path}[{i}]") for i, (x, y) in enumerate(zip(a, b, strict=True))]
    elif isinstance(a, float):
        if max(abs(a), abs(b)) > 1e-12:
            return abs(a - b) / max(abs(a), abs(b)), path
        return 0.0, path
    else:
        assert path.endswith("engine") or a == b, path
        return 0.0, path
    for x, y, p in pairs:
        gap, at = worst_gap(x, y, p)
        if gap > worst:
            worst, where = gap, at
    return worst, where
