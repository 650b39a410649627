"""Settings, overridable by environment variables with the prefix ``FRONTDESK_``.

``FRONTDESK_MODEL=/path/to/st-folder`` names another sentence-transformers
folder; ``FRONTDESK_FUSION=weighted`` switches hybrid fusion, and so on: each
field below maps to ``FRONTDESK_<FIELD NAME IN CAPITALS>``.
"""

from __future__ import annotations

import os
from typing import Literal

from pydantic import BaseModel, Field, ValidationError

from .errors import SettingsError

ENV_PREFIX = "FRONTDESK_"


class Settings(BaseModel):
    """Everything tunable in retrieval and encoding, with measured defaults."""

    model: str | None = Field(
        default=None, description="sentence-transformers folder; None = bundled all-MiniLM-L6-v2"
    )
    batch_size: int = Field(default=32, ge=1)
    device: str = "cpu"
    search_threads: int = Field(
        default=1,
        ge=0,
        description=(
            "threads FAISS, BLAS and LightGBM may use for a small batch of queries "
            "(< 16); 0 = the libraries' defaults. One query gains nothing from a pool "
            "and loses much when pools spin against the encoder's on few cores"
        ),
    )
    query_cache_size: int = Field(
        default=10_000, ge=0, description="texts whose vectors a Suggester keeps (LRU); 0 = off"
    )
    context_weight: float = Field(
        default=0.5, ge=0.0, description="weight of earlier turns in a conversation's vector"
    )
    context: Literal["mixed", "latest", "gated"] = Field(
        default="gated",
        description=(
            "which turns make a conversation's query: gated = per conversation, a learned "
            "gate picks the latest user text alone, mixed, or the earlier user turns alone "
            "(a vague follow-up; encoding/context_gate.py; hybrid retrieval, else latest); "
            "mixed = the latest text plus context_weight x the earlier turns (dense) and "
            "every user turn (BM25); latest = the latest user text alone (context weight 0, "
            "BM25 on it alone). A ranker serves only the mode it was trained with"
        ),
    )
    context_model: str | None = Field(
        default=None,
        description="context=gated: a gate JSON file; None = the index's own gate, else the "
        "bundled one; 'bundled' = the bundled one",
    )
    dense_index: Literal["auto", "flat", "hnsw", "ivf"] = Field(
        default="auto", description="FAISS index kind; auto = flat up to exact_max, IVF-SQ8 above"
    )
    title_documents: bool = Field(
        default=True,
        description=(
            "index each workflow's title as a document of its own beside its whole text "
            "(finds workflows without examples far better; one more vector per workflow)"
        ),
    )
    title_documents_max: int = Field(
        default=200_000,
        ge=0,
        description=(
            "catalogs with more workflows are built without title documents: at 1M the "
            "doubled document count took hybrid p50 from ~4 to ~10 ms"
        ),
    )
    description_documents: bool = Field(
        default=True,
        description=(
            "with title documents, index each workflow's description as a document of its "
            "own too (helps questions about workflows with few or no examples)"
        ),
    )
    exact_max: int = Field(
        default=100_000,
        ge=0,
        description="auto: vectors up to this count use exact search",
    )
    prototype_scan_max: int = Field(
        default=20_000,
        ge=0,
        description=(
            "workflows up to which every prototype is scored per query; above, prototypes "
            "rescore the k-NN candidates (a full scan of 100k took ~13 ms a query)"
        ),
    )
    dense_recall_target: float = Field(
        default=0.97,
        gt=0.0,
        le=1.0,
        description="approximate kinds: recall@10 vs exact the search knob is tuned to reach",
    )
    ivf_lists: int | None = Field(default=None, ge=1, description="IVF lists; None = ~sqrt(n)")
    hnsw_m: int = Field(default=32, ge=4)
    hnsw_ef_construction: int = Field(default=200, ge=8)
    dense_depth: int = Field(default=100, ge=1, description="example hits fetched per query")
    sparse_depth: int = Field(default=100, ge=1, description="BM25 hits fetched per query")
    dense_aggregate: Literal["max", "top3", "top5"] = "top3"
    prototype_weight: float | None = Field(
        default=None,
        ge=0.0,
        le=1.0,
        description="blend of workflow-prototype cosine into dense scores; None = tuned per index",
    )
    fusion: Literal["rrf", "weighted"] = "weighted"
    rrf_k: int = Field(default=60, ge=1)
    dense_weight: float = Field(default=0.85, ge=0.0, le=1.0)
    bm25_k1: float = Field(default=1.5, gt=0.0)
    bm25_b: float = Field(default=0.75, ge=0.0, le=1.0)

    @classmethod
    def from_env(cls, **overrides: object) -> Settings:
        """Defaults, then ``FRONTDESK_*`` variables, then explicit overrides."""
        values: dict[str, object] = {}
        for name in cls.model_fields:
            raw = os.environ.get(ENV_PREFIX + name.upper())
            if raw is not None and raw != "":
                values[name] = raw
        given = {k: v for k, v in overrides.items() if v is not None}
        values.update(given)
        try:
            return cls.model_validate(values)
        except ValidationError as exc:  # a user's value: name where it came from
            first = exc.errors()[0]
            name = str(first["loc"][0]) if first["loc"] else ""
            source = name if name in given else ENV_PREFIX + name.upper()
            raise SettingsError(f"{source}: {values.get(name)!r}: {first['msg']}") from None
