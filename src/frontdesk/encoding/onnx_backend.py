"""The sentence-transformers transformer as ONNX (fp32 or int8), run by onnxruntime.

The graph maps token ids to the last hidden states; pooling (attention-masked
mean) and L2 normalisation are done in numpy, as sentence-transformers does
them. Tokenisation is the source's ``tokenizer.json`` with the same truncation
length, so fp32 vectors match sentence-transformers' to float precision.

int8 is ``quantize_dynamic`` with per-channel QInt8 weights and the full 8-bit
range (``reduce_range=False``): on the bundled MiniLM over BANKING77 texts that
kept mean cosine to the fp32 vectors at 0.993 (min 0.98), where per-tensor
weights gave 0.967 (min 0.75) and ``reduce_range=True`` less again.

Threads: the session itself runs on one thread, and a call with several
batches runs them side by side on ``FRONTDESK_TORCH_THREADS`` (default: the
CPUs this process may use) Python threads, as onnxruntime sessions allow. On the
2-core machine this encoded BANKING77 texts 1.2-1.4x faster than one batch at a
time on a two-thread session: a 15-token batch's small operators (layer norm,
softmax, transposes: half the time) gain nothing from being split across threads
but pay for the hand-off. A single text takes the same time either way.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import os
import shutil
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from ..artifacts import ENCODER, atomic_folder
from ..errors import FrontdeskError, ModelUnavailableError
from .backend import (
    LEGACY_MANIFEST,
    MANIFEST,
    FastBackend,
    StageProgress,
    quiet,
    read_manifest,
    source_max_seq_length,
    source_model,
    transformer_folder,
    write_manifest,
)
from .model_files import env_threads

MODEL_FILE = "model.onnx"
TOKENIZER_FILE = "tokenizer.json"
OPSET = 17
INPUTS = ("input_ids", "attention_mask", "token_type_ids")
OUTPUT = "last_hidden_state"
QUANTIZATION = {"weight_type": "QInt8", "per_channel": True, "reduce_range": False}


def export_onnx(
    source_model_dir: str | os.PathLike[str] | None,
    out_dir: str | os.PathLike[str],
    *,
    quantize: bool = True,
    max_seq_length: int | None = None,
    progress: StageProgress | None = None,
) -> dict[str, Any]:
    """Export a sentence-transformers folder's transformer to ONNX at ``out_dir`` (atomically).

    ``max_seq_length`` defaults to the source's (256 for MiniLM). Returns the manifest.
    """
    import torch
    from tokenizers import Tokenizer

    def stage(name: str, done: int) -> None:
        if progress is not None:
            progress(name, done, 3)

    root, source = source_model(source_model_dir)
    transformer = transformer_folder(root)
    if not (transformer / TOKENIZER_FILE).is_file():
        raise ModelUnavailableError(f"{transformer / TOKENIZER_FILE}: missing")
    if max_seq_length is None:
        max_seq_length = source_max_seq_length(root, transformer)
    if max_seq_length < 1:
        raise FrontdeskError(f"max_seq_length must be >= 1, not {max_seq_length}")
    kind = "onnx-int8" if quantize else "onnx"

    stage("loading the model", 0)
    with quiet():
        model = _load_transformer(transformer)
    tokenizer = Tokenizer.from_file(str(transformer / TOKENIZER_FILE))
    pad_id = _pad_id(transformer, tokenizer)
    dim = int(model.config.hidden_size)
    params = inspect.signature(model.forward).parameters
    inputs = [name for name in INPUTS if name in params]  # some models take no token types
    if inputs[:2] != ["input_ids", "attention_mask"]:
        raise FrontdeskError(f"{transformer}: {type(model).__name__} does not take ids and a mask")
    with atomic_folder(out_dir, (MANIFEST, LEGACY_MANIFEST), "fast encoder", ENCODER) as tmp:
        stage("exporting to ONNX", 1)
        fp32 = tmp / ("model-fp32.onnx" if quantize else MODEL_FILE)
        sample = tokenizer.encode_batch(["where is my payout", "a longer sample text for tracing"])
        width = max(len(e.ids) for e in sample)
        ids = torch.full((2, width), pad_id, dtype=torch.long)
        mask = torch.zeros((2, width), dtype=torch.long)
        for row, e in enumerate(sample):
            ids[row, : len(e.ids)] = torch.tensor(e.ids)
            mask[row, : len(e.ids)] = 1
        sample_feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": ids * 0}
        axes = {name: {0: "batch", 1: "sequence"} for name in (*inputs, OUTPUT)}
        with quiet(), torch.no_grad():
            torch.onnx.export(
                _hidden_states(model, inputs),
                tuple(sample_feeds[name] for name in inputs),
                str(fp32),
                input_names=inputs,
                output_names=[OUTPUT],
                dynamic_axes=axes,
                opset_version=OPSET,
                do_constant_folding=True,
                dynamo=False,
            )
        if quantize:
            stage("quantizing to int8", 2)
            from onnxruntime.quantization import QuantType, quantize_dynamic

            with quiet():
                quantize_dynamic(
                    str(fp32),
                    str(tmp / MODEL_FILE),
                    weight_type=QuantType.QInt8,
                    per_channel=QUANTIZATION["per_channel"],
                    reduce_range=QUANTIZATION["reduce_range"],
                )
            fp32.unlink()
        shutil.copyfile(transformer / TOKENIZER_FILE, tmp / TOKENIZER_FILE)
        config: dict[str, Any] = {
            "opset": OPSET,
            "inputs": inputs,
            "output": OUTPUT,
            "pooling": "mean",
            "pad_id": pad_id,
        }
        if quantize:
            config["quantization"] = dict(QUANTIZATION)
        manifest = write_manifest(
            tmp,
            backend=kind,
            source=source,
            max_seq_length=max_seq_length,
            dim=dim,
            config=config,
        )
        OnnxTextEncoder(tmp).encode(["smoke test"])  # fail here, not at first use
    stage("done", 3)
    return manifest


class OnnxTextEncoder(FastBackend):
    """An exported transformer on onnxruntime's CPU provider; masked-mean pooled, normalised."""

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        self.folder = Path(folder)
        manifest = read_manifest(self.folder)
        if manifest["backend"] not in ("onnx", "onnx-int8"):
            raise ModelUnavailableError(f"{self.folder / MANIFEST}: not an ONNX encoder")
        self.kind = manifest["backend"]
        self.dim = manifest["dim"]
        self.max_seq_length = manifest["max_seq_length"]
        config = manifest.get("config", {})
        self.pad_id = int(config.get("pad_id", 0))
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1  # parallel over batches instead (module docstring)
        options.inter_op_num_threads = 1
        self.workers = env_threads() or _usable_cpus()
        self._pool: ThreadPoolExecutor | None = None
        self._pool_pid = 0
        self._pool_lock = threading.Lock()
        options.log_severity_level = 3  # errors only
        model_file = self.folder / MODEL_FILE
        try:
            self._session = ort.InferenceSession(
                str(model_file), options, providers=["CPUExecutionProvider"]
            )
            self._tokenizer = Tokenizer.from_file(str(self.folder / TOKENIZER_FILE))
        except Exception as exc:  # noqa: BLE001 - a corrupt file means "unavailable"
            raise ModelUnavailableError(f"{model_file}: cannot load: {exc}") from exc
        self._tokenizer.no_padding()
        self._tokenizer.enable_truncation(self.max_seq_length)
        self._inputs = [i.name for i in self._session.get_inputs()]
        unknown = set(self._inputs) - set(INPUTS)
        if unknown:
            raise ModelUnavailableError(f"{model_file}: unexpected inputs {sorted(unknown)}")
        out_dim = self._session.get_outputs()[0].shape[-1]
        if isinstance(out_dim, int) and out_dim != self.dim:
            raise ModelUnavailableError(
                f"{model_file}: outputs {out_dim} dimensions, {MANIFEST} says {self.dim}"
            )

    def encode(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        """L2-normalised float32 (n, dim); batches of similar length, rows in the order given."""
        n = len(texts)
        out = np.zeros((n, self.dim), dtype=np.float32)
        if n == 0:
            return out
        encodings = self._tokenizer.encode_batch(list(texts))
        lengths = np.fromiter((len(e.ids) for e in encodings), dtype=np.int64, count=n)
        order = np.argsort(lengths, kind="stable")  # little padding within a batch
        size = max(1, batch_size)
        batches = [order[start : start + size] for start in range(0, n, size)]

        def run(rows: np.ndarray) -> None:  # rows are disjoint across batches
            width = int(lengths[rows].max())
            ids = np.full((len(rows), width), self.pad_id, dtype=np.int64)
            types = np.zeros((len(rows), width), dtype=np.int64)
            mask = np.zeros((len(rows), width), dtype=np.int64)
            for r, i in enumerate(rows):
                e = encodings[i]
                k = len(e.ids)
                ids[r, :k] = e.ids
                types[r, :k] = e.type_ids
                mask[r, :k] = 1
            feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
            hidden = self._session.run(None, {k: feeds[k] for k in self._inputs})[0]
            weights = mask.astype(np.float32)
            summed = np.einsum("bld,bl->bd", hidden.astype(np.float32, copy=False), weights)
            out[rows] = summed / np.maximum(weights.sum(axis=1, keepdims=True), 1e-9)

        if len(batches) == 1 or self.workers == 1:
            for rows in batches:
                run(rows)
        else:
            list(self._executor().map(run, batches))  # list(): re-raises a batch's error
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        norms[norms == 0] = 1.0
        return out / norms

    def _executor(self) -> ThreadPoolExecutor:
        """The batch threads, made on first use (and again in a forked child)."""
        with self._pool_lock:
            if self._pool is None or self._pool_pid != os.getpid():
                self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="onnx-encode")
                self._pool_pid = os.getpid()
            return self._pool


def _usable_cpus() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def _hidden_states(model: Any, inputs: Sequence[str]) -> Any:
    """A torch module: (ids, mask[, token types]) -> last hidden states, for the tracer."""
    import torch

    class HiddenStates(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = model

        def forward(self, *tensors: Any) -> Any:
            return self.inner(**dict(zip(inputs, tensors, strict=True))).last_hidden_state

    return HiddenStates().eval()


def _load_transformer(folder: Path) -> Any:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from transformers import AutoModel

    try:
        # eager attention traces to plain ONNX ops; the fused kernels do not
        model = AutoModel.from_pretrained(str(folder), attn_implementation="eager")
    except Exception as exc:  # noqa: BLE001 - any load failure means "unavailable"
        raise ModelUnavailableError(f"{folder}: cannot load model: {exc}") from exc
    return model.eval()


def _pad_id(folder: Path, tokenizer: Any) -> int:
    """The pad token's id: tokenizer_config's pad_token, else tokenizer.json's padding, else 0."""
    with contextlib.suppress(OSError, json.JSONDecodeError, AttributeError):
        token = json.loads((folder / "tokenizer_config.json").read_text()).get("pad_token")
        if isinstance(token, dict):
            token = token.get("content")
        if isinstance(token, str) and tokenizer.token_to_id(token) is not None:
            return int(tokenizer.token_to_id(token))
    if tokenizer.padding:
        return int(tokenizer.padding["pad_id"])
    return 0
