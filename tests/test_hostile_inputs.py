"""A hostile or careless user's inputs to the CLI: each ends with one ``error:`` line that
names the file, line and field where there is one, exit code 2, and nothing left behind.

``CASES`` is the corpus (files the test writes, the command run on them, what the error
line must name). Most run through Typer's runner; a few through a real ``python -m
frontdesk`` process, where the exit code and stderr are the user's.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from typer.main import get_command
from typer.testing import CliRunner

from frontdesk.cli import app

from .conftest import TINY_CATALOG, write_jsonl

runner = CliRunner()
CLI = get_command(app)  # built once: Typer rebuilds the whole tree per runner.invoke


@dataclass
class Ran:
    exit_code: int
    stdout: str
    stderr: str
    exception: BaseException | None

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def invoke(args: list[str]) -> Ran:
    """``frontdesk ARGS`` in-process, as ``runner.invoke(app, ARGS)`` but on a command tree
    built once. An exception that escapes the app's wrapper is kept, not raised."""
    exception: BaseException | None = None
    with runner.isolation() as (out, err, _):
        try:
            code = CLI.main(args=args, prog_name="frontdesk", standalone_mode=False)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        except Exception as exc:
            exception, code = exc, 1
        sys.stdout.flush()
        sys.stderr.flush()
        return Ran(code, out.getvalue().decode(), err.getvalue().decode(), exception)


Content = bytes | Callable[[], bytes] | None  # None: a folder of that name


@dataclass(frozen=True)
class Case:
    """One malformed input: files written into the test's folder, then ``args`` run.

    In ``args`` and ``expect``, ``{tmp}`` is that folder, ``{idx}`` a sparse index of
    the tiny catalog (a private copy where ``manifest`` replaces its manifest or the
    command writes to it), ``{logs}`` a small simulated log folder.
    """

    name: str
    args: tuple[str, ...]
    expect: tuple[str, ...] = ()
    files: dict[str, Content] = field(default_factory=dict)
    manifest: Content | None = None
    own_index: bool = False


def j(obj: object) -> str:
    return json.dumps(obj, ensure_ascii=False)


def lines(*rows: object) -> bytes:
    """JSON Lines: dicts are dumped, strings are taken as written."""
    return "".join((r if isinstance(r, str) else j(r)) + "\n" for r in rows).encode()


def wf(**extra: object) -> dict[str, object]:
    return {"id": "a", "title": "Refund a card payment", **extra}


def q(**extra: object) -> dict[str, object]:
    return {"text": "where is my payout", "label": "payout-delayed", **extra}


def deep(n: int) -> str:
    return "[" * n + "]" * n


BIG_INT = "7" * 5000

BOMB = b"""- id: a
  title: Refund a card payment
  notes:
    a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
    b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
    c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
    d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
    e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
    f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
    g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
    h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
    i: [*h,*h,*h,*h,*h,*h,*h,*h,*h]
"""
"""Billion laughs: 9**9 strings once expanded into the workflow's metadata."""


def build(name: str, catalog: Content, *expect: str, ext: str = "jsonl") -> Case:
    """``index build`` of a bad catalog: refused, and no index (nor temporary folder) made."""
    return Case(
        name,
        ("index", "build", f"{{tmp}}/cat.{ext}", "--out", "{tmp}/out", "--sparse-only"),
        (f"cat.{ext}", *expect),
        {f"cat.{ext}": catalog},
    )


def evaluate(name: str, queries: Content, *expect: str, extra: tuple[str, ...] = ()) -> Case:
    """``eval`` of a bad query file on the tiny index."""
    return Case(
        name,
        ("eval", "{idx}", "{tmp}/q.jsonl", "--mode", "sparse", *extra),
        ("q.jsonl", *expect),
        {"q.jsonl": queries},
    )


def suggest(name: str, *args: str, expect: tuple[str, ...]) -> Case:
    return Case(name, ("suggest", "{idx}", *args, "--mode", "sparse"), expect)


def manifest(name: str, content: Content, *expect: str, command: str = "info") -> Case:
    args = ("index", "info", "{idx}") if command == "info" else ("suggest", "{idx}", "hi")
    return Case(name, args, ("manifest.json", *expect), manifest=content)


def yaml_build(name: str, text: bytes, *expect: str) -> Case:
    return build(name, text, *expect, ext="yaml")


def edited_manifest(change: Callable[[dict], object]) -> Callable[[Path], bytes]:
    """A manifest made from the index's own by ``change`` (its result replaces it if not None)."""

    def make(own: Path) -> bytes:
        data = json.loads(own.read_text())
        out = change(data)
        return json.dumps(data if out is None else out).encode()

    return make  # type: ignore[return-value]


CATALOG_CASES = [
    build(
        "json nested 100k deep",
        lines(f'{{"id": "a", "title": "Refund", "x": {deep(100_000)}}}'),
        ":1:",
        "nested too deeply",
    ),
    build(
        "json nested 40 deep",
        lines(f'{{"id": "a", "title": "Refund", "x": {deep(40)}}}'),
        ":1:",
        "nested too deeply",
    ),
    build(
        "5000-digit integer",
        lines(f'{{"id": "a", "title": "Refund", "n": {BIG_INT}}}'),
        ":1:",
        "5,000 digits",
    ),
    build(
        "31-digit integer",
        lines(f'{{"id": "a", "title": "Refund", "n": {"1" * 31}}}'),
        ":1:",
        "31 digits",
    ),
    build(
        "NaN in metadata",
        lines('{"id": "a", "title": "Refund", "metadata": {"x": NaN}}'),
        ":1:",
        "NaN",
    ),
    build(
        "Infinity", lines('{"id": "a", "title": "Refund", "score": Infinity}'), ":1:", "Infinity"
    ),
    build(
        "-Infinity", lines('{"id": "a", "title": "Refund", "score": -Infinity}'), ":1:", "Infinity"
    ),
    build(
        "float overflow 1e400",
        lines('{"id": "a", "title": "Refund", "score": 1e400}'),
        ":1:",
        "too large",
    ),
    build(
        "duplicate key",
        lines('{"id": "a", "title": "Refund", "title": "B"}'),
        ":1:",
        "duplicate key 'title'",
    ),
    build(
        "titles all stopwords",
        lines({"id": "a", "title": "the and of"}, {"id": "b", "title": "it is what it is"}),
        "BM25",
        "--sparse-only",
    ),
    build(
        "titles only chinese",
        lines({"id": "a", "title": "退款"}, {"id": "b", "title": "支付失败"}),
        "BM25",
        "Chinese",
    ),
    build(
        "20 MB description line",
        lambda: lines(wf(description="x" * 20_000_000)),
        ":1:",
        "bytes long",
        "FRONTDESK_MAX_LINE_BYTES",
    ),
    build(
        "1 MB title", lambda: lines(wf(title="t" * 1_000_000)), ":1: title:", "1,000,000 characters"
    ),
    build(
        "501-character title",
        lines(wf(title="t" * 501)),
        ":1: title:",
        "501 characters",
        "FRONTDESK_MAX_TITLE_CHARS",
    ),
    build(
        "over-long description",
        lambda: lines(wf(description="d" * 200_001)),
        ":1: description:",
        "200,001 characters",
    ),
    build(
        "over-long step",
        lambda: lines(wf(steps=["ok", "s" * 200_001])),
        ":1: steps[1]:",
        "characters",
    ),
    build("NUL in title", lines(wf(title="Refund\u0000card")), ":1: title:", "NUL"),
    build("NUL in description", lines(wf(description="a\u0000b")), ":1: description:", "NUL"),
    build("NUL in a metadata key", lines(wf(metadata={"k\u0000": 1})), ":1: metadata.k", "NUL"),
    build(
        "NUL in an example", lines(wf(examples=["fine", "bad\u0000"])), ":1: examples[1]:", "NUL"
    ),
    build(
        "lone surrogate in title", lines('{"id": "a", "title": "A\\ud800"}'), ":1: title:", "UTF-8"
    ),
    build("invalid UTF-8", lines(j(wf())) + b'{"id": "b", "title": "\xff\xfe"}\n', ":2:", "UTF-8"),
    build("empty file", b"", "file is empty"),
    build("blank lines only", b"\n \n\t\n", "file is empty"),
    build("a JSON list per line", lines("[1, 2]"), ":1:", "expected an object"),
    build("a number per line", lines("42"), ":1:", "expected an object"),
    build("null per line", lines("null"), ":1:", "expected an object"),
    build("missing id", lines({"title": "Refund"}), ":1: id:", "required"),
    build("missing title", lines({"id": "a"}), ":1: title:", "required"),
    build("blank title", lines({"id": "a", "title": "  "}), ":1: title:", "empty"),
    build("id with a space", lines({"id": "a b", "title": "Refund"}), ":1: id:", "whitespace"),
    build("id of 201 characters", lines({"id": "i" * 201, "title": "Refund"}), ":1: id:"),
    build("steps a string", lines(wf(steps="do it")), ":1: steps:", "list"),
    build("a step a number", lines(wf(steps=["x", 3])), ":1: steps.1:", "string"),
    build("tags an object", lines(wf(tags={"a": 1})), ":1: tags:", "list"),
    build("null example", lines(wf(examples=["x", None])), ":1: examples.1:", "string"),
    build("duplicate ids", lines(wf(), wf()), ":2: id:", "duplicate id 'a'"),
    build("truncated JSON", lines('{"id": "a", "title": "Refund"'), ":1:", "invalid JSON"),
    build("trailing garbage", lines('{"id": "a", "title": "Refund"} x'), ":1:", "invalid JSON"),
    build("metadata a number", lines(wf(metadata=5)), ":1: metadata:", "dictionary"),
    build("updated_at a number", lines(wf(updated_at=5)), ":1: updated_at:", "string"),
    build("records joined by CR", (j(wf()) + "\r" + j(wf(id="b"))).encode(), ":1:", "invalid JSON"),
    build("catalog is a directory", None, "is a directory"),
    yaml_build("yaml alias bomb (423 bytes, 9**9 strings)", BOMB, ":4:", "anchors"),
    yaml_build(
        "yaml one anchor and alias",
        b"- id: a\n  title: &t Refund\n  description: *t\n",
        ":2:",
        "anchors",
    ),
    yaml_build("yaml undefined alias", b"- id: a\n  title: *t\n", ":2:", "aliases"),
    yaml_build(
        "yaml 5000-deep flow nesting",
        b"- id: a\n  title: Refund\n  x: " + deep(5000).encode() + b"\n",
        ":3:",
        "nested too deeply",
    ),
    yaml_build(
        "yaml 40-deep block nesting",
        b"- id: a\n  title: Refund\n  x:\n" + b"".join(b"  " * i + b"  - \n" for i in range(1, 41)),
        "nested too deeply",
    ),
    yaml_build(
        "yaml 5000-digit integer",
        b"- id: a\n  title: Refund\n  n: " + BIG_INT.encode() + b"\n",
        ":3:",
        "5,000 digits",
    ),
    yaml_build(
        "yaml .nan",
        b"- id: a\n  title: Refund\n  metadata: {x: .nan}\n",
        ":1: metadata.x:",
        "finite",
    ),
    yaml_build("yaml .inf", b"- id: a\n  title: Refund\n  score: -.inf\n", ":1: score:", "finite"),
    yaml_build(
        "yaml !!binary",
        b"- id: a\n  title: Refund\n  blob: !!binary aGVsbG8=\n",
        ":3:",
        "!!binary"[2:],
    ),
    yaml_build("yaml !!set", b"- id: a\n  title: Refund\n  s: !!set {x, y}\n", ":3:", "set"),
    yaml_build(
        "yaml python tag",
        b"- id: a\n  title: !!python/object/apply:os.system [ls]\n",
        ":2:",
        "invalid YAML",
    ),
    yaml_build(
        "yaml duplicate key",
        b"- id: a\n  title: Refund\n  title: B\n",
        ":3: title:",
        "duplicate key",
    ),
    yaml_build("yaml unclosed bracket", b"- id: a\n  title: [A\n", "invalid YAML"),
    yaml_build("yaml tab indentation", b"- id: a\n\ttitle: Refund\n", ":2:", "invalid YAML"),
    yaml_build(
        "yaml two documents",
        b"- id: a\n  title: Refund\n---\n- id: b\n  title: B\n",
        "invalid YAML",
        "single document",
    ),
    yaml_build("yaml a scalar", b"just text\n", ":1:", "list of workflows"),
    yaml_build("yaml workflows not a list", b"workflows: 3\n", ":1:", "list of workflows"),
    yaml_build("yaml empty list", b"[]\n", "file is empty"),
    yaml_build("yaml item a string", b"- just a string\n", ":1:", "expected an object"),
    yaml_build(
        "yaml 1 MB title",
        b"- id: a\n  title: " + b"t" * 1_000_000 + b"\n",
        ":1: title:",
        "1,000,000 characters",
    ),
    yaml_build("yaml NUL escape", b'- id: a\n  title: "A\\0B"\n', ":1: title:", "NUL"),
    yaml_build("yaml invalid UTF-8", b"- id: a\n  title: \xff\n", ":2:", "UTF-8"),
    yaml_build(
        "yaml second item lacks title",
        b"- id: a\n  title: Refund\n- id: b\n",
        ":3: title:",
        "required",
    ),
    yaml_build(
        "yaml unhashable key", b"- id: a\n  title: Refund\n  ? [x, y]\n  : 1\n", "invalid YAML"
    ),
    yaml_build("yaml empty file", b"", "file is empty"),
]

QUERY_CASES = [
    evaluate("query text empty", lines(q(text="")), ":1: text:", "empty"),
    evaluate("query text whitespace", lines(q(text=" \t ")), ":1: text:", "empty"),
    evaluate(
        "query text 20,001 characters",
        lines(q(text="x" * 20_001)),
        ":1: text:",
        "20,001 characters",
        "FRONTDESK_MAX_TEXT_CHARS",
    ),
    evaluate("query text NUL", lines(q(text="a\u0000b")), ":1: text:", "NUL"),
    evaluate("query text a number", lines(q(text=5)), ":1: text:", "string"),
    evaluate(
        "queries: 101 turns",
        lines(q(context={"turns": [{"role": "user", "text": "hi"}] * 101})),
        ":1: context.turns:",
        "101 turns",
        "FRONTDESK_MAX_TURNS",
    ),
    evaluate(
        "empty turn",
        lines(q(context={"turns": [{"role": "agent", "text": "  "}]})),
        ":1: context.turns[0].text:",
        "empty",
    ),
    evaluate(
        "turn role bot",
        lines(q(context={"turns": [{"role": "bot", "text": "hi"}]})),
        ":1: context.turns.0.role:",
    ),
    evaluate(
        "negative tenure",
        lines(q(context={"user": {"tenure_days": -5}})),
        ":1: context.user.tenure_days:",
        "greater than or equal to 0",
    ),
    evaluate("queries: profile a list", lines(q(context={"user": [1, 2]})), ":1: context.user:"),
    evaluate(
        "unknown label", lines(q(label="not-a-workflow")), ":1: label:", "unknown workflow id"
    ),
    evaluate("label missing", lines({"text": "hi"}), ":1: label:", "required"),
    evaluate("label blank", lines(q(label="  ")), ":1: label:"),
    evaluate(
        "every label null",
        lines(q(label=None), q(label=None, text="hello")),
        "label:",
        "every label is null",
    ),
    evaluate(
        "every label null, --report",
        lines(q(label=None)),
        "label:",
        "every label is null",
        extra=("--report", "{tmp}/report"),
    ),
    evaluate(
        "query nested 100k deep",
        lines(f'{{"text": "hi", "label": null, "x": {deep(100_000)}}}'),
        ":1:",
        "nested too deeply",
    ),
    evaluate("duplicate query ids", lines(q(id="x"), q(id="x")), ":2: id:", "duplicate id"),
    evaluate("queries invalid UTF-8", b'{"text": "\xff", "label": null}\n', ":1:", "UTF-8"),
    evaluate(
        "NaN in query metadata",
        lines('{"text": "hi", "label": null, "metadata": {"w": NaN}}'),
        ":1:",
        "NaN",
    ),
    Case(
        "queries file missing",
        ("eval", "{idx}", "{tmp}/none.jsonl", "--mode", "sparse"),
        ("none.jsonl", "file not found"),
    ),
    Case(
        "examples with NaN",
        (
            "index",
            "build",
            "{tmp}/cat.jsonl",
            "--out",
            "{tmp}/out",
            "--sparse-only",
            "--examples",
            "{tmp}/ex.jsonl",
        ),
        ("ex.jsonl:1:", "NaN"),
        {
            "cat.jsonl": lines(*TINY_CATALOG),
            "ex.jsonl": lines('{"text": "x", "label": "refund-issue", "w": NaN}'),
        },
    ),
    Case(
        "examples with empty text",
        (
            "index",
            "build",
            "{tmp}/cat.jsonl",
            "--out",
            "{tmp}/out",
            "--sparse-only",
            "--examples",
            "{tmp}/ex.jsonl",
        ),
        ("ex.jsonl:1: text:", "empty"),
        {
            "cat.jsonl": lines(*TINY_CATALOG),
            "ex.jsonl": lines({"text": "", "label": "refund-issue"}),
        },
    ),
]

SUGGEST_CASES = [
    suggest("empty query", "", expect=("text:", "empty")),
    suggest("whitespace query", "   ", expect=("text:", "empty")),
    suggest("tab and newline query", "\t\n", expect=("text:", "empty")),
    suggest("query of 20,001 characters", "q" * 20_001, expect=("text:", "20,001 characters")),
    suggest("NUL in query", "refund\x00please", expect=("text:", "NUL")),
    suggest("undecodable bytes in query", "refund \udcff\udcfe", expect=("text:", "UTF-8")),
    suggest("--k 0", "hi", "--k", "0", expect=("--k",)),
    suggest("--k -3", "hi", "--k", "-3", expect=("--k",)),
    suggest("--k 1000000", "hi", "--k", "1000000", expect=("k:", "1,000,000", "FRONTDESK_MAX_K")),
    suggest("--k abc", "hi", "--k", "abc", expect=("--k",)),
    suggest("profile a list", "hi", "--profile", "[1,2]", expect=("--profile:", "JSON object")),
    suggest(
        "profile negative tenure",
        "hi",
        "--profile",
        '{"tenure_days": -5}',
        expect=("--profile: tenure_days:", "greater than or equal to 0"),
    ),
    suggest("profile NaN", "hi", "--profile", "NaN", expect=("--profile:", "NaN")),
    suggest(
        "profile tenure a word",
        "hi",
        "--profile",
        '{"tenure_days": "long"}',
        expect=("--profile: tenure_days:", "integer"),
    ),
    suggest(
        "profile tenure fractional",
        "hi",
        "--profile",
        '{"tenure_days": 1.5}',
        expect=("--profile: tenure_days:",),
    ),
    suggest(
        "profile segment a number",
        "hi",
        "--profile",
        '{"segment": 5}',
        expect=("--profile: segment:", "string"),
    ),
    suggest(
        "profile nested 100k deep",
        "hi",
        "--profile",
        f'{{"x": {deep(100_000)}}}',
        expect=("--profile:", "nested too deeply"),
    ),
    suggest(
        "profile nested 40 deep",
        "hi",
        "--profile",
        f'{{"x": {deep(40)}}}',
        expect=("--profile:", "nested too deeply"),
    ),
    suggest(
        "profile 5000-digit integer",
        "hi",
        "--profile",
        f'{{"tenure_days": {BIG_INT}}}',
        expect=("--profile:", "5,000 digits"),
    ),
    suggest(
        "profile duplicate keys",
        "hi",
        "--profile",
        '{"plan": "a", "plan": "b"}',
        expect=("--profile:", "duplicate key 'plan'"),
    ),
    suggest(
        "profile not JSON", "hi", "--profile", "segment=smb", expect=("--profile:", "invalid JSON")
    ),
    suggest("profile empty", "hi", "--profile", "", expect=("--profile:", "invalid JSON")),
    suggest(
        "profile 1e400",
        "hi",
        "--profile",
        '{"tenure_days": 1e400}',
        expect=("--profile:", "too large"),
    ),
    suggest("profile a string", "hi", "--profile", '"smb"', expect=("--profile:", "JSON object")),
    suggest(
        "profile NUL",
        "hi",
        "--profile",
        '{"language": "e\\u0000n"}',
        expect=("--profile: language:", "NUL"),
    ),
    suggest(
        "profile over-long value",
        "hi",
        "--profile",
        j({"plan": "p" * 20_001}),
        expect=("--profile: plan:", "characters"),
    ),
    suggest("turn without a role", "hi", "--turn", "hello there", expect=("--turn",)),
    suggest("turn empty", "hi", "--turn", "user:", expect=("--turn 1:", "empty")),
    suggest("turn robot", "hi", "--turn", "robot: beep", expect=("--turn",)),
    suggest("101 turns", "hi", *(["--turn", "user: more"] * 101), expect=("--turn:", "101 turns")),
    suggest("turn NUL", "hi", "--turn", "user: a\x00b", expect=("--turn 1:", "NUL")),
    Case("mode fuzzy", ("suggest", "{idx}", "hi", "--mode", "fuzzy"), ("--mode",)),
    Case(
        "index folder missing", ("suggest", "{tmp}/nowhere", "hi"), ("nowhere", "folder not found")
    ),
    Case(
        "index is a file",
        ("suggest", "{tmp}/f.txt", "hi"),
        ("f.txt", "folder not found"),
        {"f.txt": b"x"},
    ),
    Case(
        "ranker folder missing",
        ("suggest", "{idx}", "hi", "--ranker", "{tmp}/no-ranker"),
        ("no-ranker",),
    ),
]

MANIFEST_CASES = [
    manifest("manifest a JSON list", b"[1, 2]", "not a JSON object"),
    manifest("manifest files a list", edited_manifest(lambda m: m.update(files=[])), "files"),
    manifest(
        "manifest without counts", edited_manifest(lambda m: m.__delitem__("counts")), "counts"
    ),
    manifest("manifest nested 100k deep", deep(100_000).encode(), "nested too deeply"),
    manifest(
        "manifest nested 40 deep",
        edited_manifest(lambda m: m.update(x=json.loads(deep(40)))),
        "nested too deeply",
    ),
    manifest("manifest invalid JSON", b'{"kind": ', "invalid JSON"),
    manifest("manifest empty", b"", "invalid JSON"),
    manifest("manifest 5000-digit integer", f'{{"format_version": {BIG_INT}}}'.encode(), "digits"),
    manifest("manifest kind a list", edited_manifest(lambda m: m.update(kind=[])), "kind"),
    manifest(
        "manifest kind unknown",
        edited_manifest(lambda m: m.update(kind="frontdesk-toaster")),
        "kind",
    ),
    manifest(
        "manifest format 99", edited_manifest(lambda m: m.update(format_version=99)), "format 99"
    ),
    manifest("manifest invalid UTF-8", b'{"kind": "\xff"}', "UTF-8"),
    manifest(
        "manifest duplicate keys", b'{"kind": "frontdesk-index", "kind": "x"}', "duplicate key"
    ),
    manifest("manifest list, suggest", b"[1, 2]", "not a JSON object", command="suggest"),
    manifest(
        "manifest files a list, suggest",
        edited_manifest(lambda m: m.update(files=[])),
        "files",
        command="suggest",
    ),
    manifest(
        "manifest without counts, suggest",
        edited_manifest(lambda m: m.__delitem__("counts")),
        "counts",
        command="suggest",
    ),
]

UPDATE_CASES = [
    Case(
        "remove --from-file missing",
        ("index", "remove", "{idx}", "--from-file", "{tmp}/missing.txt"),
        ("missing.txt", "file not found"),
        own_index=True,
    ),
    Case(
        "remove --from-file a directory",
        ("index", "remove", "{idx}", "--from-file", "{tmp}"),
        ("is a directory",),
        own_index=True,
    ),
    Case(
        "remove --from-file invalid UTF-8",
        ("index", "remove", "{idx}", "--from-file", "{tmp}/ids.txt"),
        ("ids.txt", "UTF-8"),
        {"ids.txt": b"payout-failed\n\xff\xfe\n"},
        own_index=True,
    ),
    Case("remove no ids", ("index", "remove", "{idx}"), ("IDS",), own_index=True),
    Case(
        "remove unknown id",
        ("index", "remove", "{idx}", "no-such-workflow"),
        ("no-such-workflow",),
        own_index=True,
    ),
    Case(
        "add catalog with NaN",
        ("index", "add", "{idx}", "{tmp}/more.jsonl"),
        ("more.jsonl:1:", "NaN"),
        {"more.jsonl": lines('{"id": "z", "title": "Z", "w": NaN}')},
        own_index=True,
    ),
    Case(
        "add yaml alias bomb",
        ("index", "add", "{idx}", "{tmp}/more.yaml"),
        ("more.yaml:4:", "anchors"),
        {"more.yaml": BOMB},
        own_index=True,
    ),
    Case(
        "add to a missing index",
        ("index", "add", "{tmp}/nowhere", "{tmp}/more.jsonl"),
        ("nowhere",),
        {"more.jsonl": lines(wf())},
    ),
]

COMPARE_CASES = [
    Case(
        "compare nested 100k deep",
        ("eval", "--compare", "{tmp}/a.json", "{tmp}/b.json"),
        ("a.json", "nested too deeply"),
        {"a.json": deep(100_000).encode(), "b.json": b"{}"},
    ),
    Case(
        "compare a JSON list",
        ("eval", "--compare", "{tmp}/a.json", "{tmp}/b.json"),
        ("b.json", "JSON object"),
        {"a.json": b"{}", "b.json": b"[1]"},
    ),
    Case(
        "compare file missing",
        ("eval", "--compare", "{tmp}/a.json", "{tmp}/gone.json"),
        ("gone.json",),
        {"a.json": b"{}"},
    ),
    Case(
        "compare invalid JSON",
        ("eval", "--compare", "{tmp}/a.json", "{tmp}/b.json"),
        ("a.json", "invalid JSON"),
        {"a.json": b"{oops", "b.json": b"{}"},
    ),
]

ROUTE_CASES = [
    Case("route empty text", ("route", "{tmp}/router", "--text", ""), ("text:", "empty")),
    Case(
        "route profile a list",
        ("route", "{tmp}/router", "--text", "hi", "--profile", "[1,2]"),
        ("--profile:", "JSON object"),
    ),
    Case(
        "route profile negative tenure",
        ("route", "{tmp}/router", "--text", "hi", "--profile", '{"tenure_days": -5}'),
        ("--profile: tenure_days:",),
    ),
    Case(
        "route profile NaN",
        ("route", "{tmp}/router", "--text", "hi", "--profile", "NaN"),
        ("--profile:", "NaN"),
    ),
    Case(
        "route router missing",
        ("route", "{tmp}/router", "--text", "hi"),
        ("router", "folder not found"),
    ),
    Case("route --wait -1", ("route", "{tmp}/router", "--text", "hi", "--wait", "-1"), ("--wait",)),
]

POLICY_CASES = [
    Case(
        "policy yaml alias bomb",
        ("simulate", "policy", "{logs}", "--policy", "{tmp}/p.yaml"),
        ("p.yaml:4:", "anchors"),
        {"p.yaml": BOMB},
    ),
    Case(
        "policy yaml nested 5000 deep",
        ("simulate", "policy", "{logs}", "--policy", "{tmp}/p.yaml"),
        ("p.yaml:1:", "nested too deeply"),
        {"p.yaml": b"rules: " + deep(5000).encode()},
    ),
    Case(
        "policy yaml 5000-digit integer",
        ("simulate", "policy", "{logs}", "--policy", "{tmp}/p.yaml"),
        ("p.yaml:1:", "digits"),
        {"p.yaml": b"epsilon: " + BIG_INT.encode()},
    ),
    Case(
        "policy yaml invalid UTF-8",
        ("simulate", "policy", "{logs}", "--policy", "{tmp}/p.yaml"),
        ("p.yaml", "UTF-8"),
        {"p.yaml": b"rules: \xff"},
    ),
    Case(
        "policy json nested 100k deep",
        ("simulate", "policy", "{logs}", "--policy", "{tmp}/p.json"),
        ("p.json", "nested too deeply"),
        {"p.json": deep(100_000).encode()},
    ),
    Case(
        "policy yaml unclosed",
        ("simulate", "policy", "{logs}", "--policy", "{tmp}/p.yaml"),
        ("p.yaml:1:", "not valid yaml"),
        {"p.yaml": b"rules: ["},
    ),
]

GATE_Q = {"q.jsonl": b'{"text": "where is my payout", "label": "payout-delayed"}\n'}
GATE_CASES = [
    Case(
        "gate on a BM25-only index",
        ("train", "gate", "{idx}", "{tmp}/q.jsonl", "--out", "{tmp}/g.jsonl"),
        ("needs hybrid retrieval", "--sparse-only"),
        GATE_Q,
    ),
    Case(
        "gate out is a folder",
        ("train", "gate", "{idx}", "{tmp}/q.jsonl", "--out", "{tmp}"),
        ("a folder",),
        GATE_Q,
    ),
    Case(
        "gate out would replace the questions",
        ("train", "gate", "{idx}", "{tmp}/q.jsonl", "--out", "{tmp}/q.jsonl", "--overwrite"),
        ("q.jsonl", "not a gate"),
        GATE_Q,
    ),
    Case(
        "gate out exists",
        ("train", "gate", "{idx}", "{tmp}/q.jsonl", "--out", "{tmp}/q.jsonl"),
        ("q.jsonl", "--overwrite"),
        GATE_Q,
    ),
    Case(
        "index build asked for a gate, BM25 only",
        ("index", "build", "{tmp}/c.jsonl", "--out", "{tmp}/out", "--sparse-only", "--gate"),
        ("c.jsonl", "needs a dense part", "without --gate"),
        {"c.jsonl": "\n".join(json.dumps(w) for w in TINY_CATALOG).encode()},
    ),
    Case(
        "index build asked for a gate, too few examples",
        (
            "index",
            "build",
            "{tmp}/c.jsonl",
            "--out",
            "{tmp}/out",
            "--examples",
            "{tmp}/q.jsonl",
            "--gate",
        ),
        ("c.jsonl + {tmp}/q.jsonl: label:", "labelled questions", "without --gate"),
        {"c.jsonl": "\n".join(json.dumps(w) for w in TINY_CATALOG).encode(), **GATE_Q},
    ),  # fmt: skip
]

CASES = (
    CATALOG_CASES
    + QUERY_CASES
    + SUGGEST_CASES
    + MANIFEST_CASES
    + UPDATE_CASES
    + COMPARE_CASES
    + ROUTE_CASES
    + POLICY_CASES
    + GATE_CASES
)


def test_the_corpus_is_at_least_as_large_as_the_trial() -> None:
    assert len(CASES) >= 113
    assert len({c.name for c in CASES}) == len(CASES)


@pytest.fixture(scope="module")
def tiny_sparse_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from frontdesk import build_index

    root = tmp_path_factory.mktemp("hostile-index")
    build_index(write_jsonl(root / "catalog.jsonl", TINY_CATALOG), root / "index", dense=False)
    return root / "index"


@pytest.fixture(scope="module")
def small_logs(tmp_path_factory: pytest.TempPathFactory, demo_pool) -> Path:
    from frontdesk.orgsim import OrgConfig, simulate_org

    out = tmp_path_factory.mktemp("hostile-logs") / "logs"
    simulate_org(OrgConfig(seed=3, contacts=120, agents=4, days=1), demo_pool, out)
    return out


def _snapshot(root: Path) -> dict[str, str]:
    """Every file and folder under ``root`` with a digest of its content."""
    out = {}
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        out[rel] = hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
    return out


def _prepare(case: Case, tmp: Path, index: Path, logs: Path | None) -> list[str]:
    idx = index
    if case.manifest is not None or case.own_index:
        idx = tmp / "idx"
        shutil.copytree(index, idx)
        if case.manifest is not None:
            m = case.manifest
            content = m(idx / "manifest.json") if callable(m) else m  # type: ignore[call-arg]
            (idx / "manifest.json").write_bytes(content)
    for name, content in case.files.items():
        if content is None:
            (tmp / name).mkdir()
        else:
            (tmp / name).write_bytes(content() if callable(content) else content)
    subs = {"{tmp}": str(tmp), "{idx}": str(idx), "{logs}": str(logs)}
    args = []
    for a in case.args:
        for k, v in subs.items():
            a = a.replace(k, v)
        args.append(a)
    return args


def _check(result: Ran, case: Case, tmp: Path, before: dict[str, str]) -> None:
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"{case.name}: {result.exception!r} reached the user"
    )
    assert "Traceback" not in result.output
    assert result.exit_code == 2, (case.name, result.exit_code, result.output[-500:])
    err = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(err) == 1, err
    assert err[0].startswith("error: "), err
    for part in case.expect:
        assert part.replace("{tmp}", str(tmp)) in err[0], (part, err[0])
    assert result.stdout == ""
    after = {k: v for k, v in _snapshot(tmp).items() if not k.endswith(".lock")}
    assert after == {k: v for k, v in before.items() if not k.endswith(".lock")}, (
        "left behind or changed: "
        + ", ".join(sorted(set(after.items()) ^ set(before.items()), key=str)[:5])
    )


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_hostile_input_is_one_error_line_and_exit_2(
    case: Case, tmp_path: Path, tiny_sparse_index: Path, request: pytest.FixtureRequest
) -> None:
    logs = request.getfixturevalue("small_logs") if "{logs}" in " ".join(case.args) else None
    args = _prepare(case, tmp_path, tiny_sparse_index, logs)
    before = _snapshot(tmp_path)
    result = invoke(args)
    _check(result, case, tmp_path, before)


# -- the same through a real process: exit codes and stderr as the user sees them -----------------

SUBPROCESS_ENV = {**os.environ, "FRONTDESK_DEBUG": "", "PYTHONWARNINGS": "ignore"}


def _frontdesk(
    *args: str | bytes, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "frontdesk", *args],
        capture_output=True,
        timeout=120,
        env=env or SUBPROCESS_ENV,
    )


def _one_error_line(done: subprocess.CompletedProcess, code: int = 2) -> str:
    stderr = done.stderr.decode("utf-8", "replace")
    assert b"Traceback" not in done.stderr
    assert done.returncode == code, stderr
    err = [line for line in stderr.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith("error: "), err
    assert done.stdout == b""
    return err[0]


def test_undecodable_argument_in_a_real_process(tiny_sparse_index: Path) -> None:
    done = _frontdesk("suggest", str(tiny_sparse_index), b"refund \xff\xfe", "--mode", "sparse")
    assert "UTF-8" in _one_error_line(done)


def test_profile_and_catalog_in_a_real_process(tiny_sparse_index: Path, tmp_path: Path) -> None:
    done = _frontdesk(
        "suggest", str(tiny_sparse_index), "hi", "--profile", f'{{"x": {deep(50_000)}}}'
    )
    assert "--profile" in _one_error_line(done)
    bomb = tmp_path / "cat.yaml"
    bomb.write_bytes(BOMB)
    done = _frontdesk("index", "build", str(bomb), "--out", str(tmp_path / "out"), "--sparse-only")
    assert "cat.yaml:4:" in _one_error_line(done)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cat.yaml"]


@pytest.mark.slow
def test_more_cases_in_a_real_process(tiny_sparse_index: Path, tmp_path: Path) -> None:
    done = _frontdesk("suggest", str(tiny_sparse_index), "")
    assert "text: is empty" in _one_error_line(done)
    done = _frontdesk("index", "remove", str(tiny_sparse_index), "--from-file", str(tmp_path / "x"))
    assert "file not found" in _one_error_line(done)
    queries = tmp_path / "q.jsonl"
    queries.write_bytes(lines(q(label=None)))
    done = _frontdesk(
        "eval",
        str(tiny_sparse_index),
        str(queries),
        "--mode",
        "sparse",
        "--report",
        str(tmp_path / "r"),
    )
    assert "every label is null" in _one_error_line(done)
    assert not (tmp_path / "r").exists()


# -- internal errors: exit 1, one line with a hint; --debug shows the traceback -------------------


def _broken_load(*args: object, **kwargs: object) -> None:
    raise KeyError("boom")


def test_an_internal_error_is_one_line_with_a_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    from frontdesk.suggester import Suggester

    monkeypatch.setattr(Suggester, "load", _broken_load)
    monkeypatch.delenv("FRONTDESK_DEBUG", raising=False)
    result = runner.invoke(app, ["suggest", "somewhere", "hi"])
    assert result.exit_code == 1
    err = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(err) == 1 and "internal error (KeyError: 'boom')" in err[0]
    assert "--debug" in err[0] and "FRONTDESK_DEBUG=1" in err[0]
    assert "Traceback" not in result.output


@pytest.mark.parametrize("how", ["--debug", "FRONTDESK_DEBUG=1"])
def test_debug_shows_the_traceback(monkeypatch: pytest.MonkeyPatch, how: str) -> None:
    from frontdesk.suggester import Suggester

    monkeypatch.setattr(Suggester, "load", _broken_load)
    args = ["suggest", "somewhere", "hi"]
    if how == "--debug":
        monkeypatch.delenv("FRONTDESK_DEBUG", raising=False)
        args = ["--debug", *args]
    else:
        monkeypatch.setenv("FRONTDESK_DEBUG", "1")
    result = runner.invoke(app, args)
    assert result.exit_code == 1
    assert "Traceback (most recent call last)" in result.stderr
    assert "KeyError: 'boom'" in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error: internal error")


def test_debug_keeps_bad_input_at_exit_2(tiny_sparse_index: Path) -> None:
    result = runner.invoke(app, ["--debug", "suggest", str(tiny_sparse_index), ""])
    assert result.exit_code == 2
    assert "Traceback" in result.stderr and "DataError" in result.stderr
    assert result.stderr.strip().splitlines()[-1] == "error: text: is empty or only whitespace"
