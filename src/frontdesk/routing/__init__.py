"""Routing: the best channel and agent for a contact, within capacity."""

from ..schema import AgentRecord
from .agent_matcher import AgentMatcher
from .assignment import PairValues, assign_batch
from .channel_model import ChannelModel
from .features import AgentHistory, ContextFeaturizer
from .router import NoEligibleAgentError, RouteDecision, Router, RoutingWeights
from .training import train_router

__all__ = [
    "AgentHistory",
    "AgentMatcher",
    "AgentRecord",
    "ChannelModel",
    "ContextFeaturizer",
    "NoEligibleAgentError",
    "PairValues",
    "RouteDecision",
    "Router",
    "RoutingWeights",
    "assign_batch",
    "train_router",
]
