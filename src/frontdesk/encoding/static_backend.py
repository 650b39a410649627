"""A model2vec static encoder distilled from the sentence-transformers model.

``model2vec.distill`` runs every token of the source's vocabulary through the
transformer once, reduces the token vectors with PCA and weights them (SIF);
a text's vector is then the mean of its tokens' vectors: a table lookup, no
transformer at encode time. Much faster than the transformer and much less
precise (word order and context are gone): measure it on your own data before
using it for retrieval.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..artifacts import ENCODER, atomic_folder
from ..errors import FrontdeskError, ModelUnavailableError
from ..extras import require
from .backend import (
    LEGACY_MANIFEST,
    MANIFEST,
    FastBackend,
    StageProgress,
    quiet,
    read_manifest,
    source_model,
    transformer_folder,
    write_manifest,
)

# model2vec's own default truncation; a static model has no positional limit.
STATIC_MAX_SEQ_LENGTH = 512
FILES = ["model.safetensors", "tokenizer.json", "config.json"]


def distill_static(
    source_model_dir: str | os.PathLike[str] | None,
    out_dir: str | os.PathLike[str],
    *,
    pca_dims: int = 256,
    device: str = "cpu",
    progress: StageProgress | None = None,
) -> dict[str, Any]:
    """Distil a static model2vec encoder into ``out_dir`` (atomically); returns the manifest."""
    root, source = source_model(source_model_dir)
    transformer = transformer_folder(root)
    try:
        hidden = int(json.loads((transformer / "config.json").read_text())["hidden_size"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelUnavailableError(f"{transformer / 'config.json'}: no hidden_size") from exc
    if not 2 <= pca_dims <= hidden:
        raise FrontdeskError(
            f"pca_dims must be between 2 and {hidden} (the model's), not {pca_dims}"
        )
    distill = require("model2vec.distill", "static distillation").distill
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

    if progress is not None:
        progress("loading the model", 0, 1)
    with quiet(), _vocabulary_progress(progress):
        # A local folder: model2vec loads it with transformers and names it by its
        # basename, so nothing is looked up on the hub.
        static = distill(model_name=str(transformer), pca_dims=pca_dims, device=device)
    dim = int(static.dim)
    with atomic_folder(out_dir, (MANIFEST, LEGACY_MANIFEST), "fast encoder", ENCODER) as tmp:
        static.save_pretrained(str(tmp))
        missing = [f for f in FILES if not (tmp / f).is_file()]
        if missing:  # model2vec changed its layout: refuse rather than write a broken folder
            raise FrontdeskError(f"model2vec did not write {', '.join(missing)}")
        manifest = write_manifest(
            tmp,
            backend="static",
            source=source,
            max_seq_length=STATIC_MAX_SEQ_LENGTH,
            dim=dim,
            config={"pca_dims": pca_dims, "sif_coefficient": 1e-4, "pooling": "mean"},
        )
        StaticTextEncoder(tmp).encode(["smoke test"])  # fail here, not at first use
    return manifest


class StaticTextEncoder(FastBackend):
    """A model2vec ``StaticModel`` loaded from a local folder (never from the hub)."""

    kind = "static"

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = Path(folder)
        manifest = read_manifest(self.folder)
        if manifest["backend"] != "static":
            raise ModelUnavailableError(f"{self.folder / MANIFEST}: not a static encoder")
        self.dim = manifest["dim"]
        self.max_seq_length = manifest["max_seq_length"]
        model2vec = require("model2vec", f"{self.folder} (a static encoder)")
        try:
            self._model = model2vec.StaticModel.from_pretrained(
                str(self.folder), force_download=False, max_length=self.max_seq_length
            )
        except Exception as exc:  # noqa: BLE001 - a corrupt file means "unavailable"
            raise ModelUnavailableError(f"{self.folder}: cannot load static model: {exc}") from exc
        if int(self._model.dim) != self.dim:
            raise ModelUnavailableError(
                f"{self.folder}: vectors have {self._model.dim} dimensions, "
                f"{MANIFEST} says {self.dim}"
            )

    def encode(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        """L2-normalised float32 (n, dim), one row per text."""
        if len(texts) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        vecs = self._model.encode(
            list(texts),
            max_length=self.max_seq_length,
            normalize=True,
            show_progress_bar=False,
            use_multiprocessing=False,  # ContextEncoder already batches; no worker processes
        )
        return np.asarray(vecs, dtype=np.float32).reshape(len(texts), self.dim)


@contextlib.contextmanager
def _vocabulary_progress(progress: StageProgress | None) -> Iterator[None]:
    """Route model2vec's per-token tqdm bar to ``progress`` (and off the terminal)."""
    try:
        from model2vec.distill import inference
    except ImportError:  # pragma: no cover - checked by the caller
        yield
        return
    original = getattr(inference, "tqdm", None)
    if original is None:  # model2vec changed: just no progress
        yield
        return

    class Bar:
        def __init__(self, *args: Any, total: int | None = None, **kwargs: Any) -> None:
            self.total, self.n = int(total or 0), 0

        def update(self, n: int = 1) -> None:
            self.n += n
            if progress is not None:
                progress("encoding the vocabulary", self.n, self.total)

        def close(self) -> None:
            pass

    inference.tqdm = Bar
    try:
        yield
    finally:
        inference.tqdm = original
