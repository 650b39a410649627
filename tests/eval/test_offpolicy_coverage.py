"""Trained routers judged off-policy: intervals cover the truth on held-out days, not on training logs."""

from __future__ import annotations

from pathlib import Path

import pytest

from frontdesk.eval.offpolicy_coverage import coverage_study, summarise

SEEDS = range(2000, 2030)  # the organisations of benchmarks/offpolicy_coverage.py


@pytest.mark.slow
def test_dr_covers_a_trained_router_on_held_out_days(demo_pool, encoder, tmp_path: Path) -> None:
    """30 organisations; a router trained on days 0-3, judged on days 4-6 and on days 0-3."""
    runs = coverage_study(SEEDS, demo_pool, tmp_path, encoder=encoder)
    s = summarise(runs)
    dr = s["fresh"]["dr"]
    assert dr["coverage"] >= 0.9, f"DR covered {dr['covered']} of {dr['runs']} held-out runs"
    # On its own training logs the router is overstated: that is why it is refused there.
    leak = s["training"]["dr"]
    assert leak["bias"] > 0.1 and leak["coverage"] < 0.5, leak
