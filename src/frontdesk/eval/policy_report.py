"""Report for `simulate policy`: per metric, a table and a forest plot across segments."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from ..extras import require
from .markdown import md_table, md_to_html

METRIC_TITLES = {
    "resolution": "Resolution rate (share)",
    "handle_time": "Handle time (minutes)",
    "csat": "CSAT (1-5)",
    "cost": "Cost per contact ($)",
    "utility": "Utility per contact",
}


def write_policy_report(result: dict[str, Any], out_dir: str | Path) -> list[Path]:
    """report.md, report.html, report.json and one forest plot PNG per metric."""
    require("matplotlib", "--report (its plots)")  # before anything is written
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    meta = result.get("meta", {})
    metrics = [m for m in result if m != "meta"]
    ests = meta.get("estimators", [])
    md = [
        f"# Policy simulation: {meta.get('policy', '')}",
        "",
        f"Logs {meta.get('logs', '')}; engine {meta.get('engine', '')}; estimators "
        f"{', '.join(ests)}; segments by "
        f"{', '.join(meta.get('segments_by', [])) or 'none'}; reward model cross-fitted in "
        f"{meta.get('folds')} folds; segments with ESS below {meta.get('min_ess')} are flagged "
        f"(low ESS: {', '.join(meta.get('low_ess_segments', [])) or 'none'}).",
        "",
    ]
    warnings = meta.get("warnings", [])
    md += ["## Warnings", ""]
    md += [f"- {w}" for w in warnings] if warnings else ["None."]
    md += [""]
    if "dm" in ests:
        md += [
            "DM's interval ignores the reward model's own error: read it as too narrow.",
            "",
        ]
    quality = meta.get("reward_model_quality", {})
    if quality:
        md += [
            "## Reward model (cross-fitted, on held-out folds)",
            "",
            *md_table(
                ["metric", "RMSE", "constant's RMSE", "R²"],
                [(m, q["rmse"], q["constant_rmse"], q["r2"]) for m, q in quality.items()],
            ),
            "",
        ]
    plots = {}
    for m in metrics:
        rows = [("overall", result[m]["overall"]), *sorted(result[m]["segments"].items())]
        body = []
        for seg, e in rows:
            cells = [
                seg,
                e["n"],
                f"{e['ess']:.0f}" + (" (low)" if e.get("low_ess") else ""),
                f"{e.get('max_weight', float('nan')):.3g}",
                e["logged"],
            ]
            for est in ests:
                v = e[est]
                cells.append(f"{v['value']:.4f} [{v['ci'][0]:.4f}, {v['ci'][1]:.4f}]")
            body.append(cells)
        md += [
            f"## {METRIC_TITLES.get(m, m)}",
            "",
            *md_table(["segment", "n", "ESS", "max weight", "logged", *ests], body),
            "",
        ]
        plots[m] = _forest(m, rows, ests, out)
        md += [f"![{METRIC_TITLES.get(m, m)}]({plots[m]})", ""]
    (out / "report.md").write_text("\n".join(md))
    (out / "report.html").write_text(md_to_html(md, "frontdesk policy simulation", base=out))
    (out / "report.json").write_text(json.dumps(result, indent=2) + "\n")
    return [
        out / "report.md",
        out / "report.html",
        out / "report.json",
        *(out / p for p in plots.values()),
    ]


def _forest(metric: str, rows: list[tuple[str, dict[str, Any]]], ests: list[str], out: Path) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 0.6 + 0.55 * len(rows) * max(1, len(ests)) ** 0.5))
    step = 0.7 / max(1, len(ests))
    for j, est in enumerate(ests):
        ys = np.arange(len(rows)) + j * step - 0.35 + step / 2
        vals = [e[est]["value"] for _, e in rows]
        lo = [e[est]["value"] - e[est]["ci"][0] for _, e in rows]
        hi = [e[est]["ci"][1] - e[est]["value"] for _, e in rows]
        ax.errorbar(vals, ys, xerr=[lo, hi], fmt="o", ms=4, capsize=2, label=est)
    ax.scatter(
        [e["logged"] for _, e in rows],
        np.arange(len(rows)),
        marker="|",
        s=300,
        c="k",
        label="logged",
    )
    ax.set_yticks(np.arange(len(rows)), [s + (" *" if e.get("low_ess") else "") for s, e in rows])
    ax.invert_yaxis()
    ax.set_xlabel(METRIC_TITLES.get(metric, metric))
    ax.set_title(f"{METRIC_TITLES.get(metric, metric)}: estimates with 95 % intervals (* low ESS)")
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    name = f"forest_{metric}.png"
    fig.savefig(out / name, dpi=100)
    plt.close(fig)
    return name
