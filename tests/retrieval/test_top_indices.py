"""top_indices: the sampled-threshold shortcut returns exactly what a full partial sort does."""

from __future__ import annotations

import numpy as np
import pytest

from frontdesk.retrieval.sparse import top_indices


@pytest.mark.parametrize("zeros", [0.0, 0.9, 0.9999])
def test_same_scores_as_a_full_sort_at_a_million(zeros: float) -> None:
    rng = np.random.default_rng(int(zeros * 1e4))
    scores = rng.gamma(2.0, 1.0, 1_000_000).astype(np.float32)
    scores[rng.random(len(scores)) < zeros] = 0.0  # most documents share no query word
    for depth in (1, 10, 100):
        got = top_indices(scores, depth)
        want = np.sort(scores)[::-1][:depth]
        assert len(got) == depth and len(set(got.tolist())) == depth
        assert np.array_equal(scores[got], want)  # best first, nothing missed


def test_small_arrays_take_the_plain_path() -> None:
    scores = np.array([0.5, 2.0, 0.0, 1.0], dtype=np.float32)
    assert top_indices(scores, 2).tolist() == [1, 3]
    assert top_indices(scores, 4).tolist() == [1, 3, 0, 2]
