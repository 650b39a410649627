"""The abstention trade-off table on validation outcomes, worked by hand."""

from __future__ import annotations

import numpy as np
import pytest

from frontdesk.errors import FrontdeskError
from frontdesk.eval.thresholds import threshold_grid, tradeoff_rows, wilson_interval
from frontdesk.ranking.calibration import ValidationOutcomes

# four in-scope rows (the third ranked wrong), then two out of scope
OUTCOMES = ValidationOutcomes(
    confidence=np.array([0.9, 0.8, 0.6, 0.4, 0.3, 0.7]),
    in_scope=np.array([True, True, True, True, False, False]),
    top1_correct=np.array([True, True, False, True, False, False]),
)


def test_tradeoff_rows_by_hand() -> None:
    at = {row["threshold"]: row for row in tradeoff_rows(OUTCOMES, [0.0, 0.5, 0.75, 1.0])}
    # intervals from the counts: 3 of 4 in-scope rows right at 0, 2 of 4 at 0.75
    assert at[0.0].pop("in_scope_accuracy_95ci") == wilson_interval(3, 4)
    assert at[0.0].pop("oos_recall_95ci") == wilson_interval(0, 2)
    assert at[0.75].pop("in_scope_accuracy_95ci") == wilson_interval(2, 4)
    assert at[0.75].pop("oos_recall_95ci") == wilson_interval(2, 2)
    # nothing abstained: every in-scope row answered, no OOS row caught, no precision
    assert at[0.0] == {
        "threshold": 0.0, "abstained_rate": 0.0, "in_scope_accuracy": 0.75,
        "answered_accuracy": 0.5, "oos_recall": 0.0, "oos_precision": None,
        "decision_accuracy": 0.5,
    }  # fmt: skip
    # below 0.75: rows 0.6, 0.4, 0.3 and 0.7 abstained; the two answered are right
    assert at[0.75] == {
        "threshold": 0.75, "abstained_rate": 4 / 6, "in_scope_accuracy": 0.5,
        "answered_accuracy": 1.0, "oos_recall": 1.0, "oos_precision": 0.5,
        "decision_accuracy": 4 / 6,
    }  # fmt: skip
    assert at[0.5]["oos_recall"] == at[0.5]["oos_precision"] == 0.5
    # everything abstained: nothing answered to be right or wrong
    assert at[1.0]["answered_accuracy"] is None and at[1.0]["in_scope_accuracy"] == 0.0
    assert at[1.0]["oos_recall"] == 1.0 and at[1.0]["oos_precision"] == pytest.approx(2 / 6)


def test_without_out_of_scope_rows_the_oos_measures_are_missing() -> None:
    only_in = ValidationOutcomes(
        OUTCOMES.confidence[:4], OUTCOMES.in_scope[:4], OUTCOMES.top1_correct[:4]
    )
    (row,) = tradeoff_rows(only_in, [0.5])
    assert row["oos_recall"] is None and row["oos_precision"] is None
    assert row["oos_recall_95ci"] is None and row["in_scope_accuracy_95ci"] is not None
    assert row["in_scope_accuracy"] == 0.5 and row["answered_accuracy"] == 2 / 3


def test_threshold_grid() -> None:
    assert threshold_grid(0.25) == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert threshold_grid(0.1)[3] == 0.3 and len(threshold_grid(0.1)) == 11
    assert threshold_grid(0.3) == [0.0, 0.3, 0.6, 0.9, 1.0]  # 1 even off the step
    assert len(threshold_grid(0.001)) == 1001
    for bad in (0.0, -0.1, 0.0001, 1.5):
        with pytest.raises(FrontdeskError, match="--step"):
            threshold_grid(bad)


def test_wilson_interval_against_published_values() -> None:
    # 95 % Wilson score intervals as tabulated (Newcombe 1998, method 3)
    assert wilson_interval(5, 10) == pytest.approx([0.2366, 0.7634], abs=1e-4)
    assert wilson_interval(0, 10) == pytest.approx([0.0, 0.2775], abs=1e-4)
    assert wilson_interval(10, 10) == pytest.approx([0.7225, 1.0], abs=1e-4)
    assert wilson_interval(81, 263) == pytest.approx([0.2553, 0.3662], abs=1e-4)
    assert wilson_interval(0, 0) is None
