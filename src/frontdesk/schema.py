"""Validated records: workflows, conversations, labelled queries and suggestions.

Unknown fields in input are kept (in ``metadata``) rather than dropped, so a
catalog can carry team-specific fields through the pipeline untouched.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


def _fold_unknown_into_metadata(cls: type[BaseModel], data: Any) -> Any:
    if not isinstance(data, dict):
        return data
    known = set(cls.model_fields)
    extra = {k: v for k, v in data.items() if k not in known}
    if not extra:
        return data
    kept = {k: v for k, v in data.items() if k in known}
    if not isinstance(kept.get("metadata") or {}, dict):
        return data  # validation then says what is wrong with ``metadata``
    metadata = dict(kept.get("metadata") or {})
    metadata.update(extra)
    kept["metadata"] = metadata
    return kept


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    @model_validator(mode="before")
    @classmethod
    def _keep_unknown(cls, data: Any) -> Any:
        return _fold_unknown_into_metadata(cls, data)


class Workflow(_Record):
    """One support workflow of the catalog. Only ``id`` and ``title`` are required."""

    id: str = Field(min_length=1, max_length=200)
    title: str = Field(min_length=1)
    description: str = ""
    steps: list[str] = Field(default_factory=list)
    tags: list[str] = Field(default_factory=list)
    examples: list[str] = Field(default_factory=list)
    channels: list[str] = Field(default_factory=list)
    updated_at: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)

    @field_validator("id")
    @classmethod
    def _id_is_plain(cls, v: str) -> str:
        if any(c.isspace() for c in v):
            raise ValueError("must not contain whitespace")
        return v

    def document(self) -> str:
        """The workflow's own text (title, description, steps) used for retrieval."""
        parts = [self.title, self.description, *self.steps]
        return ". ".join(p.strip().rstrip(".") for p in parts if p and p.strip())

    def documents(self, titles: bool = True) -> list[str]:
        """The workflow's own texts as indexed: its whole text, and its title alone.

        The title is a second document because a short question often matches the
        title's few words better than the longer text that dilutes them; with the
        k-NN vote over a workflow's hits, a workflow without examples then scores
        a blend of the two (BANKING77 zero-shot, train split as validation: dense
        top-1 +1.4 to 2.2 points, hybrid +0.3; new workflows beside old ones with
        examples gain most, see BENCHMARKS.md). A workflow with examples barely
        notices it. Where the title is the whole text, or ``titles`` is off
        (``Settings.title_documents``, a layout kept per index), one document.
        """
        whole = self.document()
        if not titles:
            return [whole]
        title = self.title.strip()
        same = " ".join(title.rstrip(".").lower().split()) == " ".join(whole.lower().split())
        return [whole] if same else [whole, title]


Role = Literal["user", "agent", "system"]


class Turn(_Record):
    """One earlier turn of a conversation."""

    role: Role
    text: str


class UserProfile(_Record):
    """Who the user is; every field optional, unknown fields kept in ``metadata``."""

    segment: str | None = None
    country: str | None = None
    plan: str | None = None
    tenure_days: int | None = Field(default=None, ge=0)
    language: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)

    def fields(self) -> dict[str, Any]:
        """Profile as a flat dict (declared fields plus metadata), for slicing."""
        out = {
            k: getattr(self, k) for k in ("segment", "country", "plan", "tenure_days", "language")
        }
        out.update(self.metadata)
        return out


class ConversationContext(_Record):
    turns: list[Turn] = Field(default_factory=list)
    user: UserProfile = Field(default_factory=UserProfile)
    metadata: dict[str, Any] = Field(default_factory=dict)


class Conversation(_Record):
    """The user's latest words plus what came before and who they are."""

    id: str | None = None
    text: str
    context: ConversationContext = Field(default_factory=ConversationContext)
    metadata: dict[str, Any] = Field(default_factory=dict)

    @property
    def turns(self) -> list[Turn]:
        return self.context.turns

    @property
    def user(self) -> UserProfile:
        return self.context.user


class LabelledQuery(Conversation):
    """A conversation with the workflow that applies (``None``: out of scope)."""

    label: str | None = Field(...)

    @field_validator("label")
    @classmethod
    def _label_not_blank(cls, v: str | None) -> str | None:
        if v is not None and not v.strip():
            raise ValueError("must be a workflow id or null")
        return v


class Suggestion(BaseModel):
    """One suggested workflow; ``sources`` holds per-retriever scores and ranks."""

    workflow_id: str
    title: str
    score: float
    rank: int
    sources: dict[str, dict[str, float]] = Field(default_factory=dict)


class Suggestions(list[Suggestion]):
    """Suggestions best first; ``abstained`` when a ranker judged that no workflow fits.

    A list, so code written for plain results keeps working; ``confidence`` is
    the ranker's score in [0, 1] that the first suggestion is right and in
    scope (None without a ranker): P(top right), times P(in scope) when the
    ranker was trained with out-of-scope rows. Compare it with the ranker's
    stored threshold rather than reading it as a probability. ``query_from`` says
    which turns made the retrieval query: ``latest`` (the latest text alone),
    ``mixed`` (it and the earlier turns) or ``earlier`` (the earlier user turns:
    the context gate read the latest as a follow-up); a ranker also reads the
    earlier turns itself.
    """

    abstained: bool = False
    confidence: float | None = None
    query_from: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "abstained": self.abstained,
            "confidence": self.confidence,
            "query_from": self.query_from,
            "suggestions": [s.model_dump() for s in self],
        }


@dataclass
class AgentRecord:
    """An agent as the organisation knows it (listed skills, not true ones)."""

    agent_id: str
    channels: list[str]
    languages: list[str]
    capacity: int
    cost_per_minute: float
    skills: dict[str, float]

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> AgentRecord:
        return cls(
            agent_id=str(d["agent_id"]),
            channels=list(d.get("channels", [])),
            languages=list(d.get("languages", ["en"])),
            capacity=int(d.get("capacity", 1)),
            cost_per_minute=float(d.get("cost_per_minute", 1.0)),
            skills={str(k): float(v) for k, v in dict(d.get("skills", {})).items()},
        )

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)
