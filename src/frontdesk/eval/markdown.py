"""The small markdown and HTML writer every evaluation report uses."""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def md_table(header: Sequence[str], body: Sequence[Sequence[Any]]) -> list[str]:
    """A markdown table as lines."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(fmt(x) for x in row) + " |" for row in body]
    return lines


def fmt(x: Any) -> str:
    """Floats to four places, the rest as they print."""
    return f"{x:.4f}" if isinstance(x, float) else str(x)


def _inline(text: str) -> str:
    """Escaped text with `code` spans as <code>."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(text))


def _image_src(src: str, base: Path | None) -> str:
    """A PNG beside the report embedded as a data URI, so the HTML file travels alone."""
    path = base / src if base is not None else None
    if path is not None and path.suffix == ".png" and path.is_file():
        return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")
    return html.escape(src)


def md_to_html(
    md: list[str], title: str = "frontdesk evaluation", base: str | Path | None = None
) -> str:
    """A small self-contained rendering of the markdown (headings, tables, lists, images).

    Images found under ``base`` (the report's folder) are embedded in the page.
    """
    base = Path(base) if base is not None else None
    body, in_table, in_list = [], False, False
    for line in md:
        if line.startswith("- "):
            if not in_list:
                body.append("<ul>")
                in_list = True
            body.append(f"<li>{_inline(line[2:])}</li>")
            continue
        if in_list:
            body.append("</ul>")
            in_list = False
        if line.startswith("|") and not line.startswith("|---"):
            cell = "td" if in_table else "th"  # a table's first row is its header
            if not in_table:
                body.append("<table>")
                in_table = True
            cells = [_inline(c.strip()) for c in line.strip("|").split("|")]
            body.append("<tr>" + "".join(f"<{cell}>{c}</{cell}>" for c in cells) + "</tr>")
            continue
        if line.startswith("|---"):
            continue
        if in_table:
            body.append("</table>")
            in_table = False
        if line.startswith("## "):
            body.append(f"<h2>{_inline(line[3:])}</h2>")
        elif line.startswith("# "):
            body.append(f"<h1>{_inline(line[2:])}</h1>")
        elif line.startswith("!["):
            alt, src = line[2:].split("](")
            body.append(
                f'<figure><img src="{_image_src(src[:-1], base)}" alt="{html.escape(alt)}">'
                f"<figcaption>{html.escape(alt)}</figcaption></figure>"
            )
        elif line:
            body.append(f"<p>{_inline(line)}</p>")
    if in_table:
        body.append("</table>")
    if in_list:
        body.append("</ul>")
    style = (
        "body{font-family:sans-serif;max-width:60em;margin:2em auto}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 8px}"
        "th{font-weight:bold;background:#f4f4f4;text-align:left}"
        "code{background:#f4f4f4;padding:0 2px}figure img{max-width:100%}"
    )
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{style}</style></head><body>{''.join(body)}</body></html>\n"
    )
