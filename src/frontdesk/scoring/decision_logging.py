"""DecisionLogger: the server's side of a decision log (``frontdesk serve --decision-log``).

For every answer of a ``decision_task`` runtime it builds one record per text
(``frontdesk.decisions.records.decision_schema``) and hands it to a background
writer; the request never waits on disk. It also explores suggestion lists
(``explore_top_k`` / ``explore_rate``: for that share of requests the top N
are shown in a uniformly random order, and the log says how likely the shown
order was) and takes outcomes in (``POST /v1/outcomes``), durably before it
answers.
"""

from __future__ import annotations

import functools
import itertools
import math
import os
import random
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from ..decisions.records import (
    TEXT_POLICIES,
    check_outcome,
    decision_schema,
    new_decision_id,
    outcome_rows,
    outcome_schema,
    private_text,
)
from ..decisions.store import DECISIONS, OUTCOMES, DecisionLogDir
from ..decisions.writer import WHEN_FULL, DeferredRows, DurableParquetWriter
from .protocol import InferenceRequest, InferenceResponse

MAX_OUTCOMES_PER_BATCH = 10_000
ENV_PREFIX = "FRONTDESK_DECISION_LOG"


@dataclass(frozen=True)
class DecisionLogSettings:
    """How the server logs decisions; each field also read from ``FRONTDESK_DECISION_LOG_*``."""

    folder: str
    log_text: str = "keep"  # keep | hash | drop
    explore_top_k: int = 0  # 0: suggestion lists are shown as ranked
    explore_rate: float = 0.0
    when_full: str = "drop"  # drop | block
    flush_rows: int = 1000
    flush_seconds: float = 2.0
    buffer_rows: int = 20_000

    def __post_init__(self) -> None:
        if self.log_text not in TEXT_POLICIES:
            raise ValueError(f"--log-text must be one of {', '.join(TEXT_POLICIES)}")
        if self.when_full not in WHEN_FULL:
            raise ValueError(f"--log-when-full must be one of {', '.join(WHEN_FULL)}")
        if not 0 <= self.explore_rate <= 1 or not math.isfinite(self.explore_rate):
            raise ValueError("--explore-rate must be in [0, 1]")
        if self.explore_top_k < 0 or self.explore_top_k == 1 or self.explore_top_k > 8:
            raise ValueError("--explore-top-k must be 0 (off) or from 2 to 8")
        if self.explore_rate > 0 and not self.explore_top_k:
            raise ValueError("--explore-rate needs --explore-top-k N (how many to reorder)")

    def to_env(self) -> dict[str, str]:
        return {f"{ENV_PREFIX}_{k.upper()}": str(v) for k, v in asdict(self).items()}

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> DecisionLogSettings | None:
        env = dict(os.environ if env is None else env)
        folder = env.get(f"{ENV_PREFIX}_FOLDER")
        if not folder:
            return None
        kw: dict[str, Any] = {}
        for name, f in cls.__dataclass_fields__.items():
            raw = env.get(f"{ENV_PREFIX}_{name.upper()}")
            if raw is not None and name != "folder":
                kw[name] = {"int": int, "float": float}.get(str(f.type), str)(raw)
        return cls(folder=folder, **kw)


class DecisionLogger:
    """Builds decision and outcome records and owns their two background writers."""

    def __init__(
        self,
        settings: DecisionLogSettings,
        seed: int | None = None,
        on_drop: Any = None,
        on_logged: Any = None,
    ) -> None:
        self.settings = settings
        self.store = DecisionLogDir.create(settings.folder)
        common = {
            "flush_rows": settings.flush_rows,
            "flush_seconds": settings.flush_seconds,
            "buffer_rows": settings.buffer_rows,
            "when_full": settings.when_full,
        }
        self.decisions = DurableParquetWriter(
            self.store.root / DECISIONS, decision_schema(), DECISIONS,
            on_drop=(lambda n: on_drop(DECISIONS, n)) if on_drop else None,
            on_file=(lambda n: on_logged(DECISIONS, n)) if on_logged else None, **common,
        )  # fmt: skip
        self.outcomes = DurableParquetWriter(
            self.store.root / OUTCOMES, outcome_schema(), OUTCOMES,
            on_drop=(lambda n: on_drop(OUTCOMES, n)) if on_drop else None,
            on_file=(lambda n: on_logged(OUTCOMES, n)) if on_logged else None,
            **{**common, "when_full": "drop"},  # an outcome batch is refused (503), never waits
        )  # fmt: skip
        self._rng = random.Random(seed)
        self._seq = itertools.count()

    def close(self) -> None:
        self.decisions.close()
        self.outcomes.close()

    # -- suggestion lists ----------------------------------------------------------------------

    def explore_lists(self, response: InferenceResponse) -> list[dict[str, Any]]:
        """Reorder a share of the served lists in place; per text, what the log records
        (empty when lists are not explored: the records then say so themselves)."""
        s = self.settings
        if s.explore_rate <= 0 or s.explore_top_k < 2:
            return []
        out = {t.name: t for t in response.outputs}
        ids = out.get("workflow_id")
        if ids is None or len(ids.shape) != 2:
            return []
        n, k = ids.shape
        info = []
        for i in range(n):
            row = list(ids.data[i * k : (i + 1) * k])
            shown = sum(1 for w in row if w)
            top = min(s.explore_top_k, shown)
            ranked = [w for w in row if w]
            entry: dict[str, Any] = {
                "ranked_ids": ranked, "explore_top_k": s.explore_top_k,
                "explore_rate": s.explore_rate, "shown_propensity": 1.0,
            }  # fmt: skip
            if top >= 2 and s.explore_rate > 0:
                explored = self._rng.random() < s.explore_rate
                order = list(range(top))
                if explored:
                    self._rng.shuffle(order)
                stays = order == list(range(top))
                uniform = s.explore_rate / math.factorial(top)
                entry["shown_propensity"] = uniform + ((1 - s.explore_rate) if stays else 0.0)
                if not stays:
                    for t in response.outputs:
                        if len(t.shape) == 2 and t.shape[1] == k:
                            part = t.data[i * k : i * k + top]
                            t.data = [  # a new list: a snapshot taken before stays as it was
                                *t.data[: i * k],
                                *[part[j] for j in order],
                                *t.data[i * k + top :],
                            ]
            info.append(entry)
        return info

    # -- records ---------------------------------------------------------------------------------

    def log(
        self,
        task: str,
        model: str,
        version: str,
        role: str,
        request: InferenceRequest,
        response: InferenceResponse,
        latency_s: float,
        endpoint: str,
        explored: list[dict[str, Any]] | None = None,
        shadow_of: list[str] | None = None,
    ) -> list[str] | None:
        """One record per text of ``request``; their decision ids, None when dropped.

        The request path only takes ids and references (the runtime has already
        validated the request; nothing here changes it or the served outputs): the
        writer thread builds the records (``PendingDecisions.to_arrow``).
        """
        texts = request.input("text").data
        ids = [new_decision_id() for _ in texts]
        pending = PendingDecisions(
            ids, time.time_ns() // 1000, task, model, version, role, endpoint, latency_s,
            texts, request.parameters, {t.name: (t.data, t.shape) for t in response.outputs},
            response.log, explored, shadow_of, self.settings,
        )  # fmt: skip
        if self.decisions.submit(pending) is None:
            return None  # dropped (buffer full): no id is handed out for a decision not logged
        return ids

    # -- outcomes ----------------------------------------------------------------------------------

    def accept_outcomes(self, body: Any, source: str = "api") -> int | None:
        """Validate a batch (all or nothing) and hand it to the writer; a ticket, None if full.

        Raises ``OutcomeError`` (record and field) or ``ValueError`` (the body's shape).
        """
        if not isinstance(body, dict) or set(body) != {"outcomes"}:
            raise ValueError('the body must be {"outcomes": [...]} and nothing else')
        batch = body["outcomes"]
        if not isinstance(batch, list) or not batch:
            raise ValueError("outcomes must be a non-empty list")
        if len(batch) > MAX_OUTCOMES_PER_BATCH:
            raise ValueError(
                f"{len(batch)} outcomes in one batch; at most {MAX_OUTCOMES_PER_BATCH}"
            )
        rows = outcome_rows([check_outcome(r, i) for i, r in enumerate(batch)], source, self._seq)
        return self.outcomes.submit(rows)


# The columns of a decision record that only one task fills (null in the other's records).
SUGGEST_COLUMNS = ("workflow_ids", "scores", "abstained", "confidence", "shown_propensity",
                   "explore_top_k", "explore_rate", "ranked_ids")  # fmt: skip
ROUTE_COLUMNS = ("channel", "agent_id", "propensity", "expected_utility", "waiting", "explore",
                 "predicted_topic", "eligible_channels", "eligible_agents",
                 "eligible_propensities")  # fmt: skip
# One value per request (``PendingDecisions``), repeated for each of its texts.
PER_REQUEST_COLUMNS = ("time", "endpoint", "task", "model", "model_version", "role", "latency_ms")


@dataclass(slots=True)
class PendingDecisions(DeferredRows):
    """One request's decisions as the request path handed them over: built into records
    (``decisions.records.decision_schema``) by the writer thread, many at a time."""

    ids: list[str]
    time_us: int  # microseconds since 1970-01-01 UTC
    task: str
    model: str
    version: str
    role: str
    endpoint: str
    latency_s: float
    texts: list[Any]
    parameters: dict[str, Any]
    outputs: dict[str, tuple[list[Any], list[int]]]  # name: (data, shape)
    extra: list[dict[str, Any]] | None
    explored: list[dict[str, Any]] | None
    shadow_of: list[str] | None
    settings: DecisionLogSettings

    def __len__(self) -> int:
        return len(self.ids)

    def rows(self) -> list[dict[str, Any]]:
        """The records, one per text, as dicts."""
        return self.to_arrow([self], decision_schema()).to_pylist()

    @classmethod
    def to_arrow(cls, items: Sequence[DeferredRows], schema: Any) -> Any:
        """The records of ``items`` as one Arrow table of ``schema``, built column by column:
        this runs on the writer thread holding the GIL that requests need, so each field
        costs a list append or two. Raises when a record cannot be built (the writer then
        builds fewer at a time, down to the request at fault)."""
        import pyarrow as pa

        pending = [p for p in items if isinstance(p, PendingDecisions)]
        if len(pending) != len(items):
            raise TypeError("PendingDecisions.to_arrow takes PendingDecisions only")
        fields = _fields(schema)
        cols: dict[str, list[Any]] = {name: [] for name, _ in fields}
        ranked_as_shown = _fill(pending, cols)
        rows = len(cols["decision_id"])
        per_request = None
        if any(len(p.ids) != 1 for p in pending):  # a request of several texts repeats them
            per_request = pa.array([j for j, p in enumerate(pending) for _ in p.ids], pa.int32())
        arrays: dict[str, Any] = {}
        for name, type_ in fields:
            values = cols[name]
            if name == "ranked_ids" and ranked_as_shown and rows:
                array = arrays["workflow_ids"]  # the same lists: converted once
            elif values.count(None) == len(values):  # no value (each conversion has a set-up)
                array = pa.nulls(rows, type_)
            else:
                array = pa.array(values, type_)
                if per_request is not None and name in PER_REQUEST_COLUMNS:
                    array = array.take(per_request)
            if len(array) != rows:
                raise ValueError(f"column {name}: {len(array)} values for {rows} records")
            arrays[name] = array
        return pa.Table.from_arrays(list(arrays.values()), schema=schema)


@functools.lru_cache(maxsize=4)
def _fields(schema: Any) -> list[tuple[str, Any]]:
    """A schema's (name, type) pairs, read out of pyarrow once."""
    return [(f.name, f.type) for f in schema]


def _fill(items: list[PendingDecisions], cols: dict[str, list[Any]]) -> bool:
    """Append the records of ``items`` to ``cols`` (a list per column), in order; whether
    every record's ``ranked_ids`` is its shown list. A column that only the other task
    fills is left empty when no item is of that task (all null), else gets a null."""
    tasks = {p.task for p in items}
    pad_route, pad_suggest = "route" in tasks, "suggest" in tasks
    decision_id, shadow_of, contact_id, text, turns_, segment, country, plan, tenure_days = (
        cols[name].append for name in ("decision_id", "shadow_of", "contact_id", "text",
                                       "turns", "segment", "country", "plan", "tenure_days")
    )  # fmt: skip
    language, prior_contacts, wait_min = (
        cols[name].append for name in ("language", "prior_contacts", "wait_min")
    )
    time_, endpoint, task, model, model_version, role, latency_ms = (
        cols[name].append for name in PER_REQUEST_COLUMNS
    )
    wf_ids, scores, abstained, confidence, shown_propensity, top_k, rate, ranked_ids = (
        cols[name].append for name in SUGGEST_COLUMNS
    )
    route = [cols[name] for name in ROUTE_COLUMNS]
    suggest = [cols[name] for name in SUGGEST_COLUMNS]
    ranked_as_shown = True
    for p in items:
        n, params, s = len(p.ids), p.parameters, p.settings
        # a parameter the runtime did not check never costs the records
        contexts = params.get("contexts")
        contexts = contexts if isinstance(contexts, list) and len(contexts) == n else None
        waits = params.get("waits")
        waits = waits if isinstance(waits, list) and len(waits) == n else None
        contact_ids = params.get("contact_ids")
        contact_ids = (
            contact_ids if isinstance(contact_ids, list) and len(contact_ids) == n else None
        )
        policy, ids, shadows = s.log_text, p.ids, p.shadow_of
        keep = policy == "keep"
        if shadows is not None and len(shadows) < n:
            raise ValueError(f"{p.model} {p.version}: fewer shadow_of ids than texts")
        for i in range(n):
            decision_id(ids[i])
            shadow_of(shadows[i] if shadows else None)
            c = contact_ids[i] if contact_ids is not None else None
            contact_id(None if c is None else str(c))
            text(p.texts[i] if keep else private_text(p.texts[i], policy))
            ctx = contexts[i] if contexts is not None else None
            ctx = ctx if isinstance(ctx, dict) else {}
            user = ctx.get("user")
            user = user if isinstance(user, dict) else {}
            v = user.get("segment")
            segment(v if v is None or type(v) is str else str(v))
            v = user.get("country")
            country(v if v is None or type(v) is str else str(v))
            v = user.get("plan")
            plan(v if v is None or type(v) is str else str(v))
            v = user.get("language")
            language(v if v is None or type(v) is str else str(v))
            v = user.get("tenure_days")
            tenure_days(None if v is None else _int(v))
            if "prior_contacts" in user:
                v = user["prior_contacts"]
            else:
                meta = user.get("metadata")
                v = meta.get("prior_contacts") if isinstance(meta, dict) else None
            prior_contacts(None if v is None else _int(v))
            said = ctx.get("turns")
            turns_(
                [
                    {"role": t.get("role"), "text": private_text(t.get("text"), policy)}
                    for t in said
                    if isinstance(t, dict)
                ]
                if said and isinstance(said, list) and policy != "drop"
                else []
            )
            v = waits[i] if waits is not None else None
            wait_min(None if v is None else _float(v))
        time_(p.time_us)
        endpoint(p.endpoint)
        task(p.task)
        model(p.model)
        model_version(p.version)
        role(p.role)
        latency_ms(p.latency_s * 1000.0)
        if p.task == "suggest":
            out = p.outputs
            wf_all, shape = out["workflow_id"]
            k = shape[1]
            sc_all, answered = out["score"][0], out["abstained"][0]
            conf = out["confidence"][0] if "confidence" in out else None
            explored = p.explored
            if explored and len(explored) < n:
                raise ValueError(f"{p.model} {p.version}: fewer explored lists than texts")
            for i in range(n):
                wf, sc = wf_all[i * k : (i + 1) * k], sc_all[i * k : (i + 1) * k]
                if len(sc) != len(wf):
                    raise ValueError(f"{p.model} {p.version}: not one score per workflow")
                if all(wf):  # a full list (the usual case)
                    shown = wf
                    scores(list(map(float, sc)))
                else:
                    shown = [w for w in wf if w]
                    scores([float(x) for w, x in zip(wf, sc, strict=True) if w])
                wf_ids(shown)
                abstained(bool(answered[i]))
                confidence(None if conf is None else float(conf[i]))
                if explored:
                    e = explored[i]
                    ranked_ids(e.get("ranked_ids"))
                    top_k(e.get("explore_top_k"))
                    rate(e.get("explore_rate"))
                    shown_propensity(e.get("shown_propensity"))
                    ranked_as_shown = False
                elif p.role != "shadow":  # shown as ranked (a shadow's list is never shown)
                    ranked_ids(shown)
                    top_k(s.explore_top_k)
                    rate(s.explore_rate)
                    shown_propensity(1.0)
                else:
                    for append in (ranked_ids, top_k, rate, shown_propensity):
                        append(None)
                    ranked_as_shown = False
            if pad_route:
                for col in route:
                    col += [None] * n
        else:
            _fill_route(p, n, cols)
            if pad_suggest:
                for col in suggest:
                    col += [None] * n
    return ranked_as_shown


def _fill_route(p: PendingDecisions, n: int, cols: dict[str, list[Any]]) -> None:
    """The routing columns of a request's records: the chosen pair, its propensity and
    every pair considered (the runtime's ``log``)."""
    out = p.outputs
    agents, channels = out["agent_id"][0], out["channel"][0]
    propensity, utility = out["propensity"][0], out["expected_utility"][0]
    extra = p.extra or [{} for _ in range(n)]
    for i in range(n):
        waiting = not agents[i]
        cols["waiting"].append(waiting)
        cols["channel"].append(None if waiting else channels[i])
        cols["agent_id"].append(None if waiting else agents[i])
        cols["propensity"].append(None if waiting else float(propensity[i]))
        cols["expected_utility"].append(None if waiting else float(utility[i]))
        e = extra[i]
        for name in ("explore", "predicted_topic", "eligible_channels", "eligible_agents",
                     "eligible_propensities"):  # fmt: skip
            cols[name].append(e.get(name))


def _float(v: Any) -> float | None:
    """A finite float, or None."""
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        return None
    return float(v)


def _int(v: Any) -> int | None:
    """An int64 value, or None (a value Parquet cannot hold never costs the batch)."""
    if isinstance(v, bool) or not isinstance(v, int | float) or v != v:
        return None
    return int(v) if -(2**63) <= v < 2**63 else None
