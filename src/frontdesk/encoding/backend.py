"""Fast-encoder folders: a model built from a sentence-transformers folder for cheaper CPU encoding.

A fast-encoder folder holds the files of one backend and the manifest every
saved folder has (``frontdesk.artifacts``), ``manifest.json``::

    {"kind": "frontdesk-encoder", "format_version": 1,
     "loader": "frontdesk.encoding.encoder.ContextEncoder",
     "backend": "onnx-int8" | "onnx" | "static",
     "source": {"name": ..., "sha256": ...}, "max_seq_length": ..., "dim": ...,
     "created_at": ..., "files": {name: sha256}, "bytes": {name: size},
     "config": {...backend settings...}}

``ContextEncoder`` loads such a folder instead of a sentence-transformers one
when it finds the manifest; on load the files' presence and sizes are checked
(hashing a 90 MB model would take most of a one-second cold start). The
backends:

- ``onnx``: the transformer exported to ONNX (fp32), run by onnxruntime; the
  same vectors as sentence-transformers (cosine > 0.9999), without torch.
- ``onnx-int8``: the same graph with int8 weights (dynamic quantization).
- ``static``: a model2vec static embedding (one vector per token, averaged);
  no transformer at all, much faster and less precise.

This module holds what the backends share (the base class, the manifest, the
builders' helpers); the backends live in ``onnx_backend`` and ``static_backend``,
and ``fast`` picks one by kind.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from .. import artifacts
from ..errors import FrontdeskError, IndexIntegrityError, ModelUnavailableError
from .model_files import model_fingerprint, model_name, resolve_model

MANIFEST = artifacts.MANIFEST
LEGACY_MANIFEST = "frontdesk_encoder.json"  # what fast encoders carried before manifest.json
KINDS = ("onnx-int8", "onnx", "static")
DEFAULT_MAX_SEQ_LENGTH = 512

StageProgress = Callable[[str, int, int], None]  # (stage, done, total)


class FastBackend(ABC):
    """What ``ContextEncoder`` needs from a fast-encoder backend."""

    kind: str
    dim: int
    max_seq_length: int

    @abstractmethod
    def encode(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        """float32 (n, dim) vectors, one row per text, in the order given."""


def is_fast_encoder(folder: str | os.PathLike[str]) -> bool:
    """Whether ``folder`` is frontdesk's own (a fast encoder, one of an older format, or
    another saved folder given in an encoder's place: ``read_manifest`` says which),
    rather than a sentence-transformers folder."""
    folder = Path(folder)
    return (folder / MANIFEST).is_file() or (folder / LEGACY_MANIFEST).is_file()


def read_manifest(folder: str | os.PathLike[str], *, check_files: bool = True) -> dict[str, Any]:
    """The manifest of a fast-encoder folder, checked; ModelUnavailableError names what is wrong.

    ``check_files`` also checks every file the manifest lists: present, of its size.
    """
    folder = Path(folder)
    path = folder / MANIFEST
    if not path.is_file() and (folder / LEGACY_MANIFEST).is_file():
        raise ModelUnavailableError(
            f"{folder / LEGACY_MANIFEST}: a fast encoder of an older frontdesk; rebuild it "
            "with `frontdesk train distill`"
        )
    if not path.is_file():
        raise ModelUnavailableError(f"{path}: not found")
    try:
        manifest = artifacts.read_manifest(folder, verify=False)
    except IndexIntegrityError as exc:
        raise ModelUnavailableError(f"{exc} (rebuild it with `frontdesk train distill`)") from None
    if manifest["kind"] != artifacts.ENCODER:
        raise ModelUnavailableError(
            f"{path}: a frontdesk {artifacts.WHAT[manifest['kind']]}, not an encoder"
        )
    backend = manifest.get("backend")
    if backend not in KINDS:
        raise ModelUnavailableError(
            f"{path}: backend {backend!r} is unknown (expected one of {', '.join(KINDS)})"
        )
    for key in ("dim", "max_seq_length"):
        value = manifest.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ModelUnavailableError(f"{path}: {key} must be a whole number >= 1, not {value!r}")
    if not isinstance(manifest.get("config", {}), dict):
        raise ModelUnavailableError(f"{path}: config must be a JSON object")
    if check_files:
        try:
            artifacts.verify_files(folder, manifest, full=False)
        except IndexIntegrityError as exc:
            raise ModelUnavailableError(
                f"{exc} (rebuild it with `frontdesk train distill`)"
            ) from None
    return manifest


# ---- helpers shared by the builders ------------------------------------------------------


def source_model(source: str | os.PathLike[str] | None) -> tuple[Path, dict[str, str]]:
    """The source folder and its manifest entry; only sentence-transformers folders qualify."""
    root = resolve_model(source)
    if is_fast_encoder(root):
        raise FrontdeskError(
            f"{root}: is already a fast encoder; build from the sentence-transformers folder "
            "it was made from"
        )
    if not (root / "config.json").is_file():
        raise ModelUnavailableError(f"{root / 'config.json'}: missing (not a transformers model)")
    return root, {"name": model_name(root), "sha256": model_fingerprint(root)}


def transformer_folder(root: Path) -> Path:
    """Where the transformer (weights, config, tokenizer) of a sentence-transformers folder is.

    Only the plain layout is accepted: Transformer -> mean Pooling -> optional
    Normalize, which is what the bundled MiniLM and ``train encoder`` write.
    Anything else (Dense layers, CLS pooling, ...) would not give the same vectors.
    """
    modules_file = root / "modules.json"
    if not modules_file.is_file():  # a bare transformers folder: mean pooling assumed
        return root
    try:
        modules = json.loads(modules_file.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelUnavailableError(f"{modules_file}: unreadable: {exc}") from exc
    kinds = [str(m.get("type", "")).rsplit(".", 1)[-1] for m in modules]
    if kinds not in (["Transformer", "Pooling"], ["Transformer", "Pooling", "Normalize"]):
        raise FrontdeskError(
            f"{modules_file}: modules {kinds} are not supported; a fast encoder needs "
            "Transformer -> Pooling (mean) -> Normalize"
        )
    pooling = root / modules[1].get("path", "") / "config.json"
    try:
        pcfg = json.loads(pooling.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelUnavailableError(f"{pooling}: unreadable: {exc}") from exc
    mode = pcfg.get("pooling_mode")
    if mode is None:  # sentence-transformers < 6 writes one flag per mode
        mode = [
            k[len("pooling_mode_") :]
            for k, v in pcfg.items()
            if k.startswith("pooling_mode_") and v
        ]
        mode = mode[0] if len(mode) == 1 else mode
    if mode not in ("mean", "mean_tokens"):
        raise FrontdeskError(f"{pooling}: pooling {mode!r} is not supported (mean only)")
    return root / modules[0].get("path", "")


def source_max_seq_length(root: Path, transformer: Path) -> int:
    """sentence-transformers' truncation length for a folder, as it would load it."""
    for path, key in (
        (root / "sentence_bert_config.json", "max_seq_length"),
        (transformer / "sentence_bert_config.json", "max_seq_length"),
        (transformer / "tokenizer_config.json", "model_max_length"),
        (transformer / "config.json", "max_position_embeddings"),
    ):
        try:
            value = json.loads(path.read_text(encoding="utf-8")).get(key)
        except (OSError, json.JSONDecodeError, AttributeError):
            continue
        if isinstance(value, int) and 0 < value < 100_000:  # tokenizers say 1e30 for "none"
            return value
    return DEFAULT_MAX_SEQ_LENGTH


def write_manifest(
    folder: Path,
    *,
    backend: str,
    source: dict[str, str],
    max_seq_length: int,
    dim: int,
    config: dict[str, Any],
) -> dict[str, Any]:
    """The encoder's manifest, written last (it checksums every file already in ``folder``)."""
    return artifacts.write_manifest(
        folder,
        {
            "kind": artifacts.ENCODER,
            "backend": backend,
            "source": source,
            "max_seq_length": int(max_seq_length),
            "dim": int(dim),
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "config": config,
        },
    )


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Silence build-time chatter: tracer warnings, quantizer advice, download-style bars."""
    with contextlib.suppress(Exception):
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logging.disable(previous)
