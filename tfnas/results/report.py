"""`report.html`: one self-contained page a person opens after a search.

Built from what a search leaves in its output directory (`results.json`, the PNG figures,
the exported `.tflite`); it never trains or builds a model. The page needs no server and
no network: the figures are embedded as base64 `data:` URIs, the style is inline, and there
is no script. It shows:

- a summary: space, oracle, dataset, the best trial's accuracy and costs, any cost
  constraint, and the exported model's `.tflite` size (bytes of the file) and measured
  LiteRT latency (the `tfnas.latency.measure` report the search recorded);
- one table row per trial: id, status, architecture (hyperparameter values), score and
  the recorded cost metrics (`tfnas.cost.COST_METRICS`, and `latency_ms` where measured);
- the figures: the Pareto plot, and where the search drew them the derived cells
  (`draw_cells`) and the architecture-distribution history of a differentiable search
  (`alpha_logging.plot_alpha_history`, through the oracle's `plot_history`).

```python
figures = [("Pareto front", "runs/demo/pareto.png"), *draw_cells(values, "runs/demo")]
write_report("runs/demo", figures=figures)   # -> "runs/demo/report.html"
```
"""

from __future__ import annotations

import base64
import html
import json
import math
import os
import re
from collections.abc import Mapping, Sequence
from typing import Any

from tfnas.cost import COST_METRICS, LATENCY_METRIC

REPORT_FILE = "report.html"
RESULTS_FILE = "results.json"
ALPHA_HISTORY_FILE = "alpha_history.png"
# The columns of the trial table after the score, in this order, where any trial has them.
ACCURACY_METRICS = ("val_accuracy", "accuracy", "val_mean_iou", "mean_iou")
COST_COLUMNS = (*COST_METRICS, LATENCY_METRIC)

_CELL_KEY = re.compile(r"(.+)/node\d+/(?:inputs|edge\d+)")
# Cells in the order a reader expects them (DARTS: normal then reduce).
_CELL_ORDER = ("cell", "normal", "reduce")

_STYLE = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2em;
       color: #222; max-width: 80em; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 2em; }
table { border-collapse: collapse; font-size: 0.85em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }
th { background: #f0f0f0; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.best { background: #e8f5e0; }
tr.rejected { color: #888; }
table.summary th { width: 12em; }
code { font-size: 0.95em; }
figure { display: inline-block; margin: 0 1.5em 1.5em 0; vertical-align: top; }
figure img { max-width: 100%; border: 1px solid #ddd; }
figcaption { font-size: 0.85em; color: #555; }
"""


def cell_prefixes(values: Mapping[str, Any]) -> list[str]:
    """The cells of an architecture: prefixes of its `"{prefix}/node{j}/..."` names.

    Args:
        values: hyperparameter values of an architecture.

    Returns:
        e.g. `["cell"]` for NAS-Bench-201, `["normal", "reduce"]` for DARTS; `[]` for a
        space without cells (e.g. a mobile space).
    """
    found = {m.group(1) for m in map(_CELL_KEY.fullmatch, values) if m}
    order = {name: i for i, name in enumerate(_CELL_ORDER)}
    return sorted(found, key=lambda name: (order.get(name, len(order)), name))


def draw_cells(values: Mapping[str, Any], output_dir: str) -> list[tuple[str, str]]:
    """Draws every cell of an architecture as `cell_{prefix}.png` in `output_dir`.

    Args:
        values: hyperparameter values of an architecture (e.g. the best trial's).
        output_dir: where the PNGs go.

    Returns:
        `(caption, path)` per drawn cell, as `write_report` takes them; empty when the
        architecture has no cells.
    """
    from tfnas.results import alpha_logging  # Loads matplotlib and TensorFlow.

    figures = []
    for prefix in cell_prefixes(values):
        path = os.path.join(output_dir, f"cell_{prefix}.png")
        alpha_logging.plot_cell(values, path, prefix)
        figures.append((f"Derived cell: {prefix}", path))
    return figures


def draw_alpha_history(oracle: Any, output_dir: str) -> list[tuple[str, str]]:
    """Draws a differentiable oracle's per-epoch distributions as `alpha_history.png`.

    Args:
        oracle: any oracle; only those with a non-empty `history` and a
            `plot_history(path)` method (the differentiable family) are drawn.
        output_dir: where the PNG goes.

    Returns:
        `[(caption, path)]`, or `[]` for an oracle without such a history.
    """
    if not getattr(oracle, "history", None) or not callable(getattr(oracle, "plot_history", None)):
        return []
    path = oracle.plot_history(os.path.join(output_dir, ALPHA_HISTORY_FILE))
    return [("Architecture distribution per supernet epoch (alpha history)", path)]


def write_report(
    output_dir: str,
    results: Mapping[str, Any] | None = None,
    figures: Sequence[tuple[str, str]] | None = None,
    path: str | None = None,
) -> str:
    """Writes the report of a search's output directory.

    Args:
        output_dir: a `tfnas-search` output directory.
        results: the search's results (default: `output_dir/results.json`), with at least
            "trials"; the summary keys of `tfnas.pipeline.run_search` are shown when present.
        figures: `(caption, png path)` to embed, in order. Default: `pareto.png`, the
            `cell_*.png` and `alpha_history.png` found in `output_dir`.
        path: where to write (default `output_dir/report.html`).

    Returns:
        The path of the report.

    Raises:
        FileNotFoundError: when `results` is None and `output_dir` has no `results.json`,
            or a figure's file is missing.
    """
    if results is None:
        results_path = os.path.join(output_dir, RESULTS_FILE)
        if not os.path.exists(results_path):
            raise FileNotFoundError(
                f"No {RESULTS_FILE} in output_dir: pass the output directory of a finished "
                f"search, or results=. Received: output_dir={output_dir!r}"
            )
        with open(results_path, encoding="utf-8") as f:
            results = json.load(f)
    if figures is None:
        figures = _found_figures(output_dir)
    tflite_path = os.path.join(output_dir, "best_model.tflite")
    tflite_bytes = os.path.getsize(tflite_path) if os.path.exists(tflite_path) else None
    page = build_html(results, figures, tflite_bytes=tflite_bytes)
    path = path or os.path.join(output_dir, REPORT_FILE)
    with open(path, "w", encoding="utf-8") as f:
        f.write(page)
    return path


def build_html(
    results: Mapping[str, Any],
    figures: Sequence[tuple[str, str]] = (),
    tflite_bytes: int | None = None,
) -> str:
    """The report page as a string (see the module docstring).

    Args:
        results: as `write_report` takes them.
        figures: `(caption, png path)` to embed.
        tflite_bytes: size of the exported `.tflite` file (default: the latency report's
            `size_bytes`).

    Returns:
        A complete HTML document.
    """
    trials = list(results.get("trials") or [])
    space = results.get("space", "")
    oracle = results.get("oracle", "")
    title = f"tfnas search: {space} / {oracle}" if space or oracle else "tfnas search"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        f"<title>{_text(title)}</title>",
        f"<style>{_STYLE}</style>",
        "</head>",
        "<body>",
        f"<h1>{_text(title)}</h1>",
        _summary_table(results, tflite_bytes),
        '<h2 id="trials">Trials</h2>',
        _trial_table(trials, results),
    ]
    if figures:
        parts.append('<h2 id="figures">Figures</h2>')
        parts.extend(_figure(caption, png) for caption, png in figures)
    parts += ["</body>", "</html>", ""]
    return "\n".join(parts)


# --- Pieces -----------------------------------------------------------------------------------


def _summary_table(results: Mapping[str, Any], tflite_bytes: int | None) -> str:
    latency = results.get("latency") or {}
    if tflite_bytes is None:
        tflite_bytes = latency.get("size_bytes")
    rows: list[tuple[str, str]] = []
    for key, label in (("space", "space"), ("oracle", "oracle"), ("dataset", "dataset")):
        if key in results:
            rows.append((label, str(results[key])))
    constraints = results.get("constraints") or {}
    if constraints:
        rows.append(
            (
                "constraint",
                ", ".join(f"{name} \u2264 {_number(v)}" for name, v in constraints.items()),
            )
        )
    if "num_trials" in results:
        rows.append(("trials", str(results["num_trials"])))
    if "best_trial_id" in results:
        rows.append(("best trial", str(results["best_trial_id"])))
    for key in ("val_accuracy", "test_accuracy", "val_mean_iou", "test_mean_iou"):
        label = key.replace("_", " ")
        if results.get(key) is not None:
            rows.append((label, f"{results[key]:.4f}"))
    for key, label in (("num_params", "parameters"), ("flops", "multiply-adds")):
        if results.get(key) is not None:
            rows.append((label, f"{int(results[key]):,}"))
    if "tflite_quantize" in results:
        rows.append(("tflite", str(results["tflite_quantize"] or "float32")))
    if tflite_bytes is not None:
        rows.append(("tflite size", f"{int(tflite_bytes)} bytes ({tflite_bytes / 1024:.1f} KiB)"))
    if latency.get("median_ms") is not None:
        rows.append(("latency median", f"{latency['median_ms']:.4f} ms"))
        if latency.get("p10_ms") is not None and latency.get("p90_ms") is not None:
            rows.append(
                ("latency p10-p90", f"{latency['p10_ms']:.4f} - {latency['p90_ms']:.4f} ms")
            )
        rows.append(
            ("threads / runs", f"{latency.get('num_threads', '?')} / {latency.get('runs', '?')}")
        )
    body = "\n".join(
        f'<tr><th>{_text(label)}</th><td id="{_id(label)}">{_text(value)}</td></tr>'
        for label, value in rows
    )
    return f'<table class="summary">\n{body}\n</table>'


def _trial_table(trials: Sequence[Mapping[str, Any]], results: Mapping[str, Any]) -> str:
    metric_names = [
        name
        for name in (*ACCURACY_METRICS, *COST_COLUMNS)
        if any(name in (t.get("metrics") or {}) for t in trials)
    ]
    header = ["trial", "status", "architecture", "score", *metric_names]
    head = "<tr>" + "".join(f"<th>{_text(name)}</th>" for name in header) + "</tr>"
    best = results.get("best_trial_id")
    constraints = results.get("constraints") or {}
    rows = []
    for trial in trials:
        metrics = trial.get("metrics") or {}
        over = [
            name
            for name, limit in constraints.items()
            if metrics.get(name) is not None and metrics[name] > limit
        ]
        status = str(trial.get("status", ""))
        if over:
            status += " (over budget: " + ", ".join(over) + ")"
        classes = ["best"] if best is not None and trial.get("trial_id") == best else []
        if over:
            classes.append("rejected")
        values = trial.get("values") or {}
        architecture = "<br>".join(
            f"<code>{_text(name)}={_text(value)}</code>" for name, value in values.items()
        )
        cells = [
            f"<td>{_text(trial.get('trial_id', ''))}</td>",
            f"<td>{_text(status)}</td>",
            f"<td>{architecture}</td>",
            f'<td class="num">{_number(trial.get("score"))}</td>',
            *(f'<td class="num">{_number(metrics.get(name))}</td>' for name in metric_names),
        ]
        class_attr = f' class="{" ".join(classes)}"' if classes else ""
        rows.append(f"<tr{class_attr}>" + "".join(cells) + "</tr>")
    return (
        f'<table class="trials">\n<thead>{head}</thead>\n<tbody>\n'
        + "\n".join(rows)
        + "\n</tbody>\n</table>"
    )


def _figure(caption: str, png_path: str) -> str:
    with open(png_path, "rb") as f:
        data = base64.b64encode(f.read()).decode("ascii")
    return (
        f'<figure><img src="data:image/png;base64,{data}" alt="{_text(caption)}">'
        f"<figcaption>{_text(caption)}</figcaption></figure>"
    )


def _found_figures(output_dir: str) -> list[tuple[str, str]]:
    figures = []
    pareto = os.path.join(output_dir, "pareto.png")
    if os.path.exists(pareto):
        figures.append(("Pareto front", pareto))
    names = sorted(os.listdir(output_dir)) if os.path.isdir(output_dir) else []
    cells = {n[len("cell_") : -len(".png")]: n for n in names if re.fullmatch(r"cell_.+\.png", n)}
    for prefix in cell_prefixes({f"{p}/node0/edge0": None for p in cells}):
        figures.append((f"Derived cell: {prefix}", os.path.join(output_dir, cells[prefix])))
    if ALPHA_HISTORY_FILE in names:
        figures.append(
            (
                "Architecture distribution per supernet epoch (alpha history)",
                os.path.join(output_dir, ALPHA_HISTORY_FILE),
            )
        )
    return figures


def _text(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _id(label: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-")


def _number(value: Any) -> str:
    """A metric for the table: integers with separators, others to 4 significant decimals."""
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return _text(value)
    if not math.isfinite(value):
        return _text(value)
    if float(value).is_integer() and abs(value) >= 1:
        return f"{int(value):,}"
    return f"{value:.4f}"
