"""SparseSearcher: bm25s agrees with rank-bm25; unknown words find nothing."""

from __future__ import annotations

import bm25s
import numpy as np
from rank_bm25 import BM25Okapi

from frontdesk.index import Tokenizer
from frontdesk.retrieval import SparseSearcher

# Fixture corpus: 14 short support texts; no term occurs in more than half of
# them, so Okapi's negative-idf floor (rank-bm25's epsilon) never applies and
# both libraries compute the same Robertson BM25.
CORPUS = [
    "payout delayed bank account arrival date",
    "payout failed bank returned funds account closed",
    "refund customer card payment partial amount",
    "refund not received customer bank statement reference number",
    "dispute chargeback evidence deadline submit",
    "dispute lost fee chargeback reversed",
    "card declined insufficient funds customer",
    "card declined authentication failed 3ds challenge",
    "api key rotate secret roll expire",
    "api key leaked github exposed revoke",
    "webhook endpoint failing timeout retries",
    "webhook signature verification secret header",
    "login locked out password reset email",
    "two factor device lost recovery code login",
]
QUERIES = [
    "my payout failed and the bank returned it",
    "customer did not receive the refund",
    "chargeback evidence",
    "leaked api secret on github",
    "webhook retries timeout",
    "lost my two factor device",
    "card declined",
]


def test_bm25s_matches_rank_bm25_top10() -> None:
    tokens = [doc.split() for doc in CORPUS]
    ours = bm25s.BM25(k1=1.5, b=0.75, method="robertson")
    ours.index(tokens, show_progress=False)
    peer = BM25Okapi(tokens, k1=1.5, b=0.75)
    for q in QUERIES:
        qt = [t for t in q.split() if t in ours.vocab_dict]
        a, b = ours.get_scores(qt), peer.get_scores(q.split())
        # bm25s leaves the constant (k1 + 1) out of the numerator: same ranking, scaled scores
        np.testing.assert_allclose(a * (1.5 + 1), b, rtol=1e-5, atol=1e-5)
        top_a = np.argsort(-a, kind="stable")[:10]
        top_b = np.argsort(-b, kind="stable")[:10]
        assert list(top_a[a[top_a] > 0]) == list(top_b[b[top_b] > 0]), q


def _searcher() -> SparseSearcher:
    tok = Tokenizer()
    bm25 = bm25s.BM25(method="lucene")
    bm25.index([tok(d) for d in CORPUS], show_progress=False)
    # documents 2i and 2i+1 belong to workflow i
    return SparseSearcher(bm25, np.arange(len(CORPUS), dtype=np.int32) // 2)


def test_sparse_aggregates_documents_per_workflow() -> None:
    s = _searcher()
    (hits,) = s.search([Tokenizer()("refund never received by the customer")], k=3)
    assert hits.ids[0] == 1  # the refund workflow (documents 2 and 3)
    assert len(set(hits.ids.tolist())) == len(hits)
    assert np.all(np.diff(hits.scores) <= 0)


def test_query_of_unknown_or_stop_words_returns_no_hits() -> None:
    s = _searcher()
    none, stop, empty = s.search([["zzqx", "blorf"], Tokenizer()("yes please, it is"), []], k=5)
    assert len(none) == 0 and len(stop) == 0 and len(empty) == 0


def test_tokenizer_stems_drops_stopwords_keeps_negation() -> None:
    assert Tokenizer()("My payouts are NOT arriving!") == ["payout", "not", "arriv"]
