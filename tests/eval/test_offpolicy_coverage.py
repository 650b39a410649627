"""Trained routers judged off-policy: intervals cover the truth on held-out days, not on training logs."""

from __future__ import annotations

from pathlib import Path

import pytest

from frontdesk.eval.offpolicy_coverage import coverage_study, summarise

SEEDS = range(2000, 2030)  # the organisations of benchmarks/offpolicy_coverage.py


@pytest.mark.slow
def test_dr_covers_a_trained_router_on_held_out_days(demo_pool, encoder, tmp_path: Path) -> None:
    """30 organisations; a router trained on days 0-3, judged on days 4-6 and on days 0-3.

    The bar is 25 of 30: a perfectly calibrated 95 % interval covers the truth
    fewer than 25 times in 30 with probability 0.3 % (binomial), while 27 of 30
    would fail one 6 % of the time, so any change of the simulated organisations
    (another encoder runtime's last-digit differences move every router) could
    flip it. Calibration is checked beside it where 30 runs have power: the
    mean error must be near zero and the intervals of a useful width.
    """
    runs = coverage_study(SEEDS, demo_pool, tmp_path, encoder=encoder)
    s = summarise(runs)
    dr = s["fresh"]["dr"]
    assert dr["covered"] >= 25, f"DR covered {dr['covered']} of {dr['runs']} held-out runs"
    assert abs(dr["bias"]) < 0.03, dr  # about 2.5 standard errors of a 30-run mean
    assert dr["mean_width"] < 0.3, dr  # covering by being uninformative is no coverage
    # On its own training logs the router is overstated: that is why it is refused there
    # (BENCHMARKS.md: +0.077, 11 of 30 covered).
    leak = s["training"]["dr"]
    assert leak["bias"] > 0.05 and leak["coverage"] < 0.5, leak
