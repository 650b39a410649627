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


def test_retrained_targets_and_pooled_blocks(tmp_path: Path) -> None:
    """The retrained router's targets (argmax; as served: softmax at the served temperature,
    or epsilon-greedy as a mixture with uniform) and the blocks pooled from their intervals."""
    from frontdesk.eval.decision_loop import ESTIMATORS_SHOWN, pool_blocks, retrained_policy

    r = tmp_path / "router"
    assert retrained_policy(r, "argmax", {"epsilon": 0.2}) == {"router": str(r)}
    assert retrained_policy(r, "as-served", {"temperature": 0.1}) == {
        "router": str(r), "temperature": 0.1,
    }  # fmt: skip
    mix = retrained_policy(r, "as-served", {"epsilon": 0.2})["mixture"]
    assert [m["weight"] for m in mix] == [0.8, 0.2] and mix[1]["policy"] == "uniform"
    with pytest.raises(ValueError):
        retrained_policy(r, "greedy", {"epsilon": 0.2})

    def block(value: float, half: float, truth: float) -> dict:  # type: ignore[type-arg]
        est = {"value": value, "ci": [value - half, value + half], "difference": value - 0.3,
               "difference_ci": [value - 0.3 - half, value - 0.3 + half], "ess": 10.0}  # fmt: skip
        return {"truth": truth, "true_difference": truth - 0.3,
                **{e: dict(est) for e in ESTIMATORS_SHOWN}}  # fmt: skip

    # two blocks with standard errors 0.1 and 0.2: the mean's is sqrt(0.01 + 0.04) / 2
    p = pool_blocks([block(0.4, 1.96 * 0.1, 0.35), block(0.2, 1.96 * 0.2, 0.33)])
    assert p["blocks"] == 2 and p["truth"] == pytest.approx(0.34)
    half = 1.96 * (0.05**0.5) / 2
    assert p["dr"]["value"] == pytest.approx(0.3)
    assert p["dr"]["ci"] == pytest.approx([0.3 - half, 0.3 + half])
    assert p["dr"]["difference_ci"] == pytest.approx([-half, half])
    assert p["dr"]["value_covered"] and p["dr"]["difference_covered"]
