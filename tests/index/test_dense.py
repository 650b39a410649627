"""Dense index kinds: chosen by size, tuned to a recall target, parameters survive a round trip."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from frontdesk import Settings
from frontdesk.errors import FrontdeskError
from frontdesk.index.dense import (
    build_dense,
    choose_kind,
    exact_neighbours,
    ivf_lists,
    probe_queries,
    read_dense,
    recall_at,
    reconstruct_all,
    write_dense,
)


def clustered(n: int, d: int = 32, centres: int = 50, seed: int = 0) -> np.ndarray:
    """Unit vectors around random centres: structure for IVF to find, like topics."""
    rng = np.random.default_rng(seed)
    c = rng.standard_normal((centres, d))
    x = c[rng.integers(0, centres, n)] + 0.6 * rng.standard_normal((n, d))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_auto_is_exact_up_to_the_threshold_then_ivf() -> None:
    assert choose_kind(100, "auto", 100) == "flat"
    assert choose_kind(101, "auto", 100) == "ivf"
    assert choose_kind(5, "hnsw", 100) == "hnsw"
    with pytest.raises(ValueError, match="must be one of"):
        choose_kind(5, "annoy", 100)


def test_ivf_lists_follow_sqrt_n_and_never_starve_a_centroid() -> None:
    assert ivf_lists(1_000_000) == 1024
    assert ivf_lists(100_000) == 256
    assert ivf_lists(10) == 1
    assert ivf_lists(2_000) <= 2_000 // 39


def test_more_ivf_lists_than_vectors_is_a_clear_error() -> None:
    with pytest.raises(
        FrontdeskError, match=r"ivf_lists \(FRONTDESK_IVF_LISTS\) is 64, more than the 50"
    ):
        build_dense(clustered(50), Settings(dense_index="ivf", ivf_lists=64))


def test_probe_queries_sit_at_the_stated_cosine() -> None:
    x = clustered(500)
    q = probe_queries(x, 100)
    assert np.allclose(np.linalg.norm(q, axis=1), 1.0, atol=1e-5)
    # each probe is 0.75 from some row of x, so its best match is at least that close
    assert (q @ x.T).max(axis=1).min() >= 0.75 - 1e-5


@pytest.mark.parametrize("kind", ["ivf", "hnsw"])
def test_approximate_kinds_reach_the_recall_target_on_fresh_queries(kind: str) -> None:
    x = clustered(6000)
    index, params = build_dense(x, Settings(dense_index=kind, dense_recall_target=0.95))
    assert params["type"] == kind and params["requested"] == kind
    assert params["recall_at_10"] >= 0.95
    knob = "nprobe" if kind == "ivf" else "ef_search"
    # the smallest knob that reached the target was chosen: every smaller one fell short
    measured = params["tuning"][knob]
    assert all(r < 0.95 for v, r in measured.items() if int(v) < params[knob])
    # other queries than the tuning probes (another seed) keep most of it
    fresh = probe_queries(x, 200, seed=7)
    got = recall_at(index.search(fresh, 10)[1], exact_neighbours(x, fresh, 10))
    assert got >= 0.9


def test_search_parameters_survive_write_and_read(tmp_path: Path) -> None:
    x = clustered(3000)
    index, params = build_dense(x, Settings(dense_index="ivf", ivf_lists=32))
    assert params["lists"] == 32
    write_dense(index, tmp_path / "d.faiss")
    back = read_dense(tmp_path / "d.faiss", params)
    assert back.nprobe == params["nprobe"]
    assert np.array_equal(back.search(x[:5], 10)[1], index.search(x[:5], 10)[1])


def test_ivf_vectors_read_back_within_8_bit_error() -> None:
    x = clustered(2000)
    index, _ = build_dense(x, Settings(dense_index="ivf"))
    assert np.abs(reconstruct_all(index) - x).max() < 0.02


def test_flat_is_exact_and_untuned() -> None:
    x = clustered(300)
    index, params = build_dense(x, Settings())
    assert params == {"type": "flat", "requested": "auto", "metric": "inner_product"}
    assert np.array_equal(reconstruct_all(index), x)


def test_example_rows_are_the_probes_when_there_are_enough() -> None:
    x = clustered(4000)
    settings = Settings(dense_index="ivf", dense_recall_target=0.95)
    _, with_examples = build_dense(x, settings, probe_rows=np.arange(1000, 4000))
    assert with_examples["tuning"]["probes"] == "examples"
    assert with_examples["recall_at_10"] >= 0.95
    _, too_few = build_dense(x, settings, probe_rows=np.arange(50))
    assert too_few["tuning"]["probes"].startswith("cosine")
