"""The decision loop on loopback: served decisions and posted outcomes, joined, judged."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="the serve extra is not installed")


@pytest.mark.slow
def test_the_served_policys_interval_covers_its_exact_value(
    tmp_path: Path, demo_pool, encoder
) -> None:  # type: ignore[no-untyped-def]
    """The served policy judged off-policy; beside it a uniformly random canary (epsilon 1)
    at 10 %, whose lift report is judged against each arm's exact value."""
    from frontdesk.eval.decision_loop import run_loop

    result = run_loop(tmp_path, demo_pool, seed=11, contacts_per_day=150, train_days=3,
                      replicates=3, days_per_replicate=1, retrain_blocks=0, encoder=encoder,
                      canary_percent=10.0, canary_parameters={"epsilon": 1.0})  # fmt: skip
    runs = result["runs"]
    assert len(runs) == 3 and all(r["rows"] >= 140 for r in runs)
    assert all(r["unjoined"] == 0 for r in runs)  # every posted outcome found its decision
    # 95 % intervals: all three miss together with probability ~1e-4; two of three is the bar
    assert result["summary"]["dr"]["covered"] >= 2, runs
    assert abs(result["summary"]["dr"]["mean_bias"]) < 0.05

    # the canary: one draw per /v1/route request (one contact each), about 10 % of 450 rows
    canary = result["canary"]
    pooled = canary["pooled"]
    assert pooled["rows"] == sum(r["rows"] for r in runs) and pooled["unjoined"] == 0
    assert 0.05 <= pooled["share"] <= 0.15, pooled["share"]
    u = pooled["metrics"]["utility"]
    assert u["true_difference"] < 0  # a random pair is worse than the router's, on average
    # 95 % intervals against the arms' exact values on the contacts each served (conservative
    # there: Welch also counts contact-to-contact spread); no verdict contradicts the truth
    assert u["covered"], u
    covered = sum(m["covered"] for r in canary["runs"] for m in r["metrics"].values())
    assert covered >= 13, canary["runs"]  # of 3 blocks x 5 metrics
    assert all(m["true_verdict_agrees"] for m in pooled["metrics"].values()), pooled
