"""The report building blocks (libich/report/svg.c, libich/report/report.c) checked
with Python's own parsers: tests/test_report.c writes sample files when
ICH_REPORT_SAMPLES names a folder; here every SVG is parsed as XML, the
JSON with json, the CSV with csv and the HTML page with html.parser, and
the numbers drawn or written are compared with the data the C test gave
(the same formulas are written in both files: keep them in step). The
charts' points are read back through their own axes: the pixel positions
of the tick marks and the values of their labels define the mapping."""
import csv
import html.parser
import json
import math
import os
import re
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("ICH_BUILD_DIR", ROOT / "build"))
PROGRAM = BUILD / "tests" / "test_report"

pytestmark = pytest.mark.skipif(not PROGRAM.exists(), reason="tests not built")

SVG = "{http://www.w3.org/2000/svg}"
CLASSES = ["any", "epidural", "intraparenchymal", "intraventricular", "subarachnoid",
           "subdural"]
NUMERIC_ATTRIBUTES = ("x", "y", "x1", "y1", "x2", "y2", "cx", "cy", "r", "width", "height",
                      "font-size", "stroke-width", "rx")


@pytest.fixture(scope="module")
def samples(tmp_path_factory):
    folder = tmp_path_factory.mktemp("report_samples")
    env = dict(os.environ, ICH_REPORT_SAMPLES=str(folder))
    result = subprocess.run([str(PROGRAM)], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    return folder


def parse_svg(path):
    root = ET.parse(path).getroot()
    assert root.tag == SVG + "svg"
    width, height = float(root.get("width")), float(root.get("height"))
    assert root.get("viewBox") == f"0 0 {root.get('width')} {root.get('height')}"
    assert width > 0 and height > 0
    assert "sans-serif" in root.get("font-family")
    for element in root.iter():
        for name in NUMERIC_ATTRIBUTES:
            if element.get(name) is not None:
                value = float(element.get(name))
                assert math.isfinite(value), (path, element.tag, name)
        if element.get("font-size") is not None:
            assert float(element.get("font-size")) >= 11
        if element.tag == SVG + "path":
            for number in re.findall(r"[-+0-9.eE]+", element.get("d")):
                assert math.isfinite(float(number))
    text = Path(path).read_text(encoding="utf-8")
    without_comments = re.sub(r"<!--.*?-->", "", text, flags=re.S).lower()
    assert "nan" not in without_comments and "inf" not in without_comments
    return root


def group(root, name):
    found = [g for g in root.iter(SVG + "g") if g.get("class") == name]
    assert len(found) == 1, name
    return found[0]


def texts(element):
    return ["".join(t.itertext()) for t in element.iter(SVG + "text")]


def axis(root, which):
    """(values, pixels) of one axis' ticks, from its tick marks and labels."""
    labels = [float(v) for v in texts(group(root, f"{which}-tick-labels"))]
    attribute = "x1" if which == "x" else "y1"
    pixels = [float(line.get(attribute)) for line in group(root, f"{which}-ticks")]
    assert len(labels) == len(pixels) >= 3
    return labels, pixels


def check_nice(values):
    step = values[1] - values[0]
    exponent = math.floor(math.log10(step) + 1e-12)
    mantissa = step / 10 ** exponent
    assert min(abs(mantissa - m) for m in (1, 2, 5)) < 1e-9, values
    for a, b in zip(values, values[1:]):
        assert abs(b - a - step) <= step * 1e-9, values
    for v in values:
        assert abs(v / step - round(v / step)) < 1e-9, values
    return step


def mapping(root, which):
    values, pixels = axis(root, which)
    scale = (pixels[-1] - pixels[0]) / (values[-1] - values[0])
    # the tick marks sit at the same pixel steps as their values
    for v, p in zip(values, pixels):
        assert abs(pixels[0] + (v - values[0]) * scale - p) < 0.02
    return lambda v: pixels[0] + (v - values[0]) * scale


def series_groups(root):
    groups = [g for g in root.iter(SVG + "g") if g.get("class") == "series"]
    return {g.find(SVG + "title").text: g for g in groups}


def path_points(g):
    d = g.find(SVG + "path").get("d")
    pieces = []
    for command, x, y in re.findall(r"([ML])\s*([-0-9.e]+)\s+([-0-9.e]+)", d):
        if command == "M":
            pieces.append([])
        pieces[-1].append((float(x), float(y)))
    return pieces


def marker_points(g):
    markers = [m for m in g.iter(SVG + "g") if m.get("class") == "markers"]
    assert len(markers) == 1
    return [(float(c.get("cx")), float(c.get("cy"))) for c in markers[0].iter(SVG + "circle")]


def assert_points(points, xs, ys, mx, my, tolerance=0.02):
    assert len(points) == len(xs)
    for (px, py), x, y in zip(points, xs, ys):
        assert abs(px - mx(x)) <= tolerance and abs(py - my(y)) <= tolerance, (px, py, x, y)


def legend(root):
    return texts(group(root, "legend"))


def boxes(root):
    """The plot area and the legend box, as (x, y, width, height)."""
    frame = next(r for r in root.iter(SVG + "rect") if r.get("class") == "frame")
    box = group(root, "legend").find(SVG + "rect")
    return tuple(tuple(float(r.get(a)) for a in ("x", "y", "width", "height"))
                 for r in (frame, box))


def assert_legend_clear(root):
    """No line, marker or diagonal passes under the legend box."""
    _, (lx, ly, lw, lh) = boxes(root)

    def inside(x, y, pad=0.0):
        return lx - pad <= x <= lx + lw + pad and ly - pad <= y <= ly + lh + pad

    segments = []
    for g in series_groups(root).values():
        for piece in path_points(g):
            segments += list(zip(piece, piece[1:])) or [(piece[0], piece[0])]
        for m in g.iter(SVG + "circle"):
            assert not inside(float(m.get("cx")), float(m.get("cy")), float(m.get("r")))
    for line in root.iter(SVG + "line"):
        if line.get("class") == "diagonal":
            segments.append(((float(line.get("x1")), float(line.get("y1"))),
                             (float(line.get("x2")), float(line.get("y2")))))
    for (xa, ya), (xb, yb) in segments:
        for i in range(201):
            t = i / 200
            assert not inside(xa + (xb - xa) * t, ya + (yb - ya) * t, 1.0)


def test_roc_chart(samples):
    root = parse_svg(samples / "roc.svg")
    assert root.get("width") == "560" and root.get("height") == "520"
    x_values, _ = axis(root, "x")
    y_values, _ = axis(root, "y")
    assert x_values == [0.0, 0.2, 0.4, 0.6, 0.8, 1.0] == y_values
    assert texts(group(root, "x-tick-labels")) == ["0.0", "0.2", "0.4", "0.6", "0.8", "1.0"]
    assert legend(root) == CLASSES
    mx, my = mapping(root, "x"), mapping(root, "y")
    fpr = [i / 50.0 for i in range(51)]
    groups = series_groups(root)
    assert list(groups) == CLASSES
    for k, name in enumerate(CLASSES):
        tpr = [1.0 - (1.0 - x) ** (k + 2) for x in fpr]
        pieces = path_points(groups[name])
        assert len(pieces) == 1
        assert_points(pieces[0], fpr, tpr, mx, my)
    colours = [g.find(SVG + "path").get("stroke") for g in groups.values()]
    assert len(set(colours)) == 6
    diagonal = [line for line in root.iter(SVG + "line") if line.get("class") == "diagonal"]
    assert len(diagonal) == 1
    d = diagonal[0]
    assert abs(float(d.get("x1")) - mx(0)) < 0.02 and abs(float(d.get("y1")) - my(0)) < 0.02
    assert abs(float(d.get("x2")) - mx(1)) < 0.02 and abs(float(d.get("y2")) - my(1)) < 0.02
    # the automatic legend went to the plot area's empty lower right
    (fx, fy, fw, fh), (lx, ly, lw, lh) = boxes(root)
    assert fx + fw / 2 < lx and lx + lw < fx + fw and fy + fh / 2 < ly and ly + lh < fy + fh
    assert_legend_clear(root)
    assert "".join(root.find(SVG + "title").itertext()) == "ROC curves"


def test_loss_chart_skips_nan(samples):
    root = parse_svg(samples / "loss.svg")
    epochs = [e + 1.0 for e in range(12)]
    train = [0.7 * math.exp(-0.25 * (e + 1)) + 0.05 for e in range(12)]
    val = [0.75 * math.exp(-0.2 * (e + 1)) + 0.08 for e in range(12)]
    assert legend(root) == ["training", "validation"]
    mx, my = mapping(root, "x"), mapping(root, "y")
    groups = series_groups(root)
    assert_points(marker_points(groups["training"]), epochs, train, mx, my)
    keep = [e for e in range(12) if e != 4]
    assert_points(marker_points(groups["validation"]), [epochs[e] for e in keep],
                  [val[e] for e in keep], mx, my)
    # the line breaks where the value is missing: epochs 1-4, then 6-12
    pieces = path_points(groups["validation"])
    assert [len(p) for p in pieces] == [4, 7]
    assert groups["validation"].find(SVG + "path").get("stroke-dasharray")
    assert_legend_clear(root)
    text = (samples / "loss.svg").read_text()
    assert "<!-- 1 of 12 points of series 2 (validation) are NaN or infinite" in text
    # the axes cover the data with nice steps
    for values, data in ((axis(root, "x")[0], epochs), (axis(root, "y")[0], train + val)):
        step = check_nice(values)
        finite = [v for v in data if math.isfinite(v)]
        assert values[0] <= min(finite) < values[0] + step
        assert values[-1] - step < max(finite) <= values[-1]


@pytest.mark.parametrize("name, x_range, y_range, x_labels, y_labels", [
    ("range_a.svg", (0, 1), (0, 0.37), ["0.0", "0.2", "0.4", "0.6", "0.8", "1.0"],
     ["0.0", "0.1", "0.2", "0.3", "0.4"]),
    ("range_b.svg", (3, 1700), (1e-5, 1e-3), ["0", "500", "1000", "1500", "2000"],
     ["0.0000", "0.0002", "0.0004", "0.0006", "0.0008", "0.0010"]),
])
def test_tick_ranges(samples, name, x_range, y_range, x_labels, y_labels):
    root = parse_svg(samples / name)
    assert texts(group(root, "x-tick-labels")) == x_labels
    assert texts(group(root, "y-tick-labels")) == y_labels
    for which, (lo, hi) in (("x", x_range), ("y", y_range)):
        values, _ = axis(root, which)
        step = check_nice(values)
        assert values[0] <= lo < values[0] + step and values[-1] - step < hi <= values[-1]
    t = [i / 9.0 for i in range(10)]
    xs = [x_range[0] + (x_range[1] - x_range[0]) * v for v in t]
    ys = [y_range[0] + (y_range[1] - y_range[0]) * v * v for v in t]
    g = series_groups(root)["data"]
    assert_points(marker_points(g), xs, ys, mapping(root, "x"), mapping(root, "y"))
    assert_points(path_points(g)[0], xs, ys, mapping(root, "x"), mapping(root, "y"))
    assert_legend_clear(root)


def test_escaping(samples):
    root = parse_svg(samples / "escape.svg")
    assert legend(root) == ["<a&b>", "\"quoted\" & 'apostrophe'"]
    assert list(series_groups(root)) == ["<a&b>", "\"quoted\" & 'apostrophe'"]
    assert root.find(SVG + "title").text == "Escaping <a&b> \"test\""
    all_text = texts(root)
    assert "Escaping <a&b> \"test\"" in all_text
    assert "x < 3" in all_text and "y > 0 & finite" in all_text
    # the lines cross every corner: the automatic legend goes outside
    (fx, fy, fw, fh), (lx, ly, lw, lh) = boxes(root)
    assert lx > fx + fw and lx + lw <= float(root.get("width"))
    assert_legend_clear(root)


def test_confusion_matrices(samples):
    root = parse_svg(samples / "confusion.svg")
    cells = [g for g in root.iter(SVG + "g") if g.get("class") == "cell"]
    assert len(cells) == 4
    found = [{t.get("class"): "".join(t.itertext()) for t in c.iter(SVG + "text")}
             for c in cells]
    assert [int(f["count"]) for f in found] == [50, 10, 5, 35]
    assert [f["share"] for f in found] == ["83.3% of row", "16.7% of row", "12.5% of row",
                                           "87.5% of row"]
    assert [f["tag"] for f in found] == ["TN", "FP", "FN", "TP"]
    all_text = texts(root)
    for word in ("actual", "predicted", "Confusion matrix: any (threshold 0.5)", "n = 100; colour: share of the actual row"):
        assert word in all_text
    assert all_text.count("negative") == 2 and all_text.count("positive") == 2

    root = parse_svg(samples / "confusion_empty.svg")
    cells = [g for g in root.iter(SVG + "g") if g.get("class") == "cell"]
    found = [{t.get("class"): "".join(t.itertext()) for t in c.iter(SVG + "text")}
             for c in cells]
    assert [int(f["count"]) for f in found] == [0, 0, 3, 7]
    assert [f["share"] for f in found] == ["no cases", "no cases", "30.0% of row",
                                           "70.0% of row"]


def expected_rows():
    for k, name in enumerate(CLASSES):
        yield name, (None if k == 1 else 0.5 + k / 12.0), 1000 * (k + 1), 1.0 / (k + 3)


def test_csv(samples):
    with open(samples / "table.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["class", "auc", "count", "f1"]
    assert len(rows) == 7
    for row, (name, auc, count, f1) in zip(rows[1:], expected_rows()):
        assert row[0] == name
        assert (row[1] == "") if auc is None else (float(row[1]) == auc)
        assert int(row[2]) == count
        assert float(row[3]) == f1


def test_json(samples):
    with open(samples / "metrics.json", encoding="utf-8") as f:
        data = json.load(f)
    assert data["classes"] == CLASSES
    assert data["auc"] == [auc for _, auc, _, _ in expected_rows()]
    assert data["confusion"] == [[50, 10], [5, 35]]
    assert data["name <&> \"quoted\""] == "tab\there, newline\nthere, \\ backslash, caf\u00e9"
    assert "NaN" not in (samples / "metrics.json").read_text()


class Page(html.parser.HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags, self.cells, self.svgs, self.hrefs = [], [], 0, []
        self._cell = None
        self.title = ""
        self._in_title = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append(tag)
        if tag in ("td", "th"):
            self._cell = {"tag": tag, "class": attrs.get("class"), "title": attrs.get("title"),
                          "text": ""}
        if tag == "svg":
            self.svgs += 1
        if tag == "a":
            self.hrefs.append(attrs.get("href"))
        if tag == "title" and not self.svgs:
            self._in_title = True
        for name in ("src", "srcset"):
            assert name not in attrs

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.cells.append(self._cell)
            self._cell = None
        if tag == "title":
            self._in_title = False

    def handle_data(self, data):
        if self._cell is not None:
            self._cell["text"] += data
        if self._in_title:
            self.title += data


def test_html_page(samples):
    text = (samples / "report.html").read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>")
    page = Page()
    page.feed(text)
    page.close()
    assert page.title == "Sample evaluation report"
    for tag in ("script", "link", "img", "iframe", "object"):
        assert tag not in page.tags
    assert "url(" not in text and "@import" not in text and "<?xml" not in text
    assert page.svgs == 7
    # every figure links its SVG file, which exists beside the page
    assert page.hrefs == ["roc.svg", "loss.svg", "range_a.svg", "range_b.svg", "escape.svg",
                          "confusion.svg", "confusion_empty.svg"]
    for href in page.hrefs:
        assert (samples / href).exists()
    header = [c["text"] for c in page.cells if c["tag"] == "th"]
    assert header == ["class", "auc", "count", "f1"]
    body = [c for c in page.cells if c["tag"] == "td"]
    assert len(body) == 24
    for k, (name, auc, count, f1) in enumerate(expected_rows()):
        row = body[4 * k:4 * k + 4]
        assert row[0]["text"] == name and row[0]["class"] is None
        if auc is None:
            assert row[1]["class"] == "undef" and row[1]["text"] == "undefined"
        else:
            assert row[1]["class"] == "num" and float(row[1]["title"]) == auc
            assert row[1]["text"] == "%.4g" % auc
        assert row[2]["class"] == "num" and int(row[2]["text"]) == count
        assert float(row[3]["title"]) == f1 and row[3]["text"] == "%.4g" % f1
    # the inline SVGs are the files' documents without their XML declaration
    roc = (samples / "roc.svg").read_text(encoding="utf-8")
    assert roc.split("?>\n", 1)[1] in text
