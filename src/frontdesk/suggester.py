"""Suggester: workflow suggestions for a text or a conversation, from an index (and a ranker)."""

from __future__ import annotations

import contextlib
import os
import threading
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from .config import Settings
from .encoding import ContextEncoder, EncodedContexts
from .encoding.cache import TextVectorCache
from .encoding.model_files import BUNDLED_MODEL_NAME
from .errors import IndexIntegrityError, ModelUnavailableError, SettingsError
from .index import WorkflowIndex
from .limits import check_k
from .loaders import check_queries
from .retrieval import DenseSearcher, HybridSearcher, Ranked, SparseSearcher
from .schema import Conversation, Suggestion, Suggestions

if TYPE_CHECKING:
    from .encoding.context_gate import ContextQueries

Mode = Literal["hybrid", "dense", "sparse"]
SMALL_BATCH = 16  # below this many queries, searches run on ``search_threads`` threads
Query = str | Conversation


def _recorded_model(index: WorkflowIndex) -> str | None:
    """The model folder the index was built with, if it is not the bundled one and still exists.

    So an index built with ``--model`` (a fine-tuned encoder) needs no extra
    setting to be searched; ``FRONTDESK_MODEL`` still overrides it.
    """
    model = (index.manifest.get("dense") or {}).get("model", {})
    path = model.get("path")
    if model.get("name") == BUNDLED_MODEL_NAME or not path or not Path(path).is_dir():
        return None
    return path


class Suggester:
    """Suggest workflows for a text or a conversation from an index built by ``index build``.

    >>> s = Suggester.load("demo-index")                     # doctest: +SKIP
    >>> s.suggest("my card hasn't arrived", k=3)[0].workflow_id  # doctest: +SKIP
    """

    def __init__(
        self,
        index: WorkflowIndex,
        *,
        encoder: ContextEncoder | None = None,
        settings: Settings | None = None,
        mode: Mode = "hybrid",
    ) -> None:
        self.index = index
        self.settings = settings or Settings.from_env()
        s = self.settings
        self.sparse = SparseSearcher(index.bm25, index.doc_workflow, depth=s.sparse_depth)
        self.dense: DenseSearcher | None = None
        self.encoder: ContextEncoder | None = None
        self.requested_mode: Mode = mode
        self.query_cache = TextVectorCache(s.query_cache_size)
        self.ranker: Any = None
        self._extractor: Any = None
        self._gate: Any = None  # context="gated": the ContextGate (``context_gate``)
        if mode != "sparse" and index.dense is not None:
            self.encoder = encoder or ContextEncoder(
                s.model or _recorded_model(index),
                batch_size=s.batch_size,
                device=s.device,
                context_weight=s.context_weight,
            )
            if self._encoder_usable():
                self.dense = DenseSearcher(
                    index.dense,
                    index.doc_workflow,
                    depth=s.dense_depth,
                    aggregate=s.dense_aggregate,
                    prototypes=index.prototypes,
                    prototype_weight=(
                        index.prototype_weight if s.prototype_weight is None else s.prototype_weight
                    ),
                    prototype_scan_max=s.prototype_scan_max,
                )
        elif mode == "dense":
            raise IndexIntegrityError(f"{index.root}: has no dense part; dense mode is unavailable")
        self.hybrid = (
            HybridSearcher(
                self.dense,
                self.sparse,
                fusion=s.fusion,
                dense_weight=s.dense_weight,
                rrf_k=s.rrf_k,
            )
            if self.dense is not None
            else None
        )
        self._load_gate()

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str],
        *,
        encoder: ContextEncoder | None = None,
        settings: Settings | None = None,
        mode: Mode = "hybrid",
        verify: bool = True,
        ranker: str | os.PathLike[str] | None = None,
    ) -> Suggester:
        """Load and verify an index folder (checksums, versions, model fingerprint).

        With ``ranker`` (a folder from ``frontdesk train ranker``), the hybrid
        candidates are reranked by LambdaRank and the top one gets a confidence
        score in [0, 1]; below the ranker's threshold the result is ``abstained``.
        """
        suggester = cls(
            WorkflowIndex.load(Path(path), verify=verify),
            encoder=encoder,
            settings=settings,
            mode=mode,
        )
        if ranker is not None:
            suggester.attach_ranker(ranker)
        return suggester

    def attach_ranker(self, path: str | os.PathLike[str]) -> None:
        """Rerank with a trained LambdaRank model (needs hybrid retrieval)."""
        from .ranking import LambdaRankReranker
        from .ranking.features import full_extractor

        reranker = LambdaRankReranker.load(path)
        if self.mode != "hybrid":
            raise IndexIntegrityError(f"{path}: a ranker needs hybrid retrieval, not {self.mode}")
        trained_for = reranker.config["index"]["model_sha256"]
        if trained_for != self.index.model_sha256:
            raise IndexIntegrityError(
                f"{path}: trained for an index built with another encoder; retrain the ranker"
            )
        trained_layout = reranker.config["index"].get("layout", "text")
        if trained_layout != self.index.layout:
            # the features of workflows without examples read their own texts, which
            # differ between layouts; those with examples barely notice
            warnings.warn(
                f"{path}: trained on an index whose documents are laid out differently "
                f"({trained_layout}; this index: {self.index.layout}); the features of "
                "workflows without examples will not mean quite the same: retrain it",
                RuntimeWarning,
                stacklevel=2,
            )
        trained_with = reranker.config.get("retrieval")
        trained_context = (trained_with or {}).get("context", "mixed")  # mixed: recorded absent
        if (
            trained_context != self.settings.context
            and "context" not in self.settings.model_fields_set
        ):
            # the context mode was not asked for: serve the ranker in the one it learned
            warnings.warn(
                f"{path}: trained with context {trained_context!r}, not the default "
                f"{self.settings.context!r}: served in its own mode; retrain it to serve "
                "the default",
                RuntimeWarning,
                stacklevel=2,
            )
            self.settings = self.settings.model_copy(update={"context": trained_context})
            self._load_gate()
        now = self.retrieval_signature()
        if trained_with != now:
            was = {"context": "mixed", **(trained_with or {})}
            here = {"context": "mixed", **now}
            changed = sorted(k for k in was.keys() | here.keys() if was.get(k) != here.get(k))
            if "context" in changed and "context_gate" in changed:
                changed.remove("context_gate")  # the gate's digest goes with the mode
            fix = [
                f"FRONTDESK_{k.upper()}={was[k]}"
                if k in Settings.model_fields and was.get(k) is not None
                else "FRONTDESK_CONTEXT_MODEL=the gate it learned with (a file, or bundled)"
                if k == "context_gate"
                else k
                for k in changed
            ]
            raise IndexIntegrityError(
                f"{path}: trained with other retrieval settings ("
                + "; ".join(f"{k} {was.get(k)!r}, here {here.get(k)!r}" for k in changed)
                + "); its features would not mean the same: serve it with "
                + " and ".join(fix)
                + ", or retrain it with the settings to serve (train ranker reads the "
                "same FRONTDESK_* variables)"
            )
        if reranker.config["index"]["workflows"] != len(self.index.workflows):
            warnings.warn(
                f"{path}: trained on an index of {reranker.config['index']['workflows']} "
                f"workflows, this one has {len(self.index.workflows)}",
                RuntimeWarning,
                stacklevel=2,
            )
        self.ranker = reranker
        self._extractor = full_extractor(self.index, reranker.priors, reranker.classifier)
        _rediscover_pools()  # LightGBM's OpenMP may have just been loaded

    def retrieval_signature(self) -> dict[str, Any]:
        """The retrieval settings a ranker's features depend on; inference must use the same."""
        s = self.settings
        assert self.dense is not None
        return {
            "fusion": s.fusion,
            "dense_weight": s.dense_weight,
            "rrf_k": s.rrf_k,
            "dense_aggregate": s.dense_aggregate,
            "dense_depth": s.dense_depth,
            "sparse_depth": s.sparse_depth,
            "prototype_weight": self.dense.prototype_weight,
            "context_weight": s.context_weight,
            # only when set, so rankers trained before the setting existed still attach
            **({"context": s.context} if s.context != "mixed" else {}),
            # the gate's choices are part of the queries a gated ranker learned from
            **({"context_gate": self.context_gate().fingerprint} if s.context == "gated" else {}),
        }

    @property
    def mode(self) -> Mode:
        """What actually runs: the requested mode, or ``"sparse"`` after a fallback."""
        return self.requested_mode if self.dense is not None else "sparse"

    def _encoder_usable(self) -> bool:
        assert self.encoder is not None
        try:
            fingerprint = self.encoder.fingerprint
        except ModelUnavailableError as exc:
            self._fall_back(str(exc))
            return False
        built_with = self.index.model_sha256
        if built_with != fingerprint:
            raise IndexIntegrityError(
                f"{self.index.root}: built with model "
                f"{self.index.manifest['dense']['model']['name']} (sha256 {str(built_with)[:12]}…) "
                f"but the configured encoder {self.encoder.path} has sha256 {fingerprint[:12]}…; "
                "query vectors would not match — rebuild the index or set FRONTDESK_MODEL"
            )
        return True

    def _fall_back(self, reason: str) -> None:
        warnings.warn(
            f"dense retrieval unavailable ({reason}); falling back to BM25 alone",
            RuntimeWarning,
            stacklevel=3,
        )
        self.dense = None
        self.hybrid = None

    def encode(self, queries: Sequence[Query]) -> EncodedContexts | None:
        """The one encoding of these queries (None when retrieval is BM25 alone)."""
        if self.dense is None or self.encoder is None:
            return None
        try:
            return self.encoder.encode_contexts(list(queries), cache=self.query_cache)
        except ModelUnavailableError as exc:
            self._fall_back(str(exc))
            return None

    def suggest(self, query: Query, k: int = 5) -> Suggestions:
        """The best ``k`` workflows for one text or conversation.

        Raises :class:`~frontdesk.errors.DataError` for a blank or over-long text, too
        many turns, or ``k`` outside 1 to ``Limits.k`` (docs/limits.md); a ``k`` above
        the catalog's size gives every workflow.
        """
        return self._suggest(check_queries([query], "query"), k, None)[0]

    def suggest_many(
        self, queries: Sequence[Query], k: int = 5, encoded: EncodedContexts | None = None
    ) -> list[Suggestions]:
        """Batch version of :meth:`suggest`; pass ``encoded`` to reuse an encoding."""
        return self._suggest(check_queries(queries, "queries"), k, encoded)

    def _suggest(
        self, convs: list[Conversation], k: int, encoded: EncodedContexts | None
    ) -> list[Suggestions]:
        k = check_k(k, len(self.index.workflows), "suggest")
        if not convs:
            return []
        if encoded is None and self.mode != "sparse":
            encoded = self.encode(convs)
        tokens = [self.query_tokens(c) for c in convs] if self.mode != "dense" else None
        searched = None  # the context gate's hits of the queries it chose
        with self._few_threads(len(convs)):
            if encoded is not None and self.settings.context != "mixed":
                encoded, tokens, used, searched = self.context_queries(convs, encoded, tokens)
            else:
                dense = encoded is not None and self.mode != "sparse"
                used = [self._query_from(c, dense=dense) for c in convs]
            results = self._search(encoded, tokens, k, searched)
        for res, variant in zip(results, used, strict=True):
            res.query_from = variant
        return results

    def _query_from(self, conv: Conversation, dense: bool) -> str:
        """Which turns made the query where no gate chose: mixed mixes whatever earlier
        turns there are (BM25 alone reads only the user's)."""
        if self.settings.context != "mixed":
            return "latest"
        earlier = conv.turns if dense else [t for t in conv.turns if t.role == "user"]
        return "mixed" if earlier else "latest"

    def context_queries(
        self,
        convs: Sequence[Conversation],
        encoded: EncodedContexts,
        tokens: list[list[str]] | None,
        keep_hits: bool | None = None,
    ) -> ContextQueries:
        """The query vectors and tokens ``settings.context`` makes of these conversations,
        and which turns made each (``used``: latest, mixed or earlier); ``keep_hits``
        (default: without a ranker, which searches deeper) keeps the gate's searches.

        ``latest``: the latest text's vector (tokens are already the latest
        text's). ``gated``: each conversation's variant chosen by the context
        gate (the latest text alone where hybrid retrieval is unavailable).
        ``encoded`` is never changed: a mode other than mixed returns a new
        encoding with new query vectors (its other fields shared).
        """
        from .encoding.context_gate import context_queries

        return context_queries(
            self.settings.context,
            self.hybrid if self.mode == "hybrid" else None,  # dense-only: the latest text
            encoded,
            convs,
            self.index.tokenizer,
            tokens,
            self.context_gate,
            self.ranker is None if keep_hits is None else keep_hits,
        )

    def _load_gate(self) -> None:
        """Load the gate up front when it will run: a bad one fails here, not on a request."""
        if self.settings.context == "gated" and self.mode == "hybrid":
            self.context_gate()

    def context_gate(self) -> Any:
        """The ContextGate of ``context="gated"``, loaded once: ``settings.context_model``'s
        file, else the index's own, else the bundled one (``context_gate_name``)."""
        from .encoding.context_gate import ContextGate, gate_source

        if self._gate is None:
            path, name = gate_source(self.settings.context_model, self.index.context_gate_file)
            try:
                self._gate = ContextGate.load(path)
            except (OSError, ValueError) as exc:
                if name == "index":  # the index's own file, checked at load: damaged since
                    raise IndexIntegrityError(f"{path}: {exc}; rebuild the index") from None
                raise SettingsError(f"FRONTDESK_CONTEXT_MODEL: {path}: {exc}") from None
            fitted_for = self._gate.lineage.get("catalog")
            # the index's own gate stays with it through updates, as its other tuning does
            if (
                name != "index"
                and fitted_for is not None
                and fitted_for != self.index.catalog_digest
            ):
                warnings.warn(
                    f"context gate {path} was fitted for another catalog "
                    f"({self._gate.lineage.get('workflows')} workflows, index "
                    f"{self._gate.lineage.get('index')}); it may serve this one poorly: "
                    f"fit one for it with `frontdesk train gate {self.index.root} …`",
                    RuntimeWarning,
                    stacklevel=2,
                )
        return self._gate

    @property
    def context_gate_name(self) -> str:
        """Which gate ``context="gated"`` uses: ``index`` (the index's own), ``bundled``, or
        the file ``FRONTDESK_CONTEXT_MODEL`` names."""
        from .encoding.context_gate import gate_source

        return gate_source(self.settings.context_model, self.index.context_gate_file)[1]

    def _few_threads(self, n_queries: int) -> Any:
        """Cap FAISS's, LightGBM's and BLAS's threads for a small batch (``search_threads``).

        On two cores, single queries measured 2-4x slower with the default
        pools: their threads spin between calls against the encoder's.
        """
        limit = self.settings.search_threads
        if limit <= 0 or n_queries >= SMALL_BATCH:
            return contextlib.nullcontext()
        return _capped_threads(limit)

    def _search(
        self,
        encoded: EncodedContexts | None,
        tokens: list[list[str]] | None,
        k: int,
        searched: list[Any] | None = None,
    ) -> list[Suggestions]:
        results: list[Suggestions] = []
        if self.ranker is not None and encoded is not None and self.hybrid is not None:
            assert tokens is not None
            return self._reranked(encoded, tokens, k)
        if self.mode == "sparse" or encoded is None:
            assert tokens is not None
            for s in self.sparse.search(tokens, k):
                results.append(self._suggestions(s, {"sparse": s}))
        elif self.mode == "dense":
            assert self.dense is not None
            for d in self.dense.search(encoded.vectors, k):
                results.append(self._suggestions(d, {"dense": d}))
        else:
            assert self.hybrid is not None and tokens is not None
            for fused, d, s in self._hybrid_search(encoded.vectors, tokens, k, searched):
                results.append(self._suggestions(fused, {"dense": d, "sparse": s}))
        return results

    def _hybrid_search(
        self,
        vectors: np.ndarray,
        tokens: list[list[str]],
        k: int,
        searched: list[Any] | None,
    ) -> list[tuple[Ranked, Ranked, Ranked]]:
        """``HybridSearcher.search``, except where the context gate already made the same
        search (same query, same depth: ``k`` within its depth): its hits, cut to ``k``."""
        from .encoding.context_gate import GATE_DEPTH

        assert self.hybrid is not None
        if searched is None or k > GATE_DEPTH or self.hybrid.depth < GATE_DEPTH:
            return self.hybrid.search(vectors, tokens, k)
        todo = [i for i, h in enumerate(searched) if h is None]
        fresh = iter(
            self.hybrid.search(vectors[todo], [tokens[i] for i in todo], k) if todo else []
        )
        return [next(fresh) if h is None else (h[0].top(k), h[1], h[2]) for h in searched]

    def query_tokens(self, conv: Conversation) -> list[str]:
        """BM25 tokens of a conversation: the latest text, then the earlier user turns.

        With ``context`` latest or gated, the latest text's alone (gated searches
        its own variants' tokens; BM25-only, it falls back to the latest text).
        """
        tokens = self.index.tokenizer(conv.text)
        if self.settings.context != "mixed":
            return tokens
        for turn in conv.turns:
            if turn.role == "user":
                tokens.extend(self.index.tokenizer(turn.text))
        return tokens

    def _reranked(
        self, encoded: EncodedContexts, tokens: list[list[str]], k: int
    ) -> list[Suggestions]:
        from .ranking.calibration import confidence_inputs
        from .ranking.features import retrieve_candidates

        assert self.hybrid is not None
        cands = retrieve_candidates(
            self.hybrid,
            encoded.vectors,
            tokens,
            self.ranker.top_n,
            encoded.context_vectors,
            self.ranker.context_candidates,
        )
        feats = self._extractor.extract(encoded, cands, [len(t) for t in tokens])
        out = []
        for c, x in zip(cands, feats, strict=True):
            scores = self.ranker.score(x)
            order = np.argsort(-scores, kind="stable")[:k]
            fused_top = float(c.fused.scores[0]) if len(c.fused) else 0.0
            conf = float(self.ranker.confidence(confidence_inputs(scores, fused_top, x))[0])
            ranked = Ranked(c.fused.ids[order], scores[order])
            sources = {"dense": c.dense, "sparse": c.sparse, "fused": c.fused}
            if c.context is not None:  # the earlier user turns' own dense hits
                sources["context"] = c.context
            res = self._suggestions(ranked, sources)
            res.confidence = conf
            res.abstained = conf < self.ranker.threshold
            out.append(res)
        return out

    def _suggestions(self, ranked: Ranked, sources: dict[str, Ranked]) -> Suggestions:
        lookups = {name: r.as_dict() for name, r in sources.items()}
        out = Suggestions()
        for rank, (w, score) in enumerate(
            zip(ranked.ids.tolist(), ranked.scores.tolist(), strict=True), 1
        ):
            wf = self.index.workflows[w]
            src = {
                name: {"score": table[w][0], "rank": float(table[w][1])}
                for name, table in lookups.items()
                if w in table
            }
            out.append(
                Suggestion(workflow_id=wf.id, title=wf.title, score=score, rank=rank, sources=src)
            )
        return out


_pools_lock = threading.Lock()
_pools: dict[str, Any] = {"controller": None, "blas": None, "active": 0}


@contextlib.contextmanager
def _capped_threads(limit: int) -> Iterator[None]:
    """OpenMP capped for this thread; BLAS (process-wide) capped while any caller is inside.

    An OpenMP thread count belongs to the calling thread, so concurrent
    requests cannot undo each other's. BLAS's count is global: the first
    caller in caps it and the last one out restores the original, so two
    overlapping requests cannot leave it capped for good.
    """
    with _pools_lock:
        if _pools["controller"] is None:  # after the encoder loaded: its libraries are known
            from threadpoolctl import ThreadpoolController

            _pools["controller"] = ThreadpoolController()
        if _pools["active"] == 0:
            _pools["blas"] = _pools["controller"].limit(limits=limit, user_api="blas")
        _pools["active"] += 1
    try:
        with _pools["controller"].limit(limits=limit, user_api="openmp"):
            yield
    finally:
        with _pools_lock:
            _pools["active"] -= 1
            if _pools["active"] == 0:
                _pools["blas"].restore_original_limits()
                _pools["blas"] = None


def _rediscover_pools() -> None:
    """Forget the known thread pools (libraries loaded since are found at the next cap)."""
    with _pools_lock:
        if _pools["active"] == 0:
            _pools["controller"] = None
