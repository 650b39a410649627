"""UtilityWeights: what one contact's outcome is worth, the single definition of value.

The router maximises it, the simulated organisation scores its decisions with
it, and the off-policy simulation reports it as the ``utility`` metric.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .errors import FrontdeskError


@dataclass(frozen=True)
class UtilityWeights:
    """Utility = resolution * P(resolved) + csat * (CSAT-1)/4 - handle_time * min/60 - cost * $/10."""

    resolution: float = 1.0
    csat: float = 0.5
    handle_time: float = 0.5
    cost: float = 0.5

    def utility(self, res: Any, csat: Any, handle: Any, cost: Any) -> Any:
        return (
            self.resolution * res
            + self.csat * (csat - 1.0) / 4.0
            - self.handle_time * handle / 60.0
            - self.cost * cost / 10.0
        )

    @classmethod
    def parse(cls, text: str | None) -> UtilityWeights:
        """``"resolution=1,csat=0.5,handle_time=0.5,cost=0.5"`` (any subset)."""
        if not text:
            return cls()
        values: dict[str, float] = {}
        for part in text.split(","):
            key, _, val = part.partition("=")
            key = key.strip()
            if key not in cls.__dataclass_fields__:
                raise FrontdeskError(
                    f"--weights: unknown weight {key!r}; use {', '.join(cls.__dataclass_fields__)}"
                )
            try:
                values[key] = float(val)
            except ValueError:
                raise FrontdeskError(f"--weights: {key}={val!r} is not a number") from None
        return cls(**values)
