"""Routing: the best channel and agent for a contact, within capacity."""

from ..schema import AgentRecord
from .agent_matcher import AgentMatcher
from .assignment import PairValues, assign_batch, assign_guarded
from .channel_model import ChannelModel
from .features import ContextFeaturizer
from .guard import POLICY_ROUTER, POLICY_RULE
from .router import NoEligibleAgentError, RouteDecision, Router, RoutingWeights
from .training import NoLiftError, train_router

__all__ = [
    "POLICY_ROUTER",
    "POLICY_RULE",
    "AgentMatcher",
    "AgentRecord",
    "ChannelModel",
    "ContextFeaturizer",
    "NoEligibleAgentError",
    "NoLiftError",
    "PairValues",
    "RouteDecision",
    "Router",
    "RoutingWeights",
    "assign_batch",
    "assign_guarded",
    "train_router",
]
