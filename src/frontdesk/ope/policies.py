"""Target policies for off-policy simulation: for each logged row, a probability per eligible action.

An action is one of the row's eligible (channel, agent) pairs, as logged in
``eligible_channels`` / ``eligible_agents``. A policy is written as a small
declarative spec (YAML or JSON) and may be one of::

    logging                     # the logged propensities (eligible_propensities)
    uniform                     # every eligible pair alike
    rule                        # the greedy skills rule (listed skill on topic, segment channel, cost)
    {router: DIR, temperature: 0.0}          # a trained Router: argmax, or softmax at temperature
    {mixture: [{weight: 0.1, policy: P}, {weight: 0.9, policy: P}]}
    {rules: [RULE, ...], default: P, within: logging}

A RULE is ``{when: COND, channel: CH}`` (CH a channel name or a distribution
``{phone: 0.7, chat: 0.3}``; the agent within a channel is chosen as the
``within`` policy would, renormalised to that channel) or ``{when: COND,
policy: P}``. The first rule whose ``when`` matches decides. If a rule's
channel has no eligible pair for a row, ``unavailable: error`` (the default)
stops with an error naming the contact; ``unavailable: skip`` falls through
to the next rule. COND maps a field to a value, a list of values, or
comparisons ``{lt, le, gt, ge, eq, ne, in}``; fields are the log's columns
(``segment``, ``country``, ``wait_min``, ``topic``…) and the router's scores
``router.channel``, ``router.confidence`` (softmax probability, at
temperature 0.1, of the router's best channel by its channel model) and
``router.utility`` (the best pair's expected utility), which need a
top-level ``router: DIR``. Example: "enterprise users to phone when the
router's confidence is below 0.6, everyone else as today"::

    router: models/router
    rules:
      - when: {segment: enterprise, router.confidence: {lt: 0.6}}
        channel: phone
        unavailable: skip
    default: logging
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError, FrontdeskError
from ..limits import loads_json, loads_yaml
from ..logs import PROFILE_FIELDS
from ..routing.rule import rule_score

_OPS = {"lt", "le", "gt", "ge", "eq", "ne", "in"}
_ROUTER_FIELDS = {"router.channel", "router.confidence", "router.utility"}


class PolicyError(FrontdeskError):
    """A policy spec is malformed, or a policy puts probability outside a row's eligible set."""


class Batch:
    """Log rows (a pandas DataFrame) plus what policies need to read them."""

    def __init__(self, rows: Any, roster: Mapping[str, Any], channels: Sequence[str]) -> None:
        self.rows = rows
        self.roster = roster
        self.channels = list(channels)
        self._cache: dict[str, Any] = {}
        self._channels = [list(c) for c in rows["eligible_channels"].tolist()]
        self._agents = [list(a) for a in rows["eligible_agents"].tolist()]

    def __len__(self) -> int:
        return len(self.rows)

    def column(self, name: str) -> list[Any]:
        return self.rows[name].tolist()

    def eligible(self, i: int) -> tuple[list[str], list[str]]:
        return self._channels[i], self._agents[i]


class TargetPolicy:
    """Base class: ``probabilities(batch)`` gives one array per row, over its eligible pairs."""

    name = "policy"

    def probabilities(self, batch: Batch) -> list[np.ndarray]:
        raise NotImplementedError

    def needs(self) -> set[str]:
        """Columns this policy reads beyond the eligible sets."""
        return set()

    def learned_from(self) -> list[str]:
        """Folders of the trained models this policy acts with (their lineage applies)."""
        return []

    def channels_named(self) -> set[str]:
        """Channels the policy's spec names (each must be one of the logs')."""
        return set()

    def conditions(self) -> list[tuple[str, Condition]]:
        """Every rule condition of the spec, with where it is (``policy.yaml.rules[0].when``)."""
        return []


class LoggingPolicy(TargetPolicy):
    name = "logging"

    def probabilities(self, batch: Batch) -> list[np.ndarray]:
        return [np.asarray(p, dtype=float) for p in batch.column("eligible_propensities")]

    def needs(self) -> set[str]:
        return {"eligible_propensities"}


class UniformPolicy(TargetPolicy):
    name = "uniform"

    def probabilities(self, batch: Batch) -> list[np.ndarray]:
        return [np.full(len(c), 1.0 / len(c)) for c in batch.column("eligible_channels")]


class SkillsRulePolicy(TargetPolicy):
    """The greedy skills rule, computed from the log's columns and the roster's listed skills."""

    name = "rule"

    def probabilities(self, batch: Batch) -> list[np.ndarray]:
        out = []
        for i, (topic, seg) in enumerate(
            zip(batch.column("topic"), batch.column("segment"), strict=True)
        ):
            chans, agents = batch.eligible(i)
            recs = [batch.roster[a] for a in agents]
            scores = rule_score(
                np.array([r.skills.get(topic, 0.0) for r in recs]),
                seg,
                list(chans),
                np.array([r.cost_per_minute for r in recs]),
            )
            p = np.zeros(len(scores))
            p[int(np.argmax(scores))] = 1.0
            out.append(p)
        return out

    def needs(self) -> set[str]:
        return {"topic", "segment"}


def deferral_note(router_dir: Path) -> str:
    """``; rule-fallback …`` where the saved router defers to the rule, so a report names it."""
    from ..routing.router import CONFIG_FILE

    try:
        config = json.loads((router_dir / CONFIG_FILE).read_text())
    except (OSError, ValueError):
        config = None
    policy = config.get("policy") if isinstance(config, dict) else None
    if not isinstance(policy, dict):
        return ""  # none recorded (a router decides everywhere), or Router.load will say why
    if policy.get("overall", "router") != "router":
        return "; rule-fallback for every contact"
    segments = policy.get("segments")
    if not isinstance(segments, dict) or not segments:
        return ""
    ruled = sorted(str(s) for s, p in segments.items() if p != "router")
    # a segment the check had no evidence for (not listed) is left to the rule as well
    return f"; rule-fallback for {''.join(f'{s}, ' for s in ruled)}unlisted segments"


@lru_cache(maxsize=4)
def _load_router(path: str, temperature: float) -> Any:
    from ..routing.router import Router

    return Router.load(path, temperature=temperature)


class RouterPolicy(TargetPolicy):
    """A trained Router over each row's eligible pairs (encodes the row's conversation)."""

    def __init__(self, path: str, temperature: float = 0.0) -> None:
        self.path = str(Path(path).resolve())
        self.temperature = float(temperature)
        how = "argmax" if self.temperature == 0 else f"softmax T={self.temperature:g}"
        self.name = f"router({Path(path).name}, {how}{deferral_note(Path(path))})"

    @property
    def router(self) -> Any:
        return _load_router(self.path, self.temperature)

    def scores(self, batch: Batch) -> dict[str, Any]:
        """Per row: utilities over the eligible pairs and the channel model's scores (cached)."""
        key = f"router:{self.path}:{self.temperature}"
        if key in batch._cache:
            return batch._cache[key]
        from ..schema import Conversation

        router = self.router
        cols = batch.rows
        convs = [
            Conversation(
                text=cols["text"].iat[i],
                context={
                    "turns": list(cols["turns"].iat[i]) if cols["turns"].iat[i] is not None else [],
                    "user": {
                        k: _plain(cols[k].iat[i])
                        for k in PROFILE_FIELDS
                        if k in cols and cols[k].iat[i] is not None
                    },
                },
            )
            for i in range(len(batch))
        ]
        enc = router.encode(convs)
        agents = list(batch.roster.values())
        pos = {a.agent_id: j for j, a in enumerate(agents)}
        pairs = []
        for i in range(len(batch)):
            chans, ags = batch.eligible(i)
            pairs.append(
                (
                    np.array([router.channels.index(h) for h in chans], dtype=int),
                    np.array([pos[a] for a in ags], dtype=int),
                )
            )
        waits = np.asarray(cols["wait_min"], dtype=float)
        context = router.context(enc, waits)
        scored = router.score_pairs(enc, waits, pairs, agents, context)
        by_channel = router.channel_scores(enc, waits, context)
        # values: what the router decides by (its utility less its channel margin, or the
        # rule's score where it defers to the rule)
        out = {
            "utilities": [s["utility"] for s in scored],
            "values": [s["value"] for s in scored],
            "by_channel": by_channel,
        }
        batch._cache[key] = out
        return out

    def probabilities(self, batch: Batch) -> list[np.ndarray]:
        router = self.router
        return [router.probabilities(v) for v in self.scores(batch)["values"]]

    def needs(self) -> set[str]:
        return {"text", "turns", "wait_min", *PROFILE_FIELDS}

    def learned_from(self) -> list[str]:
        return [self.path]


class MixturePolicy(TargetPolicy):
    def __init__(self, parts: list[tuple[float, TargetPolicy]]) -> None:
        self.parts = parts
        self.name = " + ".join(f"{w:g}×{p.name}" for w, p in parts)

    def probabilities(self, batch: Batch) -> list[np.ndarray]:
        out = [np.zeros(len(c)) for c in batch.column("eligible_channels")]
        for w, p in self.parts:
            for acc, q in zip(out, p.probabilities(batch), strict=True):
                acc += w * q
        return out

    def needs(self) -> set[str]:
        return set().union(*(p.needs() for _, p in self.parts))

    def learned_from(self) -> list[str]:
        return _unique(f for _, p in self.parts for f in p.learned_from())

    def channels_named(self) -> set[str]:
        return set().union(*(p.channels_named() for _, p in self.parts))

    def conditions(self) -> list[tuple[str, Condition]]:
        return [c for _, p in self.parts for c in p.conditions()]


class Condition:
    """``{field: value | [values] | {op: value}}``, all of which must hold."""

    def __init__(self, spec: Mapping[str, Any], where: str) -> None:
        if not isinstance(spec, Mapping):
            raise PolicyError(f"{where}: must be a mapping of field to value")
        self.tests: list[tuple[str, str, Any]] = []
        for field, want in spec.items():
            if isinstance(want, Mapping):
                for op, v in want.items():
                    if op not in _OPS:
                        raise PolicyError(
                            f"{where}.{field}: unknown comparison {op!r}; use {sorted(_OPS)}"
                        )
                    self.tests.append((str(field), op, v))
            elif isinstance(want, list):
                self.tests.append((str(field), "in", want))
            else:
                self.tests.append((str(field), "eq", want))

    @property
    def fields(self) -> set[str]:
        return {f for f, _, _ in self.tests}

    def wanted_values(self) -> list[tuple[str, list[Any]]]:
        """(field, values) of the equality tests: what a typo in a value would make unmatchable."""
        return [
            (f, list(w) if op == "in" else [w]) for f, op, w in self.tests if op in {"eq", "in"}
        ]

    def holds(self, values: Mapping[str, Any]) -> bool:
        for field, op, want in self.tests:
            got = values.get(field)
            if got is None:
                return False
            if op == "eq" and got != want:
                return False
            if op == "ne" and got == want:
                return False
            if op == "in" and got not in want:
                return False
            if op in {"lt", "le", "gt", "ge"}:
                try:
                    g, w = float(got), float(want)
                except (TypeError, ValueError):
                    return False
                if not {"lt": g < w, "le": g <= w, "gt": g > w, "ge": g >= w}[op]:
                    return False
        return True


class RulesPolicy(TargetPolicy):
    """First matching rule decides (a channel distribution or a nested policy); else the default."""

    def __init__(
        self,
        rules: list[dict[str, Any]],
        default: TargetPolicy,
        within: TargetPolicy,
        router: RouterPolicy | None,
        name: str = "rules",
    ) -> None:
        self.rules = rules
        self.default = default
        self.within = within
        self.router = router
        self.name = name

    def needs(self) -> set[str]:
        fields = set().union(*(r["when"].fields for r in self.rules)) - _ROUTER_FIELDS
        nested = [r["policy"] for r in self.rules if "policy" in r]
        extra = set().union(*(p.needs() for p in [self.default, self.within, *nested]))
        if self.router is not None:
            extra |= self.router.needs()
        return fields | extra

    def learned_from(self) -> list[str]:
        nested = [r["policy"] for r in self.rules if "policy" in r]
        parts = [self.router, self.default, self.within, *nested]
        return _unique(f for p in parts if p is not None for f in p.learned_from())

    def channels_named(self) -> set[str]:
        own = {h for r in self.rules if "channel" in r for h in r["channel"]}
        nested = [r["policy"] for r in self.rules if "policy" in r]
        parts = [self.default, self.within, *nested]
        return own.union(*(p.channels_named() for p in parts))

    def conditions(self) -> list[tuple[str, Condition]]:
        own = [(r["at"], r["when"]) for r in self.rules]
        nested = [r["policy"] for r in self.rules if "policy" in r]
        return own + [c for p in (self.default, self.within, *nested) for c in p.conditions()]

    def _router_values(self, batch: Batch) -> list[dict[str, Any]]:
        if self.router is None:
            return [{} for _ in range(len(batch))]
        scores = self.router.scores(batch)
        out = []
        for u, by_ch in zip(scores["utilities"], scores["by_channel"], strict=True):
            chans = list(by_ch)
            z = np.array([by_ch[h] for h in chans]) / 0.1
            p = np.exp(z - z.max())
            p /= p.sum()
            out.append(
                {
                    "router.channel": chans[int(np.argmax(p))],
                    "router.confidence": float(p.max()),
                    "router.utility": float(np.max(u)) if len(u) else None,
                }
            )
        return out

    def probabilities(self, batch: Batch) -> list[np.ndarray]:
        n = len(batch)
        default = self.default.probabilities(batch)
        within = self.within.probabilities(batch)
        nested = {
            id(r["policy"]): r["policy"].probabilities(batch) for r in self.rules if "policy" in r
        }
        routed = self._router_values(batch)
        records = batch.rows.to_dict("records")
        out = []
        for i in range(n):
            values = {**{k: _plain(v) for k, v in records[i].items()}, **routed[i]}
            chans, _ = batch.eligible(i)
            chans_arr = np.array(chans)
            probs = None
            for j, rule in enumerate(self.rules):
                if not rule["when"].holds(values):
                    continue
                if "policy" in rule:
                    probs = nested[id(rule["policy"])][i]
                    break
                dist: dict[str, float] = rule["channel"]
                missing = [h for h, w in dist.items() if w > 0 and h not in chans]
                if missing:
                    if rule["unavailable"] == "skip":
                        continue
                    raise PolicyError(
                        f"contact {records[i].get('contact_id')}: rules[{j}] puts probability on "
                        f"channel {missing[0]!r}, outside the row's eligible set "
                        f"({', '.join(sorted(set(chans)))}); add 'unavailable: skip' to fall through"
                    )
                probs = np.zeros(len(chans))
                for h, w in dist.items():
                    if w <= 0:
                        continue
                    mask = chans_arr == h
                    base = within[i] * mask
                    if base.sum() <= 0:
                        base = mask.astype(float)
                    probs += w * base / base.sum()
                break
            out.append(default[i] if probs is None else probs)
        return out


def checked_probabilities(policy: TargetPolicy, batch: Batch) -> list[np.ndarray]:
    """The policy's probabilities for each row, refused unless a distribution over its eligible set."""
    probs = policy.probabilities(batch)
    ids = batch.column("contact_id")
    out = []
    for i, raw in enumerate(probs):
        p = np.asarray(raw, dtype=float)
        n_eligible = len(batch.eligible(i)[0])
        if len(p) != n_eligible or not np.isfinite(p).all() or (p < -1e-12).any():
            raise PolicyError(
                f"contact {ids[i]}: policy {policy.name} gave "
                f"{len(p)} probabilities for {n_eligible} eligible actions (or negative ones)"
            )
        if abs(p.sum() - 1.0) > 1e-6:
            raise PolicyError(
                f"contact {ids[i]}: policy {policy.name} puts "
                f"{1 - p.sum():.3g} of its probability outside the eligible set"
            )
        out.append(p)
    return out


def _unique(items: Any) -> list[str]:
    return list(dict.fromkeys(items))


def _plain(v: Any) -> Any:
    if isinstance(v, np.generic):
        return v.item()
    return v


# -- parsing ---------------------------------------------------------------------------------------

BUILTIN: dict[str, type[TargetPolicy]] = {
    "logging": LoggingPolicy,
    "uniform": UniformPolicy,
    "rule": SkillsRulePolicy,
}


def load_policy(source: str | Path | Mapping[str, Any]) -> TargetPolicy:
    """A policy from a spec file (YAML/JSON), a router folder, or an already-parsed spec."""
    if isinstance(source, Mapping) or source in BUILTIN and not Path(source).exists():
        return parse_policy(source, "policy", base=Path.cwd())
    path = Path(source)
    if path.is_dir():
        if not (path / "router.json").is_file():
            raise PolicyError(f"{path}: a folder, but not a router (no router.json)")
        return RouterPolicy(str(path))
    if not path.is_file():
        raise PolicyError(
            f"{path}: no such policy file or router folder (or unknown policy {str(source)!r}; "
            f"the built-in ones are {', '.join(sorted(BUILTIN))})"
        )
    return parse_policy(read_spec(path), str(path), base=path.parent)


def read_spec(path: Path) -> Any:
    """A policy spec file's content (``.json``: JSON, else YAML), held to the input
    limits (docs/limits.md): no YAML anchors or aliases, bounded nesting and numbers."""
    kind = "json" if path.suffix == ".json" else path.suffix.lstrip(".") or "YAML"
    try:
        raw = path.read_bytes()
        if kind == "json":
            return loads_json(raw, str(path))
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DataError(str(path), None, None, f"not UTF-8 (byte {exc.start})") from None
        return loads_yaml(text, str(path))[0]
    except DataError as exc:
        where = f"{path}:{exc.line}" if exc.line is not None else str(path)
        reason = exc.reason.removeprefix("invalid YAML: ").removeprefix("invalid JSON: ")
        what = f"{exc.field}: {reason}" if exc.field else reason
        raise PolicyError(f"{where}: not valid {kind}: {what}") from None
    except OSError as exc:
        raise PolicyError(f"{path}: cannot read: {exc.strerror}") from None


def spec_to_json(source: str | Path | Mapping[str, Any]) -> dict[str, Any]:
    """The spec as plain JSON with absolute paths, so engines on other machines rebuild it."""
    if isinstance(source, Mapping) or source in BUILTIN and not Path(source).exists():
        return {
            "spec": source if isinstance(source, str) else dict(source),
            "base": str(Path.cwd()),
        }
    path = Path(source).resolve()
    if path.is_dir():
        return {"spec": {"router": str(path)}, "base": str(path.parent)}
    return {"spec": read_spec(path), "base": str(path.parent)}


def parse_policy(
    spec: Any, where: str, base: Path, router: RouterPolicy | None = None
) -> TargetPolicy:
    """Build a policy from its spec; errors name the spec's path (``file: rules[0].when``)."""
    if isinstance(spec, str):
        if spec in BUILTIN:
            return BUILTIN[spec]()
        raise PolicyError(f"{where}: unknown policy {spec!r}; use {sorted(BUILTIN)} or a mapping")
    if not isinstance(spec, Mapping):
        raise PolicyError(f"{where}: a policy is a name or a mapping, not {type(spec).__name__}")
    if "router" in spec and not ({"rules", "mixture"} & set(spec)):
        return RouterPolicy(_path(spec["router"], base), float(spec.get("temperature", 0.0)))
    if "mixture" in spec:
        parts = spec["mixture"]
        if not isinstance(parts, list) or not parts:
            raise PolicyError(f"{where}.mixture: a non-empty list of {{weight, policy}}")
        out = []
        for k, part in enumerate(parts):
            w = part.get("weight") if isinstance(part, Mapping) else None
            if not isinstance(w, int | float) or w < 0:
                raise PolicyError(f"{where}.mixture[{k}].weight: a number >= 0")
            out.append(
                (
                    float(w),
                    parse_policy(part.get("policy"), f"{where}.mixture[{k}].policy", base, router),
                )
            )
        total = sum(w for w, _ in out)
        if abs(total - 1.0) > 1e-9:
            raise PolicyError(f"{where}.mixture: weights sum to {total:g}, not 1")
        return MixturePolicy(out)
    if "rules" in spec:
        if spec.get("router") is not None:
            router = RouterPolicy(_path(spec["router"], base), float(spec.get("temperature", 0.0)))
        rules = []
        if not isinstance(spec["rules"], list):
            raise PolicyError(f"{where}.rules: a list of rules")
        for j, r in enumerate(spec["rules"]):
            at = f"{where}.rules[{j}]"
            if not isinstance(r, Mapping):
                raise PolicyError(f"{at}: a mapping with 'when' and 'channel' or 'policy'")
            rule: dict[str, Any] = {
                "when": Condition(r.get("when", {}), f"{at}.when"), "at": f"{at}.when",
            }  # fmt: skip
            if router is None and rule["when"].fields & _ROUTER_FIELDS:
                raise PolicyError(f"{at}.when: router.* fields need a top-level 'router: DIR'")
            if ("channel" in r) == ("policy" in r):
                raise PolicyError(f"{at}: give exactly one of 'channel' or 'policy'")
            if "policy" in r:
                rule["policy"] = parse_policy(r["policy"], f"{at}.policy", base, router)
            else:
                ch = r["channel"]
                dist = (
                    {ch: 1.0}
                    if isinstance(ch, str)
                    else dict(ch)
                    if isinstance(ch, Mapping)
                    else None
                )
                if not dist or any(not isinstance(v, int | float) or v < 0 for v in dist.values()):
                    raise PolicyError(f"{at}.channel: a channel name or {{channel: probability}}")
                if abs(sum(dist.values()) - 1.0) > 1e-9:
                    raise PolicyError(
                        f"{at}.channel: probabilities sum to {sum(dist.values()):g}, not 1"
                    )
                rule["channel"] = {str(k): float(v) for k, v in dist.items()}
            unavailable = r.get("unavailable", "error")
            if unavailable not in {"error", "skip"}:
                raise PolicyError(f"{at}.unavailable: 'error' or 'skip', not {unavailable!r}")
            rule["unavailable"] = unavailable
            rules.append(rule)
        default = parse_policy(spec.get("default", "logging"), f"{where}.default", base, router)
        within = parse_policy(spec.get("within", "logging"), f"{where}.within", base, router)
        return RulesPolicy(rules, default, within, router, name=str(spec.get("name", "rules")))
    raise PolicyError(f"{where}: a mapping needs 'router', 'mixture' or 'rules'")


def _path(value: Any, base: Path) -> str:
    p = Path(str(value))
    return str(p if p.is_absolute() else (base / p).resolve())
