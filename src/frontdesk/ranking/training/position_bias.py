"""Position bias of agents' choices: how likely each shown position is to be looked at.

An agent takes a suggestion only if they examine its position, so labels from
logged lists over-represent questions whose workflow the serving model already
put first. With examination probabilities θ_k (position k), a label taken at
position k weighs 1/θ_k (clipped), which makes the labelled questions an
unbiased sample of the traffic again (Joachims et al. 2017, "Unbiased
Learning-to-Rank with Biased Feedback").

θ is estimated by intervention harvesting (Agarwal et al. 2019, "Estimating
Position Bias without Intrusive Interventions"), here from the server's own
interventions: a list reordered uniformly at random over its top N puts every
one of those N workflows at every position equally often, so relevance is
independent of position there, and the acceptance rate at position k is
θ_k times a constant. The logged lists mix reordered and as-ranked orders;
each list of the most common N is weighed by (1/N!) / shown_propensity, which
turns the mixture into the uniform reordering (self-normalised), and
θ_k = rate_k / rate_1, then made non-increasing in k (a running minimum) and
clipped to [1/max weight, 1], with a warning when either changed anything.
Positions beyond N take θ_N; a label from outside the shown list weighs 1.

How much θ rests on is what the lists actually shown in another order than
ranked hold: at a low explore rate nearly every randomised list is shown as
ranked, and those weigh only (1/N!)/(p/N! + 1 − p) each. Without any reordered
list, or with fewer than ``MIN_ACCEPTED`` acceptances in them (θ would be
noise), nothing is corrected (``source`` says so); ``accepted_by_position``
counts those acceptances.
"""

from __future__ import annotations

import math
import warnings
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ...decisions.feedback import ShownList

DEFAULT_MAX_WEIGHT = 10.0
MIN_ACCEPTED = 30  # acceptances in the reordered lists below which θ is not estimated
NO_RANDOMISED = "none: no list was shown in a randomised order (position-only logs), no correction"
CORRECTION_OFF = "off: --no-position-correction"
TOO_FEW = (
    "none: {n} acceptances in lists actually reordered ({r} of {u} randomised lists; fewer "
    "than {m}), no correction"
)
NO_ACCEPTANCE = "none: no randomised list was accepted from at position 1, no correction"
HARVESTED = "intervention harvesting over randomised top-{n} lists"


@dataclass(frozen=True)
class PositionBias:
    """Per-position examination estimates θ (position 1 = 1.0) and the weights they give."""

    theta: list[float]  # θ_1..θ_N; empty: no correction
    max_weight: float
    source: str  # how θ was obtained, or why there is none, in words
    lists: int  # lists read
    randomised_lists: int  # lists whose order was drawn at random with some probability
    used_lists: int  # randomised lists of the most common N, which θ is estimated from
    reordered_lists: int  # of those, the ones actually shown in another order than ranked
    accepted_by_position: list[int]  # acceptances at each position in the reordered lists
    raw_theta: list[float] | None = None  # θ before the running minimum and the clip

    @property
    def corrects(self) -> bool:
        """Whether labels are weighted at all."""
        return bool(self.theta)

    def weight(self, rank: int | None) -> float:
        """The weight of a label taken at 1-based ``rank`` (None: not from the shown list)."""
        if not self.theta or rank is None:
            return 1.0
        theta = self.theta[min(rank, len(self.theta)) - 1]
        return self.max_weight if theta <= 0 else min(self.max_weight, 1.0 / theta)

    def to_json(self) -> dict[str, Any]:
        """What ``ranker.json`` records of the estimate (``training.feedback.position_bias``)."""
        return {
            "source": self.source,
            "theta": [round(t, 6) for t in self.theta],
            "weights": [round(self.weight(k), 6) for k in range(1, len(self.theta) + 1)],
            "max_weight": self.max_weight,
            "lists": self.lists,
            "randomised_lists": self.randomised_lists,
            "used_lists": self.used_lists,
            "reordered_lists": self.reordered_lists,
            "accepted_by_position": self.accepted_by_position,
            "raw_theta": [round(t, 6) for t in self.raw_theta] if self.raw_theta else None,
        }


def estimate_position_bias(
    lists: Sequence[ShownList],
    max_weight: float = DEFAULT_MAX_WEIGHT,
    correct: bool = True,
    min_accepted: int = MIN_ACCEPTED,
) -> PositionBias:
    """θ from the randomised ``lists`` (see the module docstring); ``correct`` False, no
    randomised list or fewer than ``min_accepted`` acceptances in the reordered ones give
    no correction, and say why."""
    if max_weight < 1:
        raise ValueError("the largest position weight must be at least 1")
    randomised = [s for s in lists if s.randomised]
    if not correct or not randomised:
        why = CORRECTION_OFF if not correct else NO_RANDOMISED
        return PositionBias([], max_weight, why, len(lists), len(randomised), 0, 0, [])
    n = Counter(s.shuffled_top for s in randomised).most_common(1)[0][0]
    used = [s for s in randomised if s.shuffled_top == n]
    mass = [0.0] * n
    accepted = [0] * n  # in the reordered lists only: what θ really rests on
    for s in used:
        w = (1.0 / math.factorial(n)) / s.shown_propensity  # to the uniform reordering
        if s.accepted_rank is not None and s.accepted_rank <= n:
            mass[s.accepted_rank - 1] += w
            accepted[s.accepted_rank - 1] += s.reordered
    counts = (len(lists), len(randomised), len(used), sum(s.reordered for s in used))
    why = None
    if sum(accepted) < min_accepted:
        why = TOO_FEW.format(n=sum(accepted), r=counts[3], u=counts[2], m=min_accepted)
    elif mass[0] <= 0:
        why = NO_ACCEPTANCE
    if why is not None:
        return PositionBias([], max_weight, why, *counts, accepted)
    raw = [m / mass[0] for m in mass]  # rate_k / rate_1 (self-normalised: the total cancels)
    theta = _monotone_clipped(raw, 1.0 / max_weight)
    return PositionBias(theta, max_weight, HARVESTED.format(n=n), *counts, accepted, raw)


def _monotone_clipped(raw: list[float], floor: float) -> list[float]:
    """``raw`` θ made non-increasing (a running minimum) and clipped to [``floor``, 1]; a
    warning when that changed it (noise: a later position looked at more, or never)."""
    theta, low = [], 1.0
    for t in raw:
        low = min(low, t)
        theta.append(min(1.0, max(floor, low)))
    if any(abs(a - b) > 1e-12 for a, b in zip(raw, theta, strict=True)):
        warnings.warn(
            "position bias: the estimated θ = ["
            + ", ".join(f"{t:.3f}" for t in raw)
            + "] was made non-increasing and clipped to ["
            + f"{floor:.3g}, 1]: θ = ["
            + ", ".join(f"{t:.3f}" for t in theta)
            + "] (too few reordered lists for a steady estimate?)",
            stacklevel=3,
        )
    return theta
