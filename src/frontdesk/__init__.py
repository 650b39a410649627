"""frontdesk: workflow suggestion, routing, off-policy simulation and scoring for support."""

from ._version import __version__
from .artifacts import load as load_artifact
from .catalog_index import build_index
from .config import Settings
from .desk import ContactDecision, FrontDesk
from .encoding import ContextEncoder, EncodedContexts
from .errors import DataError, FrontdeskError, IndexIntegrityError, ModelUnavailableError
from .index import WorkflowIndex
from .loaders import load_catalog, load_conversations, load_queries
from .routing import AgentRecord, RouteDecision, Router, RoutingWeights
from .schema import Conversation, LabelledQuery, Suggestion, Turn, UserProfile, Workflow
from .suggester import Suggester

__all__ = [
    "AgentRecord",
    "ContactDecision",
    "FrontDesk",
    "RouteDecision",
    "Router",
    "RoutingWeights",
    "ContextEncoder",
    "Conversation",
    "DataError",
    "EncodedContexts",
    "FrontdeskError",
    "IndexIntegrityError",
    "LabelledQuery",
    "ModelUnavailableError",
    "Settings",
    "Suggester",
    "Suggestion",
    "Turn",
    "UserProfile",
    "Workflow",
    "WorkflowIndex",
    "__version__",
    "build_index",
    "load_artifact",
    "load_catalog",
    "load_conversations",
    "load_queries",
]
