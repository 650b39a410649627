"""TextVectorCache and the Suggester's query cache: hits skip the encoder and change nothing."""

from __future__ import annotations

import numpy as np
import pytest

from frontdesk import Settings, Suggester
from frontdesk.encoding.cache import TextVectorCache


def fake_encode(calls: list[list[str]]):  # type: ignore[no-untyped-def]
    def encode(texts: list[str]) -> np.ndarray:
        calls.append(list(texts))
        return np.array([[len(t), t.count("a"), 1.0] for t in texts], dtype=np.float32)

    return encode


def test_hits_are_served_from_the_cache_and_misses_encoded_once() -> None:
    calls: list[list[str]] = []
    cache = TextVectorCache(maxsize=10)
    first = cache.encode(["aa", "b"], fake_encode(calls))
    again = cache.encode(["b", "ccc", "aa"], fake_encode(calls))
    assert calls == [["aa", "b"], ["ccc"]]  # only the miss went to the encoder
    assert np.array_equal(again[[2, 0]], first)
    assert (cache.hits, cache.misses) == (2, 3)


def test_the_least_recently_used_text_goes_first() -> None:
    calls: list[list[str]] = []
    cache = TextVectorCache(maxsize=2)
    cache.encode(["x"], fake_encode(calls))
    cache.encode(["y"], fake_encode(calls))
    cache.encode(["x"], fake_encode(calls))  # x is now the most recent
    cache.encode(["z"], fake_encode(calls))  # evicts y
    assert len(cache) == 2
    calls.clear()
    cache.encode(["x", "y", "z"], fake_encode(calls))
    assert calls == [["y"]]


def test_size_zero_turns_it_off() -> None:
    assert TextVectorCache(0).encode(["a"], fake_encode([])) is None
    with pytest.raises(ValueError):
        TextVectorCache(-1)


def test_suggester_encodes_a_repeated_question_once(tiny_index, encoder) -> None:
    s = Suggester.load(tiny_index, encoder=encoder)
    question = "the bank sent my payout back, what now?"
    first = s.suggest(question, k=3)
    calls = encoder.calls
    again = s.suggest(question, k=3)
    assert encoder.calls == calls  # no encoder pass at all
    assert again.to_json() == first.to_json()
    off = Suggester.load(tiny_index, encoder=encoder, settings=Settings(query_cache_size=0))
    off.suggest(question, k=3)
    assert encoder.calls == calls + 1


def test_nothing_to_encode_is_not_an_error() -> None:
    assert TextVectorCache(4).encode([], fake_encode([])) is None
