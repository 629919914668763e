"""Writing scores: the Markdown table, the per-frame CSV, strict JSON and the per-frame plot of
`tools.evaluation.Result`s; shared by `tools.evaluate` and `tools.compare_demo`."""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from common.errors import InputError
from tools.evaluation import DECIMALS, DRIVER_SUFFIX, MISSING, Result, column_label, higher_is_better


def rank(results: Sequence[Result], column: str) -> list[str]:
    """Method names from best to worst on `column`'s mean (methods without a value last)."""
    sign = -1.0 if higher_is_better(column) else 1.0

    def key(result: Result) -> tuple[bool, float]:
        value = result.summary()["mean"].get(column, math.nan)
        return math.isnan(value), 0.0 if math.isnan(value) else sign * value

    return [result.method for result in sorted(results, key=key)]


def json_ready(value):
    """NaN -> null and ±inf -> "inf"/"-inf": summary files stay strict JSON."""
    if isinstance(value, dict):
        return {k: json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else ("inf" if value > 0 else "-inf")
    return value


def format_value(column: str, value) -> str:
    if not isinstance(value, float):
        return str(value)
    if math.isnan(value):
        return "–"
    if math.isinf(value):
        return "∞" if value > 0 else "-∞"
    return f"{value:.{DECIMALS.get(column.removesuffix(DRIVER_SUFFIX), 4)}f}"


def markdown_table(results: Sequence[Result], columns: Sequence[str], extra: Sequence[tuple[str, str]] = ()) -> str:
    """One row per method: its mean scores (with ↑/↓ headers), frame count, missing-keypoint rate
    where landmarks were used, then the `extra` (info key, header) columns."""
    with_missing = any("missing_keypoint_rate" in r.summary() for r in results)
    header = ["method", *map(column_label, columns), "frames"] + (["no face"] if with_missing else [])
    header += [title for _, title in extra]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for result in results:
        summary = result.summary()
        cells = [result.method] + [format_value(c, summary["mean"].get(c, math.nan)) for c in columns]
        cells.append(str(summary["count"]))
        if with_missing:
            rate = summary.get("missing_keypoint_rate")
            cells.append("–" if rate is None else f"{rate:.0%}")
        cells += [format_value(key, summary.get(key, "–")) for key, _ in extra]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_per_frame_csv(path: Path, results: Sequence[Result], columns: Sequence[str]) -> Path:
    """method, frame, then each per-frame column (set-level metrics such as FID are left out)."""
    per_frame = [c for c in columns if c != "fid"]
    extra = [MISSING] if any(MISSING in row for r in results for row in r.rows) else []
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["method", "frame", *per_frame, *extra])
        for result in results:
            for name, row in zip(result.frames, result.rows):
                writer.writerow([result.method, name, *(_csv_value(row.get(c, math.nan)) for c in per_frame + extra)])
    return path


def _csv_value(value: float) -> str:
    return "" if math.isnan(value) else repr(float(value))


def plot_metrics(path: Path, sections: Sequence[tuple[str, Sequence[Result], Sequence[str]]], per_row: int = 4) -> Path:
    """One subplot per per-frame metric (x: frame number, one line per method), `per_row` to a
    row, each section (title, results, columns) starting a new row. Infinite values (identical
    frames) are not drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    panels = []  # (grid row, grid column, title, results, column)
    for title, results, columns in sections:
        columns = [c for c in columns if c != "fid"]
        first_row = panels[-1][0] + 1 if panels else 0
        for i, column in enumerate(columns if results else []):
            panels.append((first_row + i // per_row, i % per_row, title, results, column))
    if not panels:
        raise InputError(f"{path}: no per-frame scores to plot")
    rows, width = panels[-1][0] + 1, min(per_row, max(p[1] for p in panels) + 1)
    fig, axes = plt.subplots(rows, width, figsize=(3.4 * width, 2.6 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for row, col, title, results, column in panels:
        ax = axes[row][col]
        ax.axis("on")
        for result in results:
            x = [int(n) if n.isdigit() else i for i, n in enumerate(result.frames)]
            y = np.array([r.get(column, math.nan) for r in result.rows], dtype=float)
            ax.plot(x, np.where(np.isinf(y), np.nan, y), marker=".", label=result.method)
        ax.set_title(f"{title}: {column_label(column)}" if title else column_label(column), fontsize=8)
        ax.set_xlabel("frame", fontsize=7)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.tick_params(labelsize=7)
        if col == 0:
            ax.legend(fontsize=6)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def write_json(path: Path, data: dict) -> Path:
    path.write_text(json.dumps(json_ready(data), indent=2, ensure_ascii=False) + "\n")
    return path
