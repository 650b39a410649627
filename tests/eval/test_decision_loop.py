"""The decision loop on loopback: served decisions and posted outcomes, joined, judged."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="the serve extra is not installed")


@pytest.mark.slow
def test_the_served_policys_interval_covers_its_exact_value(
    tmp_path: Path, demo_pool, encoder
) -> None:  # type: ignore[no-untyped-def]
    from frontdesk.eval.decision_loop import run_loop

    result = run_loop(tmp_path, demo_pool, seed=11, contacts_per_day=150, train_days=3,
                      replicates=3, days_per_replicate=1, retrain_blocks=0, encoder=encoder)  # fmt: skip
    runs = result["runs"]
    assert len(runs) == 3 and all(r["rows"] >= 140 for r in runs)
    assert all(r["unjoined"] == 0 for r in runs)  # every posted outcome found its decision
    # 95 % intervals: all three miss together with probability ~1e-4; two of three is the bar
    assert result["summary"]["dr"]["covered"] >= 2, runs
    assert abs(result["summary"]["dr"]["mean_bias"]) < 0.05
