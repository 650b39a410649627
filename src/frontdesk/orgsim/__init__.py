"""Simulation: a support organisation with a known outcome model, and its decision logs."""

from .org import continue_org, run_day, simulate_org
from .world import OrgConfig, QueryPool, UtilityWeights, World

__all__ = [
    "OrgConfig",
    "QueryPool",
    "UtilityWeights",
    "World",
    "continue_org",
    "run_day",
    "simulate_org",
]
