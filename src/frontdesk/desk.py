"""FrontDesk: workflow suggestions and a route for each contact, from one encoding."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .errors import IndexIntegrityError
from .limits import check_k
from .loaders import check_queries
from .routing import RouteDecision, Router
from .schema import Suggestions
from .suggester import Query, Suggester


@dataclass
class ContactDecision:
    """What frontdesk proposes for one contact: workflows to follow and where to send it."""

    conversation_id: str | None
    suggestions: Suggestions
    route: RouteDecision | None  # None: every eligible agent is busy; the contact waits

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.conversation_id,
            "suggestions": self.suggestions.to_json(),
            "route": self.route.to_json() if self.route else None,
        }


class FrontDesk:
    """Suggestion and routing from one encoding per contact.

    The suggester's encoder encodes each batch of contacts once; the same
    ``EncodedContexts`` feed retrieval, the ranker and the router (which must
    have been trained with the same encoder; checked on construction).
    """

    def __init__(self, suggester: Suggester, router: Router) -> None:
        enc = suggester.encoder
        if enc is not None and enc.fingerprint != router.encoder.fingerprint:
            raise IndexIntegrityError(
                "the suggester's index and the router were built with different encoders; "
                "one encoding cannot serve both"
            )
        self.suggester = suggester
        self.router = router
        self.encoder = enc or router.encoder

    def handle(
        self,
        conversations: Sequence[Query],
        available_agents: Sequence[Any],
        *,
        k: int = 5,
        waits: Sequence[float] | None = None,
    ) -> list[ContactDecision]:
        """Suggest and route a batch of waiting contacts (jointly, within capacity).

        Each contact is checked before anything is encoded (a DataError names it).
        """
        convs = check_queries(conversations, "conversations")
        check_k(k, None, "handle")
        if not convs:
            return []
        cache = self.suggester.query_cache if self.suggester.encoder is self.encoder else None
        encoded = self.encoder.encode_contexts(convs, cache=cache)
        suggestions = self.suggester.suggest_many(
            convs, k=k, encoded=encoded if self.suggester.encoder is not None else None
        )
        routes = self.router.route_many(convs, available_agents, encoded=encoded, waits=waits)
        return [
            ContactDecision(c.id, s, r) for c, s, r in zip(convs, suggestions, routes, strict=True)
        ]
