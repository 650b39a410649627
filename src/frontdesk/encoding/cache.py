"""TextVectorCache: recently encoded texts and their vectors, least recently used dropped first.

Support traffic repeats itself ("where is my card?", "yes please", "any
update?"): a hit skips the encoder, the one costly step of a suggestion.
Keyed by the exact text, so a hit returns exactly the vector a miss would.
Thread-safe; the encoder runs outside the lock.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence

import numpy as np


class TextVectorCache:
    """An LRU map from text to its (normalised) vector; ``maxsize`` 0 keeps nothing."""

    def __init__(self, maxsize: int = 10_000) -> None:
        if maxsize < 0:
            raise ValueError("maxsize must be >= 0")
        self.maxsize = maxsize
        self._items: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._items)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def encode(
        self, texts: Sequence[str], encode: Callable[[list[str]], np.ndarray]
    ) -> np.ndarray | None:
        """Vectors for ``texts``: cached rows, and ``encode`` called once on the misses.

        Returns None when the cache is off (``maxsize`` 0) or there is nothing to
        encode, so the caller encodes as usual.
        """
        if self.maxsize == 0 or len(texts) == 0:
            return None
        found: dict[int, np.ndarray] = {}
        with self._lock:
            for i, t in enumerate(texts):
                v = self._items.get(t)
                if v is not None:
                    self._items.move_to_end(t)
                    found[i] = v
            self.hits += len(found)
            self.misses += len(texts) - len(found)
        missing = [i for i in range(len(texts)) if i not in found]
        fresh = encode([texts[i] for i in missing]) if missing else None
        if fresh is not None:
            with self._lock:
                for i, v in zip(missing, fresh, strict=True):
                    self._items[texts[i]] = v.copy()  # not a view: the batch can be freed
                    self._items.move_to_end(texts[i])
                while len(self._items) > self.maxsize:
                    self._items.popitem(last=False)
        if fresh is not None and not found:
            return fresh
        first = fresh[0] if fresh is not None else next(iter(found.values()))
        out = np.empty((len(texts), first.shape[0]), dtype=np.float32)
        for i, v in found.items():
            out[i] = v
        if fresh is not None:
            out[missing] = fresh
        return out
