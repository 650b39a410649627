"""ContextEncoder: normalised float32, batching, conversations, fingerprint."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from frontdesk import ContextEncoder, Conversation, FrontdeskError, ModelUnavailableError


def test_vectors_are_normalised_float32_and_batch_invariant(encoder: ContextEncoder) -> None:
    texts = ["where is my payout", "reset two factor", "refund a customer"] * 5
    v = encoder.encode(texts)
    assert v.dtype == np.float32 and v.shape == (15, 384)
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, rtol=1e-5)
    small = ContextEncoder(encoder.path, batch_size=2)
    small._model = encoder._model  # same weights, different batching
    np.testing.assert_allclose(small.encode(texts), v, atol=1e-5)


def test_conversation_vector_leans_on_earlier_turns(encoder: ContextEncoder) -> None:
    bare = Conversation(text="any update?")
    with_ctx = Conversation(
        text="any update?",
        context={"turns": [{"role": "user", "text": "my payout has not arrived"}]},
    )
    enc = encoder.encode_contexts([bare, with_ctx, "my payout has not arrived"])
    payout = enc.text_vectors[2]
    assert enc.vectors[1] @ payout > enc.vectors[0] @ payout + 0.1
    np.testing.assert_allclose(
        enc.vectors[0], enc.text_vectors[0], atol=1e-6
    )  # no turns: text only
    assert [t.shape[0] for t in enc.turn_vectors] == [0, 1, 0]
    np.testing.assert_allclose(np.linalg.norm(enc.vectors, axis=1), 1.0, rtol=1e-5)


def test_context_vector_is_the_earlier_user_request(encoder: ContextEncoder) -> None:
    """Agent turns stay out of it; the latest earlier user turn weighs most."""
    ack = {"role": "agent", "text": "Thanks, let me look into that."}
    asked = {"role": "user", "text": "my payout has not arrived"}
    only_agent = Conversation(text="ok", context={"turns": [ack]})
    convs = [
        Conversation(text="any update?"),
        Conversation(text="any update?", context={"turns": [asked, ack]}),
        Conversation(
            text="any update?",
            context={"turns": [{"role": "user", "text": "reset two factor"}, asked, ack]},
        ),
        only_agent,
    ]
    enc = encoder.encode_contexts(convs)
    payout = encoder.encode(["my payout has not arrived"])[0]
    assert enc.context_vectors is not None
    assert not enc.context_vectors[0].any()  # no earlier turns: a zero row
    np.testing.assert_allclose(enc.context_vectors[1], payout, atol=1e-5)
    assert 0.8 < enc.context_vectors[2] @ payout < 0.999  # older user turn at half weight
    assert not enc.context_vectors[3].any()  # agent turns only: no earlier request
    np.testing.assert_allclose(enc.take([2, 1]).context_vectors, enc.context_vectors[[2, 1]])


def test_context_weight_zero_ignores_turns(encoder: ContextEncoder) -> None:
    plain = ContextEncoder(encoder.path, context_weight=0.0)
    plain._model = encoder._model
    conv = Conversation(text="any update?", context={"turns": [{"role": "user", "text": "payout"}]})
    enc = plain.encode_contexts([conv])
    np.testing.assert_allclose(enc.vectors[0], enc.text_vectors[0], atol=1e-6)


def test_fingerprint_is_stable_hex(encoder: ContextEncoder) -> None:
    assert encoder.fingerprint == ContextEncoder(encoder.path).fingerprint
    assert len(encoder.fingerprint) == 64


def test_missing_model_folder_is_a_clear_error(tmp_path) -> None:
    with pytest.raises(ModelUnavailableError, match="model folder not found"):
        ContextEncoder(tmp_path / "nope").encode(["x"])


def test_a_sentence_transformers_folder_runs_on_its_cached_onnx_copy(
    encoder: ContextEncoder,
) -> None:
    from frontdesk.encoding.backend import FastBackend
    from frontdesk.encoding.onnx_copy import copy_folder

    enc = ContextEncoder(encoder.path)
    enc.encode(["my payout is late"])
    assert enc.runtime == "onnx"
    assert isinstance(enc._load(), FastBackend)
    assert enc.kind == "sentence-transformers"  # what the folder is, not what runs it
    assert copy_folder(enc.fingerprint).is_dir()


def test_an_unknown_runtime_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FRONTDESK_ENCODER_RUNTIME", "tensorflow")
    with pytest.raises(FrontdeskError, match="FRONTDESK_ENCODER_RUNTIME='tensorflow'"):
        ContextEncoder()


def test_no_onnx_copy_without_a_writable_cache(
    encoder: ContextEncoder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from frontdesk.encoding.onnx_copy import onnx_copy

    blocked = tmp_path / "cache"
    blocked.write_text("a file where the cache folder should be")
    monkeypatch.setenv("FRONTDESK_CACHE_DIR", str(blocked))
    assert onnx_copy(encoder.path, encoder.fingerprint) is None  # the caller runs torch instead
