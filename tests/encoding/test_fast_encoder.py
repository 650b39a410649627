"""Fast encoders (ONNX, int8 ONNX, static): folder format, fingerprint, fidelity to MiniLM."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from frontdesk import ContextEncoder, FrontdeskError, ModelUnavailableError
from frontdesk.cli import app
from frontdesk.encoding import (
    OnnxTextEncoder,
    distill_static,
    export_onnx,
    is_fast_encoder,
    read_manifest,
)
from frontdesk.encoding.backend import MANIFEST
from frontdesk.encoding.model_files import default_model_path, model_fingerprint

# Varied on purpose: short and long, typos, numbers, questions and statements.
BANKING_TEXTS = [
    "where is my card",
    "My card still hasn't arrived after two weeks, what should I do?",
    "how do i top up with apple pay",
    "Top-up failed but the money left my account",
    "why was I charged a fee for withdrawing cash",
    "The ATM kept my card!!",
    "can I change my PIN at any cash machine?",
    "I think someone stole my phone and is using my account",
    "refund still not showing up",
    "I was refunded 3 days ago but I don't see it",
    "exchange rate seems wrong for my euro payment",
    "Why did I get charged extra for paying in dollars?",
    "how long does a transfer to another bank take",
    "transfer pending since monday",
    "my salary has not arrived yet",
    "Is there a limit on how much I can top up per day?",
    "I'd like to close my account please",
    "what documents do you need to verify my identity",
    "verification keeps failing on the selfie step",
    "How do I get a virtual card for online shopping?",
    "virtual card declined at checkout",
    "contactless is not working",
    "I see a payment I never made on my statement",
    "duplicate charge from the same shop",
    "can I cancel a transaction that is still pending",
    "Apple Pay isn't working any more since the update",
    "how to link my new card to google pay",
    "my card expires next month, will you send a new one",
    "I forgot my passcode and can't log in",
    "Where can I find my IBAN?",
    "receiving money from abroad, what are the fees",
    "beneficiary not allowed error when sending money",
    "the app says my transfer was declined",
    "how many disposable cards can I have",
    "is it possible to get a physical card delivered to another country",
    "Do you support payments in Japanese yen?",
    "cash withdrawal shows as pending for a week",
    "wrong amount of cash came out of the ATM",
    "I want to dispute a card payment",
    "card payment was reverted, why?",
    "my top-up by bank transfer hasn't shown up",
    "why is my balance not updated after the cheque deposit",
    "How do I order a card for my child?",
    "Can I have more than one account in different currencies?",
    "lost card",
    "edit personal details",
    "The merchant says they sent the refund on 12/03 but I have nothing",
    "what happens if I get a payment in a currency I don't hold",
    "I need to know the top up limits for a card from a different country, is there a list?",
    "hello?",
    "Auto top-up: how does it work and can I turn it off",
    "It's been 5 working days and my international transfer of €1,250 hasn't arrived",
]

runner = CliRunner()


def _fake_fast_folder(folder: Path, **manifest: object) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    body = {
        "kind": "frontdesk-encoder",
        "format_version": 1,
        "loader": "frontdesk.encoding.encoder.ContextEncoder",
        "backend": "onnx-int8",
        "source": {"name": "x", "sha256": "0" * 64},
        "max_seq_length": 256,
        "dim": 384,
        "created_at": "2026-01-01T00:00:00+00:00",
        "files": {"model.onnx": "0" * 64, "tokenizer.json": "0" * 64},
        "config": {},
    }
    body.update(manifest)
    (folder / MANIFEST).write_text(json.dumps(body))
    return folder


# ---- format errors (fast) --------------------------------------------------------------


def test_missing_listed_file_names_the_file(tmp_path: Path) -> None:
    folder = _fake_fast_folder(tmp_path / "fast")
    (folder / "tokenizer.json").write_text("{}")
    enc = ContextEncoder(folder)
    assert enc.kind == "onnx-int8"
    with pytest.raises(
        ModelUnavailableError, match=r"model\.onnx: listed in the manifest but missing"
    ):
        enc.encode(["x"])


def test_missing_manifest_is_not_a_fast_encoder(tmp_path: Path) -> None:
    assert not is_fast_encoder(tmp_path)
    with pytest.raises(ModelUnavailableError, match=f"{MANIFEST}: not found"):
        read_manifest(tmp_path)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"backend": "bert-xl"}, "backend 'bert-xl' is unknown"),
        ({"format_version": 2}, "encoder format 2, this frontdesk reads format 1"),
        ({"dim": 0}, "dim must be a whole number"),
        ({"files": "model.onnx"}, "files must map each file's path to its sha256"),
        (
            {"kind": "frontdesk-router", "loader": "frontdesk.routing.router.Router.load"},
            "a frontdesk router, not an encoder",
        ),
    ],
)
def test_bad_manifest_is_model_unavailable(tmp_path: Path, change: dict, message: str) -> None:
    folder = _fake_fast_folder(tmp_path / "fast", **change)
    with pytest.raises(ModelUnavailableError, match=message):
        ContextEncoder(folder).encode(["x"])
    with pytest.raises(ModelUnavailableError, match=MANIFEST):
        ContextEncoder(folder).kind  # noqa: B018 - the property raises


def test_an_older_fast_encoder_says_rebuild(tmp_path: Path) -> None:
    (tmp_path / "frontdesk_encoder.json").write_text('{"format_version": 1, "kind": "onnx"}')
    assert is_fast_encoder(tmp_path)  # so it is not mistaken for a sentence-transformers folder
    with pytest.raises(ModelUnavailableError, match="older frontdesk; rebuild it"):
        ContextEncoder(tmp_path).encode(["x"])


def test_unreadable_manifest_names_the_file(tmp_path: Path) -> None:
    (tmp_path / MANIFEST).write_text("{not json")
    with pytest.raises(ModelUnavailableError, match=f"{MANIFEST}: invalid JSON"):
        ContextEncoder(tmp_path).encode(["x"])


def test_bundled_model_is_sentence_transformers_kind() -> None:
    assert ContextEncoder().kind == "sentence-transformers"


# ---- fingerprint (fast) ----------------------------------------------------------------


def _fingerprint_before_onnx_rule(root: Path) -> str:
    """model_fingerprint as it was: only these suffixes, nothing under an onnx/ folder."""
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root)
        if (
            p.is_file()
            and p.suffix in {".safetensors", ".bin", ".json", ".txt"}
            and "onnx" not in rel.parts
        ):
            h.update(str(rel).encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def test_bundled_fingerprint_unchanged_by_onnx_rule() -> None:
    root = default_model_path()
    assert model_fingerprint(root) == _fingerprint_before_onnx_rule(root)


def test_top_level_onnx_counts_onnx_subfolder_does_not(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    base = model_fingerprint(tmp_path)
    (tmp_path / "onnx").mkdir()
    (tmp_path / "onnx" / "model.onnx").write_bytes(b"graph")
    (tmp_path / "onnx" / "config.json").write_text("{}")
    assert model_fingerprint(tmp_path) == base
    (tmp_path / "model.onnx").write_bytes(b"graph")
    assert model_fingerprint(tmp_path) != base


# ---- CLI and fine-tuning refusals (fast) -----------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--kind", "bogus"], "must be one of onnx-int8, onnx, static"),
        (["--pca-dims", "64"], "only applies to --kind static"),
        (["--model", "/nonexistent/model"], "model folder not found"),
    ],
)
def test_cli_distill_bad_input_is_clean(tmp_path: Path, args: list[str], message: str) -> None:
    res = runner.invoke(app, ["train", "distill", "--out", str(tmp_path / "out"), *args])
    assert res.exit_code == 2
    assert message in " ".join(res.output.split()).replace("│", "").replace("  ", " ")
    assert "Traceback" not in res.output
    assert not (tmp_path / "out").exists()


def test_fast_folder_cannot_be_fine_tuned(tmp_path: Path) -> None:
    from frontdesk.encoding.finetune import finetune_encoder

    folder = _fake_fast_folder(tmp_path / "fast", backend="static")
    with pytest.raises(FrontdeskError, match="static encoder cannot be fine-tuned"):
        finetune_encoder([], [], tmp_path / "out", base=folder)


# ---- real exports (slow) ---------------------------------------------------------------


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The ONNX encoders of the bundled MiniLM, exported once for the module (~10 s)."""
    root = tmp_path_factory.mktemp("fast")
    export_onnx(None, root / "int8")
    export_onnx(None, root / "fp32", quantize=False)
    return {"onnx-int8": root / "int8", "onnx": root / "fp32"}


@pytest.fixture(scope="module")
def static_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A static encoder distilled once (30 s to 2 min: every vocabulary token through MiniLM)."""
    out = tmp_path_factory.mktemp("static") / "static"
    distill_static(None, out, pca_dims=128)
    return out


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


@pytest.mark.slow
def test_onnx_vectors_match_sentence_transformers(
    built: dict[str, Path], encoder: ContextEncoder
) -> None:
    reference = ContextEncoder(encoder.path, runtime="torch").encode(BANKING_TEXTS)
    default = _cosines(encoder.encode(BANKING_TEXTS), reference)  # the cached ONNX copy
    assert default.min() > 0.9999
    fp32 = _cosines(ContextEncoder(built["onnx"]).encode(BANKING_TEXTS), reference)
    int8 = _cosines(ContextEncoder(built["onnx-int8"]).encode(BANKING_TEXTS), reference)
    print(f"\nfp32 cosine mean {fp32.mean():.6f} min {fp32.min():.6f}")
    print(f"int8 cosine mean {int8.mean():.4f} min {int8.min():.4f}")
    assert fp32.mean() >= 0.9999 and fp32.min() >= 0.999
    # measured on these texts: mean 0.9934, min 0.9852 (per-channel QInt8, full range)
    assert int8.mean() >= 0.98 and int8.min() >= 0.95


@pytest.mark.slow
def test_onnx_batches_restore_order(built: dict[str, Path]) -> None:
    backend = OnnxTextEncoder(built["onnx"])
    texts = BANKING_TEXTS[:12]
    together = backend.encode(texts, batch_size=5)  # sorted by length inside, rows back in order
    alone = np.vstack([backend.encode([t]) for t in texts])
    np.testing.assert_allclose(together, alone, atol=1e-5)
    backend.workers = 3  # batches side by side on threads: same rows, same order
    np.testing.assert_allclose(backend.encode(texts, batch_size=2), alone, atol=1e-5)
    backend.workers = 1
    np.testing.assert_allclose(backend.encode(texts, batch_size=2), alone, atol=1e-5)
    assert backend.encode([]).shape == (0, 384)


@pytest.mark.slow
def test_context_encoder_runs_a_fast_folder(
    built: dict[str, Path], encoder: ContextEncoder
) -> None:
    enc = ContextEncoder(built["onnx-int8"], batch_size=8)
    ctx = enc.encode_contexts(["where is my card", "any update?"])
    assert ctx.vectors.shape == (2, 384) and ctx.vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(ctx.vectors, axis=1), 1.0, rtol=1e-5)
    assert enc.dim == 384 and enc.kind == "onnx-int8" and enc.name == "int8"
    assert len(enc.fingerprint) == 64 and enc.fingerprint != encoder.fingerprint
    assert enc.fingerprint != ContextEncoder(built["onnx"]).fingerprint
    manifest = read_manifest(built["onnx-int8"])
    assert manifest["source"] == {
        "name": "sentence-transformers/all-MiniLM-L6-v2",
        "sha256": encoder.fingerprint,
    }
    assert manifest["max_seq_length"] == 256 and manifest["dim"] == 384


@pytest.mark.slow
def test_onnx_threads_follow_env(built: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FRONTDESK_TORCH_THREADS", raising=False)
    backend = OnnxTextEncoder(built["onnx-int8"])  # one-thread session, a batch per CPU
    assert backend._session.get_session_options().intra_op_num_threads == 1
    assert backend.workers == len(os.sched_getaffinity(0))
    monkeypatch.setenv("FRONTDESK_TORCH_THREADS", "1")
    backend = OnnxTextEncoder(built["onnx-int8"])
    assert backend._session.get_session_options().intra_op_num_threads == 1
    assert backend.workers == 1
    monkeypatch.setenv("FRONTDESK_TORCH_THREADS", "two")
    with pytest.raises(FrontdeskError, match="FRONTDESK_TORCH_THREADS"):
        OnnxTextEncoder(built["onnx-int8"])


@pytest.mark.slow
def test_static_distill(static_folder: Path, encoder: ContextEncoder) -> None:
    enc = ContextEncoder(static_folder)
    vecs = enc.encode(BANKING_TEXTS)
    assert enc.kind == "static" and enc.dim == 128 and vecs.shape == (len(BANKING_TEXTS), 128)
    assert vecs.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, rtol=1e-4)
    # A different space from MiniLM's, but it must still tell topics apart.
    sims = vecs @ vecs.T
    card, lost, refund = 0, BANKING_TEXTS.index("lost card"), 8
    assert sims[card, lost] > sims[card, refund]
    assert enc.fingerprint != encoder.fingerprint


@pytest.mark.slow
def test_cli_distill_json_replaces_its_own_folder(tmp_path: Path) -> None:
    out = tmp_path / "enc"
    first = runner.invoke(app, ["train", "distill", "--out", str(out), "--kind", "onnx", "--json"])
    assert first.exit_code == 0, first.output
    info = json.loads(first.stdout)
    assert info["backend"] == "onnx" and info["dim"] == 384 and info["encoder"] == str(out)
    assert info["seconds"] > 0
    again = runner.invoke(app, ["train", "distill", "--out", str(out), "--json"])
    assert again.exit_code == 0, again.output
    assert read_manifest(out)["backend"] == "onnx-int8"
    assert not (out / "model-fp32.onnx").exists()
