"""Routing: the best channel and agent for a contact, within capacity."""

from .agent_matcher import AgentMatcher
from .assignment import PairValues, assign_batch
from .channel_model import ChannelModel
from .features import AgentHistory, AgentRecord, ContextFeaturizer
from .logs import DecisionLogs
from .router import NoEligibleAgentError, RouteDecision, Router, RoutingWeights
from .training import train_router

__all__ = [
    "AgentHistory",
    "AgentMatcher",
    "AgentRecord",
    "ChannelModel",
    "ContextFeaturizer",
    "DecisionLogs",
    "NoEligibleAgentError",
    "PairValues",
    "RouteDecision",
    "Router",
    "RoutingWeights",
    "assign_batch",
    "train_router",
]
