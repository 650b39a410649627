"""The one tokenizer BM25 indexing and querying share: lowercase, words, stopwords, stems."""

from __future__ import annotations

import re
from functools import lru_cache

TOKEN_RE = re.compile(r"[a-z0-9]+")

# Function words only; negations ("not", "no", "never") carry meaning in support
# questions ("card not working") and are kept.
STOPWORDS = frozenset(
    """
    a about above after again all am an and any are as at be because been before being below
    between both but by can could did do does doing down during each few for from further
    had has have having he her here hers herself him himself his how i if in into is it its
    itself just me more most my myself of off on once only or other our ours ourselves out
    over own same she should so some such than that the their theirs them themselves then
    there these they this those through to too under until up very was we were what when
    where which while who whom why will with would you your yours yourself yourselves s t ll
    ve re d m
    """.split()  # noqa: SIM905
)


@lru_cache(maxsize=1)
def _stemmer():  # type: ignore[no-untyped-def]
    import Stemmer

    return Stemmer.Stemmer("english")


class Tokenizer:
    """Text -> BM25 tokens. Its ``config`` is stored in the index manifest."""

    def __init__(self, stem: bool = True, stopwords: bool = True) -> None:
        self.stem = stem
        self.stopwords = stopwords

    @property
    def config(self) -> dict[str, object]:
        return {
            "lowercase": True,
            "pattern": TOKEN_RE.pattern,
            "stem": "snowball-english" if self.stem else None,
            "stopwords": "frontdesk-en" if self.stopwords else None,
        }

    @classmethod
    def from_config(cls, config: dict[str, object]) -> Tokenizer:
        return cls(stem=bool(config.get("stem")), stopwords=bool(config.get("stopwords")))

    def __call__(self, text: str) -> list[str]:
        words = TOKEN_RE.findall(text.lower().replace("'", ""))
        if self.stopwords:
            words = [w for w in words if w not in STOPWORDS]
        if self.stem and words:
            words = _stemmer().stemWords(words)
        return words
