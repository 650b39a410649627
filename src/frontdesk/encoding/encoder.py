"""ContextEncoder: one sentence-transformers model for texts and whole conversations.

The model folder is a sentence-transformers folder, or a fast encoder built
from one by ``frontdesk train distill`` (ONNX, int8 ONNX or static; see
``fast.py``), recognised by its ``manifest.json`` (kind ``frontdesk-encoder``).

A conversation's vector is the latest user text's vector plus a weighted,
recency-decayed mean of the earlier turns' vectors (user turns count fully,
agent turns half), renormalised:

    v = normalise(e(text) + w * normalise(sum_i d^i * r_i * e(turn_i)))

The latest words dominate (they are what the user needs now); earlier turns
pull an ambiguous follow-up ("any update?") towards what was discussed. The
user's profile does not enter the vector: profile fields are categorical and
travel beside it (``EncodedContexts.profiles``) for the ranker and the router,
which learn what they mean from outcomes instead of from text similarity.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ModelUnavailableError
from ..schema import Conversation, Turn, UserProfile
from .backend import FastBackend, is_fast_encoder, read_manifest
from .cache import TextVectorCache
from .fast import load_backend
from .model_files import (
    env_threads,
    model_fingerprint,
    model_name,
    resolve_model,
)
from .onnx_copy import encoder_runtime, onnx_copy

ProgressFn = Callable[[int], None]

TURN_DECAY = 0.5
AGENT_TURN_WEIGHT = 0.5


@dataclass
class EncodedContexts:
    """The one encoding of a batch of contacts, shared by suggestion and routing."""

    vectors: np.ndarray  # (n, d) conversation vectors (latest text + earlier turns)
    text_vectors: np.ndarray  # (n, d) the latest user text alone
    turn_vectors: list[np.ndarray]  # per contact, (t_i, d) earlier turns, oldest first
    profiles: list[UserProfile] = field(default_factory=list)
    # (n, d) the earlier user turns alone (``_earlier_request``); zero without any
    context_vectors: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.vectors.shape[0])

    def take(self, rows: Sequence[int]) -> EncodedContexts:
        """The encodings of some contacts, in the order given."""
        idx = list(rows)
        return EncodedContexts(
            vectors=self.vectors[idx],
            text_vectors=self.text_vectors[idx],
            turn_vectors=[self.turn_vectors[i] for i in idx],
            profiles=[self.profiles[i] for i in idx] if self.profiles else [],
            context_vectors=None if self.context_vectors is None else self.context_vectors[idx],
        )


class ContextEncoder:
    """Wraps a sentence-transformers model or a fast encoder; loads lazily, offline, on the CPU."""

    def __init__(
        self,
        model_path: str | os.PathLike[str] | None = None,
        *,
        batch_size: int = 32,
        device: str = "cpu",
        context_weight: float = 0.5,
        runtime: str | None = None,
    ) -> None:
        self._path = Path(model_path) if model_path else None
        # onnx: a sentence-transformers folder runs on its cached ONNX copy (onnx_copy.py)
        self.runtime = encoder_runtime(runtime)
        self.batch_size = batch_size
        self.device = device
        self.context_weight = context_weight
        self._model: Any = None
        self._st: Any = None
        self.calls = 0  # encode passes over the model; lets callers show nothing is encoded twice

    @property
    def path(self) -> Path:
        self._path = resolve_model(self._path)
        return self._path

    @property
    def name(self) -> str:
        return model_name(self.path)

    @property
    def fingerprint(self) -> str:
        return model_fingerprint(self.path)

    @property
    def kind(self) -> str:
        """sentence-transformers, or a fast encoder's kind: onnx-int8, onnx or static."""
        path = self.path
        if not is_fast_encoder(path):
            return "sentence-transformers"
        return read_manifest(path, check_files=False)["backend"]

    def _load(self) -> Any:
        if self._model is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
            path = self.path
            if is_fast_encoder(path):  # ONNX or static: no torch, no sentence-transformers
                self._model = load_backend(path)
                return self._model
            copy = onnx_copy(path, self.fingerprint) if self.runtime == "onnx" else None
            if copy is not None:  # the same vectors as sentence-transformers, without torch
                self._model = load_backend(copy)
                return self._model
            self._model = self.sentence_transformer()
        return self._model

    def sentence_transformer(self) -> Any:
        """The folder's SentenceTransformer (for training; encoding may run on its ONNX copy)."""
        if self._st is None:
            path = self.path
            if is_fast_encoder(path):
                raise ModelUnavailableError(
                    f"{path}: a fast encoder, not a sentence-transformers one"
                )
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
            try:
                from sentence_transformers import SentenceTransformer
            except ImportError as exc:  # pragma: no cover - dependency missing
                raise ModelUnavailableError(
                    "sentence-transformers is not installed: pip install sentence-transformers"
                ) from exc
            with contextlib.suppress(Exception):
                from transformers.utils import logging as hf_logging

                hf_logging.disable_progress_bar()
            threads = env_threads()
            if threads:  # e.g. 1 when serving, to leave a core to the HTTP side
                import torch

                torch.set_num_threads(threads)
            try:
                self._st = SentenceTransformer(str(path), device=self.device)
            except Exception as exc:  # noqa: BLE001 - any load failure means "unavailable"
                raise ModelUnavailableError(f"{path}: cannot load model: {exc}") from exc
        return self._st

    @property
    def dim(self) -> int:
        model = self._load()
        if isinstance(model, FastBackend):
            return int(model.dim)
        getter = (
            getattr(model, "get_embedding_dimension", None)
            or model.get_sentence_embedding_dimension
        )
        return int(getter())

    def encode(self, texts: Sequence[str], progress: ProgressFn | None = None) -> np.ndarray:
        """Normalised float32 vectors, one row per text, encoded in batches."""
        model = self._load()
        if len(texts) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        self.calls += 1
        chunk = max(self.batch_size * 4, 256)
        if isinstance(model, FastBackend):
            # ONNX runs a chunk's batches side by side; a bigger chunk waits less for the
            # slowest batch at each chunk's end (about 8% at 256 texts on 2 cores)
            chunk *= 4
        # Shortest first over the whole call, so each batch pads to a similar length
        # (per chunk, the sort would only reach 256 texts): 1.5-1.7x faster for ONNX.
        order = np.argsort(np.fromiter(map(len, texts), np.int64, len(texts)), kind="stable")
        parts = []
        for start in range(0, len(texts), chunk):
            part = [texts[i] for i in order[start : start + chunk]]
            if isinstance(model, FastBackend):
                vecs = model.encode(part, batch_size=self.batch_size)
            else:
                vecs = model.encode(
                    part,
                    batch_size=self.batch_size,
                    convert_to_numpy=True,
                    normalize_embeddings=False,
                    show_progress_bar=False,
                )
            parts.append(np.asarray(vecs, dtype=np.float32))
            if progress is not None:
                progress(len(part))
        out = np.empty((len(texts), parts[0].shape[1]), dtype=np.float32)
        out[order] = np.concatenate(parts, axis=0)
        return _normalise(out)

    def encode_contexts(
        self,
        conversations: Sequence[Conversation | str],
        progress: ProgressFn | None = None,
        cache: TextVectorCache | None = None,
    ) -> EncodedContexts:
        """Encode latest texts and earlier turns in one model pass; combine per contact.

        With ``cache``, texts seen recently are not encoded again (the pass
        covers the misses only, and is skipped when every text hits).
        """
        convs = [c if isinstance(c, Conversation) else Conversation(text=c) for c in conversations]
        texts = [c.text for c in convs]
        turn_texts = [t.text for c in convs for t in c.turns]
        # Each distinct string is encoded once (logs repeat question texts and follow-ups).
        uniq, inverse = np.unique(np.array(texts + turn_texts, dtype=object), return_inverse=True)
        distinct = list(uniq)
        vecs = None
        if cache is not None:
            vecs = cache.encode(distinct, lambda miss: self.encode(miss, progress=progress))
        if vecs is None:
            vecs = self.encode(distinct, progress=progress)
        all_vecs = vecs[inverse.reshape(-1)]
        text_vecs = all_vecs[: len(texts)]
        turn_vecs: list[np.ndarray] = []
        combined = text_vecs.copy()
        contexts = np.zeros_like(text_vecs)
        offset = len(texts)
        for i, c in enumerate(convs):
            n = len(c.turns)
            tv = all_vecs[offset : offset + n]
            offset += n
            turn_vecs.append(tv)
            if n:
                weights = np.array(
                    [
                        TURN_DECAY ** (n - 1 - j) * (1.0 if t.role == "user" else AGENT_TURN_WEIGHT)
                        for j, t in enumerate(c.turns)
                    ],
                    dtype=np.float32,
                )
                ctx = _normalise((weights[:, None] * tv).sum(axis=0, keepdims=True))[0]
                combined[i] = text_vecs[i] + self.context_weight * ctx
                contexts[i] = _earlier_request(c.turns, tv)
        return EncodedContexts(
            vectors=_normalise(combined),
            text_vectors=text_vecs,
            turn_vectors=turn_vecs,
            profiles=[c.user for c in convs],
            context_vectors=contexts,
        )


def _earlier_request(turns: Sequence[Turn], vectors: np.ndarray) -> np.ndarray:
    """What the user asked before the latest text: their earlier turns, the latest weighted most.

    Agent turns are left out (acknowledgements carry no request); with no
    earlier user turn it is a zero vector, as for no turns at all.
    """
    user = [j for j, t in enumerate(turns) if t.role == "user"]
    if not user:
        return np.zeros(vectors.shape[1], dtype=np.float32)
    weights = np.array([TURN_DECAY ** (len(user) - 1 - k) for k in range(len(user))], np.float32)
    return _normalise((weights[:, None] * vectors[user]).sum(axis=0, keepdims=True))[0]


def _normalise(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return (x / norms).astype(np.float32, copy=False)
