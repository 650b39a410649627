"""The skills-based routing rule: the baseline a trained router must beat.

The best eligible (channel, agent) pair by the agent's listed skill on the
contact's menu topic, the segment's preferred channel and the agent's cost.
The simulated organisation logs its decisions with it, the off-policy
``rule`` policy replays it on any organisation's logs, and a router defers to
it where it has not been shown better (on its predicted topic mix).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# Preference of each segment for each channel; an unknown segment or channel scores 0.5.
RULE_CHANNEL_PREFERENCE: dict[str, dict[str, float]] = {
    "individual": {"phone": 0.2, "chat": 1.0, "email": 0.5},
    "small_business": {"phone": 0.6, "chat": 0.8, "email": 0.4},
    "enterprise": {"phone": 1.0, "chat": 0.5, "email": 0.0},
    "platform": {"phone": 0.3, "chat": 0.5, "email": 0.6},
}


def rule_score(
    listed_skill: np.ndarray,
    segment: str,
    channels: Sequence[str],
    cost_per_minute: np.ndarray,
) -> np.ndarray:
    """The rule's score of each eligible pair: listed skill, the segment's channel, cost."""
    prefs = RULE_CHANNEL_PREFERENCE.get(segment, {})
    pref = np.array([prefs.get(h, 0.5) for h in channels], dtype=float)
    return 2.0 * listed_skill + pref - 0.1 * cost_per_minute
