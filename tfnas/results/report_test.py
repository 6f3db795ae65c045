"""report.html: a self-contained page, checked with an HTML parser."""

import base64
import html.parser
import json
import os
import re

import pytest

from tfnas.results import plotting, report


class _Page(html.parser.HTMLParser):
    """Collects what the checks need: tags, trial rows, images, summary cells, all URLs."""

    def __init__(self):
        super().__init__()
        self.tags, self.images, self.urls = [], [], []
        self.trial_rows: list[list[str]] = []
        self.row_classes: list[str] = []
        self.summary: dict[str, str] = {}
        self._table = None
        self._section = None
        self._row = None
        self._cell = None
        self._summary_id = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append(tag)
        for name, value in attrs.items():
            if name in ("src", "href", "action", "data", "poster", "srcset") and value:
                self.urls.append(value)
        if tag == "table":
            self._table = attrs.get("class")
        elif tag in ("thead", "tbody"):
            self._section = tag
        elif tag == "tr" and self._table == "trials" and self._section == "tbody":
            self._row = []
            self.row_classes.append(attrs.get("class") or "")
        elif tag == "td":
            self._cell = []
            self._summary_id = attrs.get("id") if self._table == "summary" else None
        elif tag == "img":
            self.images.append(attrs)

    def handle_endtag(self, tag):
        if tag == "td" and self._cell is not None:
            text = "".join(self._cell).strip()
            if self._row is not None:
                self._row.append(text)
            if self._summary_id:
                self.summary[self._summary_id] = text
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self.trial_rows.append(self._row)
            self._row = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def _png(path):
    figure = plotting.new_figure(1, 1)
    figure.add_subplot().plot([0, 1], [1, 0])
    return plotting.save_png(figure, path)


def _results(constraints=None):
    values = [
        {"cell/node1/edge0": "nor_conv_3x3", "cell/node2/edge0": "<skip>"},
        {"cell/node1/edge0": "avg_pool_3x3", "cell/node2/edge0": "none"},
        {"cell/node1/edge0": "nor_conv_1x1", "cell/node2/edge0": "none"},
    ]
    metrics = [
        {"val_accuracy": 0.9, "num_params": 3000.0, "flops": 52000.0, "model_bytes": 12000.0},
        {"val_accuracy": 0.95, "num_params": 2000.0, "flops": 41000.0, "model_bytes": 8000.0},
        {"num_params": 9000.0, "flops": 91000.0, "model_bytes": 36000.0},
    ]
    return {
        "space": "nasbench201",
        "oracle": "pnas",
        "dataset": "digits",
        "num_trials": 3,
        "best_trial_id": "1",
        "val_accuracy": 0.95,
        "test_accuracy": 0.93,
        "num_params": 2000,
        "flops": 41000,
        "tflite_quantize": None,
        "constraints": constraints or {},
        "latency": {
            "median_ms": 0.0123,
            "p10_ms": 0.0120,
            "p90_ms": 0.0131,
            "runs": 5,
            "num_threads": 1,
            "size_bytes": 4321,
        },
        "trials": [
            {
                "trial_id": str(i),
                "status": "COMPLETED",
                "values": values[i],
                "score": metrics[i].get("val_accuracy", 0.0),
                "metrics": metrics[i],
            }
            for i in range(3)
        ],
    }


@pytest.fixture
def output_dir(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "results.json").write_text(json.dumps(_results({"flops": 60000.0})))
    (out / "best_model.tflite").write_bytes(b"\0" * 1234)
    _png(out / "pareto.png")
    _png(out / "cell_cell.png")
    return str(out)


def test_report_has_a_row_per_trial_embedded_images_and_the_exported_model(output_dir):
    path = report.write_report(output_dir)
    assert path == os.path.join(output_dir, "report.html")
    page = _Page()
    page.feed(open(path, encoding="utf-8").read())
    page.close()

    # One row per trial, in order, with its id, status, architecture, score and costs.
    assert [row[0] for row in page.trial_rows] == ["0", "1", "2"]
    header = ["trial", "status", "architecture", "score", "val_accuracy", "num_params"]
    assert all(len(row) == len(header) + 2 for row in page.trial_rows)  # + flops, model_bytes
    assert page.trial_rows[1][3] == "0.9500"
    assert page.trial_rows[2][5] == "9,000" and page.trial_rows[2][6] == "91,000"
    # A hyperparameter value is text, escaped, never markup.
    assert "cell/node2/edge0=<skip>" in page.trial_rows[0][2]
    assert "skip" not in page.tags
    # The best trial is marked; the one above the FLOPs constraint is flagged.
    assert page.row_classes == ["", "best", "rejected"]
    assert page.trial_rows[2][1] == "COMPLETED (over budget: flops)"
    assert page.summary["constraint"] == "flops \u2264 60,000"

    # Size of the .tflite file (not the latency report's) and the measured latency.
    assert page.summary["tflite-size"] == "1234 bytes (1.2 KiB)"
    assert page.summary["latency-median"] == "0.0123 ms"
    assert page.summary["latency-p10-p90"] == "0.0120 - 0.0131 ms"

    # The two PNGs, embedded byte for byte, in the order pareto then cell.
    assert [image["alt"] for image in page.images] == ["Pareto front", "Derived cell: cell"]
    for image, name in zip(page.images, ("pareto.png", "cell_cell.png")):
        prefix = "data:image/png;base64,"
        assert image["src"].startswith(prefix)
        data = base64.b64decode(image["src"][len(prefix) :])
        assert data == open(os.path.join(output_dir, name), "rb").read()
        assert data.startswith(b"\x89PNG")


def test_report_references_nothing_outside_the_file(output_dir):
    text = open(report.write_report(output_dir), encoding="utf-8").read()
    page = _Page()
    page.feed(text)
    assert page.urls and all(url.startswith("data:") for url in page.urls)
    assert "script" not in page.tags and "link" not in page.tags and "iframe" not in page.tags
    # Outside the base64 payloads (which may hold "//"), no URL of any kind.
    rest, payloads = re.subn(r'data:image/png;base64,[A-Za-z0-9+/]+=*"', '"', text)
    assert payloads == 2
    for scheme in ("http:", "https:", "//", "url(", "@import"):
        assert scheme not in rest, scheme


def test_report_without_a_tflite_uses_the_latency_reports_size(tmp_path):
    results = _results()
    text = report.build_html(results)
    page = _Page()
    page.feed(text)
    assert page.summary["tflite-size"] == "4321 bytes (4.2 KiB)"
    assert "constraint" not in page.summary
    assert page.images == []
    assert len(page.trial_rows) == 3


def test_missing_results_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=rf"Received: output_dir='{tmp_path}'"):
        report.write_report(str(tmp_path))


@pytest.mark.parametrize(
    "values, prefixes",
    [
        ({"cell/node1/edge0": "a", "cell/node2/edge1": "b"}, ["cell"]),
        (
            {"reduce/node0/inputs": "0,1", "normal/node0/edge1": "x", "normal/node0/inputs": "0,1"},
            ["normal", "reduce"],
        ),
        ({"stage0/block0/kernel": 3, "width": 16}, []),
    ],
)
def test_cell_prefixes(values, prefixes):
    assert report.cell_prefixes(values) == prefixes


def test_draw_cells_writes_one_png_per_cell(tmp_path):
    values = {
        "cell/node1/edge0": "nor_conv_3x3",
        "cell/node2/edge0": "skip_connect",
        "cell/node2/edge1": "none",
        "cell/node3/edge0": "avg_pool_3x3",
        "cell/node3/edge1": "nor_conv_1x1",
        "cell/node3/edge2": "skip_connect",
    }
    figures = report.draw_cells(values, str(tmp_path))
    assert figures == [("Derived cell: cell", str(tmp_path / "cell_cell.png"))]
    assert open(figures[0][1], "rb").read(4) == b"\x89PNG"


def test_draw_alpha_history_only_for_oracles_with_a_history(tmp_path):
    class Differentiable:
        history = [{"epoch": 1, "distributions": {"e": [0.5, 0.5]}}]

        def plot_history(self, path):
            return _png(path)

    assert report.draw_alpha_history(object(), str(tmp_path)) == []
    figures = report.draw_alpha_history(Differentiable(), str(tmp_path))
    assert figures == [
        (
            "Architecture distribution per supernet epoch (alpha history)",
            str(tmp_path / "alpha_history.png"),
        )
    ]
    assert os.path.exists(figures[0][1])
