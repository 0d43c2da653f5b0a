"""The segments report as one self-contained HTML page: inline SVG, no scripts, no network.

Five charts, each a ``<figure class="chart" id="...">`` holding one ``<svg>``:

    chart-sizes     one bar per segment (``rect.bar``), a tick at its minimum size
    chart-overlap   heatmap of shared members (``rect.cell``), shaded by share of the row
    chart-scatter   sample of profiles on two numeric fields (``circle.point``), by cluster
    chart-kselect   inertia and silhouette per tried k (``circle.k-point``), chosen k marked
    chart-funnel    profiles per lifecycle stage (``rect.stage``)

Charts without data (no clusters, no events) say so instead of drawing.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from segments.errors import ConfigError

if TYPE_CHECKING:
    from renderer.reports.segments import ClusterSummary, SegmentReport

PALETTE = ("#2f4a3a", "#b5562b", "#4a6fa5", "#c9a227", "#7b4b94", "#3a8f8f", "#a23b5a", "#6b6b6b")
CSS = """
body { font-family: 'Helvetica Neue', Helvetica, Arial, sans-serif; color: #2b2b2b;
       margin: 24px auto; max-width: 980px; padding: 0 16px; background: #fbf7f1; }
h1 { font-family: Georgia, serif; color: #1f2f25; margin-bottom: 4px; }
h2 { font-family: Georgia, serif; color: #1f2f25; margin-top: 32px; }
.meta { color: #6b6b6b; margin-top: 0; }
figure.chart { background: #fff; border: 1px solid #e6ddd0; border-radius: 6px;
               margin: 12px 0; padding: 12px; }
figcaption { color: #6b6b6b; font-size: 13px; margin-top: 6px; }
table { border-collapse: collapse; background: #fff; font-size: 14px; }
th, td { border-bottom: 1px solid #eee6da; padding: 5px 10px; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.flag { color: #b5562b; font-weight: 700; }
.warning { color: #b5562b; }
svg text { font-size: 12px; fill: #2b2b2b; }
"""


def _esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def _svg(width: float, height: float, body: str, label: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
        f'viewBox="0 0 {width:.0f} {height:.0f}" role="img" aria-label="{_esc(label)}">'
        f"{body}</svg>"
    )


def _figure(chart_id: str, title: str, content: str, caption: str = "") -> str:
    note = f"<figcaption>{_esc(caption)}</figcaption>" if caption else ""
    return f'<h2>{_esc(title)}</h2><figure class="chart" id="{chart_id}">{content}{note}</figure>'


def _empty(message: str) -> str:
    return f'<p class="empty">{_esc(message)}</p>'


def _text(x: float, y: float, content: object, anchor: str = "start", extra: str = "") -> str:
    return f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" {extra}>{_esc(content)}</text>'


# --- the charts ------------------------------------------------------------------------


def sizes_chart(report: SegmentReport) -> str:
    """Horizontal bars, one per segment; red when below the minimum size."""
    rows = report.segments
    if not rows:
        return _empty("No segments.")
    left, bar_area, row_h = 180.0, 480.0, 26.0
    top = 10.0
    largest = max([r.size for r in rows] + [r.minimum for r in rows] + [1])
    parts = []
    for index, row in enumerate(rows):
        y = top + index * row_h
        width = max(1.0, bar_area * row.size / largest)
        color = PALETTE[1] if row.size < row.minimum else PALETTE[0]
        parts.append(_text(left - 8, y + 13, row.name, "end"))
        parts.append(
            f'<rect class="bar" data-segment="{_esc(row.name)}" data-size="{row.size}" '
            f'x="{left}" y="{y + 2}" width="{width:.1f}" height="{row_h - 8}" fill="{color}">'
            f"<title>{_esc(row.name)}: {row.size} ({row.share:.1%})</title></rect>"
        )
        mark = left + bar_area * row.minimum / largest
        parts.append(
            f'<line class="minimum" x1="{mark:.1f}" x2="{mark:.1f}" y1="{y}" y2="{y + row_h - 4}" '
            f'stroke="#b5562b" stroke-dasharray="3,2"/>'
        )
        parts.append(_text(left + width + 6, y + 13, f"{row.size} ({row.share:.1%})"))
    height = top * 2 + row_h * len(rows)
    return _svg(left + bar_area + 110, height, "".join(parts), "segment sizes")


def overlap_chart(report: SegmentReport) -> str:
    """Shared members of every pair of segments, shaded by the share of the row's segment."""
    names = [str(n) for n in report.overlap.index]
    if not names:
        return _empty("No segments.")
    cell, left, top = 30.0, 180.0, 130.0
    parts = []
    for j, name in enumerate(names):
        x = left + j * cell + cell / 2
        parts.append(_text(x, top - 8, name, "start", f'transform="rotate(-50 {x:.1f} {top - 8})"'))
    for i, row in enumerate(names):
        y = top + i * cell
        parts.append(_text(left - 8, y + cell / 2 + 4, row, "end"))
        size = int(report.overlap.at[row, row])
        for j, col in enumerate(names):
            shared = int(report.overlap.at[row, col])
            share = shared / size if size else 0.0
            parts.append(
                f'<rect class="cell" data-row="{_esc(row)}" data-col="{_esc(col)}" '
                f'data-shared="{shared}" x="{left + j * cell:.1f}" y="{y:.1f}" width="{cell - 2}" '
                f'height="{cell - 2}" fill="{PALETTE[2]}" fill-opacity="{0.06 + 0.94 * share:.3f}">'
                f"<title>{_esc(row)} and {_esc(col)}: {shared} shared ({share:.0%} of {_esc(row)})"
                f"</title></rect>"
            )
    span = len(names) * cell
    return _svg(left + span + 110, top + span + 10, "".join(parts), "segment overlap heatmap")


def _cluster_for(report: SegmentReport, x: str, y: str) -> ClusterSummary | None:
    for cluster in report.clusters:
        if x in cluster.features and y in cluster.features:
            return cluster
    return report.clusters[0] if report.clusters else None


def scatter_axes(report: SegmentReport, x: str | None, y: str | None) -> tuple[str, str]:
    """The scatter's fields: as given, else the first two features of the first cluster."""
    numeric = report.numeric_fields()
    features = report.clusters[0].features if report.clusters else numeric
    x = x or (features[0] if features else None)
    y = y or (features[1] if len(features) > 1 else x)
    for axis, chosen in (("x", x), ("y", y)):
        if chosen is None or chosen not in numeric:
            raise ConfigError(
                f"--{axis} {chosen!r} is not a numeric field of the audience",
                field=chosen,
                hint=f"numeric fields: {', '.join(numeric) or '(none)'}",
            )
    assert x is not None and y is not None
    return x, y


def scatter_chart(report: SegmentReport, x: str, y: str) -> str:
    """A deterministic sample of profiles on ``x`` and ``y``, coloured by cluster."""
    cluster = _cluster_for(report, x, y)
    points = report.points
    if points.empty or cluster is None:
        return _empty("No cluster segments: add `clusters:` to the segments document.")
    xs = points[x].to_numpy(dtype=float, na_value=np.nan)
    ys = points[y].to_numpy(dtype=float, na_value=np.nan)
    labels = points[cluster.name] if cluster.name in points else pd.Series(None, index=points.index)
    colors = {label: PALETTE[i % len(PALETTE)] for i, label in enumerate(cluster.labels)}
    width, height, pad = 600.0, 380.0, 50.0
    sx = _scale(xs, pad, width - 20)
    sy = _scale(ys, height - pad, 20)
    parts = [_axes(width, height, pad, x, y, xs, ys)]
    for px, py, label in zip(xs, ys, labels, strict=True):
        if math.isfinite(px) and math.isfinite(py):
            fill = colors.get(label, "#bbbbbb")
            parts.append(
                f'<circle class="point" data-cluster="{_esc(label)}" cx="{sx(px):.1f}" '
                f'cy="{sy(py):.1f}" r="3" fill="{fill}" fill-opacity="0.7"/>'
            )
    for i, (label, color) in enumerate(colors.items()):
        parts.append(
            f'<rect x="{width + 10}" y="{20 + i * 20}" width="12" height="12" fill="{color}"/>'
        )
        parts.append(_text(width + 28, 30 + i * 20, label))
    return _svg(width + 150, height, "".join(parts), f"scatter of {x} and {y}")


def _scale(values: np.ndarray, start: float, end: float) -> Callable[[float], float]:
    finite = values[np.isfinite(values)]
    low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    if high <= low:
        low, high = low - 1, high + 1
    return lambda v: start + (v - low) / (high - low) * (end - start)


def _axes(
    width: float, height: float, pad: float, x: str, y: str, xs: np.ndarray, ys: np.ndarray
) -> str:
    def bounds(values: np.ndarray) -> tuple[str, str]:
        finite = values[np.isfinite(values)]
        return (f"{finite.min():,.4g}", f"{finite.max():,.4g}") if finite.size else ("", "")

    (x0, x1), (y0, y1) = bounds(xs), bounds(ys)
    bottom = height - pad
    return "".join(
        [
            f'<line x1="{pad}" y1="{bottom}" x2="{width - 20}" y2="{bottom}" stroke="#888"/>',
            f'<line x1="{pad}" y1="20" x2="{pad}" y2="{bottom}" stroke="#888"/>',
            _text(pad, bottom + 16, x0, "middle"),
            _text(width - 20, bottom + 16, x1, "middle"),
            _text(pad - 6, bottom, y0, "end"),
            _text(pad - 6, 24, y1, "end"),
            _text((pad + width) / 2, height - 8, x, "middle", 'font-weight="700"'),
            _text(
                14,
                height / 2,
                y,
                "middle",
                f'font-weight="700" transform="rotate(-90 14 {height / 2})"',
            ),
        ]
    )


def kselect_chart(report: SegmentReport) -> str:
    """Per cluster segment: inertia (elbow) and silhouette per tried k."""
    if not report.clusters:
        return _empty("No cluster segments.")
    panel_w, panel_h, gap = 320.0, 200.0, 40.0
    parts = []
    for index, cluster in enumerate(report.clusters):
        top = index * (panel_h + 40)
        ks = [m.k for m in cluster.metrics]
        inertia = [m.inertia for m in cluster.metrics]
        silhouette = [math.nan if m.silhouette is None else m.silhouette for m in cluster.metrics]
        parts.append(_panel(0, top, panel_w, panel_h, ks, inertia, "inertia", cluster))
        left = panel_w + gap
        parts.append(_panel(left, top, panel_w, panel_h, ks, silhouette, "silhouette", cluster))
    height = len(report.clusters) * (panel_h + 40)
    return _svg(2 * panel_w + gap, height, "".join(parts), "k selection: inertia and silhouette")


def _panel(
    left: float,
    top: float,
    width: float,
    height: float,
    ks: Sequence[int],
    values: Sequence[float],
    metric: str,
    cluster: ClusterSummary,
) -> str:
    pad, head = 40.0, 34.0
    finite = np.array([v for v in values if math.isfinite(v)] or [0.0])
    low, high = float(finite.min()), float(finite.max())
    if high <= low:
        low, high = low - 1, high + 1
    k_low = min(ks)
    k_high = max(ks) if max(ks) > k_low else k_low + 1

    def at(k: int, value: float) -> tuple[float, float]:
        x = left + pad + (k - k_low) / (k_high - k_low) * (width - pad - 10)
        y = top + height - pad + (low - value) / (high - low) * (height - pad - head)
        return x, y

    points = [at(k, v) for k, v in zip(ks, values, strict=True) if math.isfinite(v)]
    color = PALETTE[0] if metric == "inertia" else PALETTE[1]
    path = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
    parts = [
        _text(left + width / 2, top + 14, f"{cluster.name}: {metric} per k", "middle",
              'font-weight="700"'),
        f'<line x1="{left + pad}" y1="{top + height - pad}" x2="{left + width - 10}" '
        f'y2="{top + height - pad}" stroke="#888"/>',
        _text(left + pad - 6, top + height - pad, f"{low:,.4g}", "end"),
        _text(left + pad - 6, top + head + 4, f"{high:,.4g}", "end"),
        f'<polyline class="{metric}-line" points="{path}" fill="none" stroke="{color}" '
        f'stroke-width="2"/>',
    ]  # fmt: skip
    for k, value in zip(ks, values, strict=True):
        if not math.isfinite(value):
            continue
        x, y = at(k, value)
        chosen = k == cluster.k
        parts.append(
            f'<circle class="k-point {metric}{" chosen" if chosen else ""}" data-k="{k}" '
            f'cx="{x:.1f}" cy="{y:.1f}" r="{6 if chosen else 4}" fill="{color}">'
            f"<title>k={k}: {metric} {value:,.4g}</title></circle>"
        )
        parts.append(_text(x, top + height - pad + 16, k, "middle"))
    return "".join(parts)


def funnel_chart(report: SegmentReport) -> str:
    """Profiles per lifecycle stage, new to lapsed, as centred bars."""
    if not report.lifecycle:
        return _empty("No lifecycle stages: the campaign has no events.")
    width, row_h, label_w = 600.0, 40.0, 110.0
    largest = max(report.lifecycle.values()) or 1
    total = sum(report.lifecycle.values()) or 1
    parts = []
    for index, (stage, count) in enumerate(report.lifecycle.items()):
        bar = max(2.0, (width - label_w) * count / largest)
        x = label_w + (width - label_w - bar) / 2
        y = 8 + index * row_h
        parts.append(_text(label_w - 10, y + row_h / 2, stage.replace("_", " "), "end"))
        parts.append(
            f'<rect class="stage" data-stage="{_esc(stage)}" data-count="{count}" x="{x:.1f}" '
            f'y="{y}" width="{bar:.1f}" height="{row_h - 8}" fill="{PALETTE[index % 8]}">'
            f"<title>{_esc(stage)}: {count}</title></rect>"
        )
        parts.append(_text(width + 10, y + row_h / 2, f"{count} ({count / total:.0%})"))
    height = 16 + row_h * len(report.lifecycle)
    return _svg(width + 110, height, "".join(parts), "lifecycle funnel")


# --- the page ---------------------------------------------------------------------------


def _segments_table(report: SegmentReport) -> str:
    rows = "".join(
        f"<tr><td>{_esc(r.name)}</td><td class='num'>{r.size}</td>"
        f"<td class='num'>{r.share:.1%}</td><td class='num'>{r.minimum} ({_esc(r.limit)})</td>"
        f"<td class='flag'>{_esc(', '.join(r.flags))}</td></tr>"
        for r in report.segments
    )
    head = "<tr><th>segment</th><th>size</th><th>share</th><th>minimum</th><th>flags</th></tr>"
    return f"<table id='segments-table'>{head}{rows}</table>"


def _details(report: SegmentReport) -> str:
    parts = []
    for group in report.groups:
        items = "".join(
            f"<tr><td>{_esc(label)}</td><td class='num'>{count}</td></tr>"
            for label, count in [*group.counts.items(), ("(unassigned)", group.unassigned)]
        )
        parts.append(f"<h2>Exclusive group {_esc(group.name)}</h2><table>{items}</table>")
    for cluster in report.clusters:
        lines = "".join(f"<li>{_esc(line)}</li>" for line in cluster.descriptions)
        parts.append(
            f"<h2>Clusters {_esc(cluster.name)} (k = {cluster.k})</h2><ul>{lines}</ul>"
            f"<p class='meta'>features: {_esc(', '.join(cluster.features))}</p>"
        )
    if report.thresholds:
        items = "".join(
            f"<li>{_esc(t.segment)}: {_esc(t.field)} {_esc(t.op)} {_esc(t)}</li>"
            for t in report.thresholds
        )
        parts.append(f"<h2>Percentile thresholds</h2><ul>{items}</ul>")
    if report.warnings:
        items = "".join(f"<li class='warning'>{_esc(w)}</li>" for w in report.warnings)
        parts.append(f"<h2>Warnings</h2><ul>{items}</ul>")
    return "".join(parts)


def render_report(report: SegmentReport, x: str | None = None, y: str | None = None) -> str:
    """The whole page (see module docs)."""
    x, y = scatter_axes(report, x, y) if report.clusters else (x or "", y or "")
    scatter = scatter_chart(report, x, y) if report.clusters else _empty("No cluster segments.")
    events = report.events
    event_line = (
        f" &middot; {events['accepted']} events ({events['rejected']} rejected)" if events else ""
    )
    body = "".join(
        [
            f"<h1>Segments of {_esc(report.campaign)}</h1>",
            f"<p class='meta'>{report.profiles} profiles as of {_esc(report.as_of.isoformat())}"
            f"{event_line}</p>",
            _segments_table(report),
            _figure("chart-sizes", "Segment sizes", sizes_chart(report),
                    "Dashed tick: the segment's minimum size."),
            _figure("chart-overlap", "Overlap", overlap_chart(report),
                    "Cell shade: share of the row's segment also in the column's."),
            _figure("chart-scatter", f"Clusters: {y} by {x}", scatter,
                    f"A sample of up to {len(report.points)} profiles."),
            _figure("chart-kselect", "Choosing k", kselect_chart(report),
                    "Inertia (lower is tighter; look for the elbow) and silhouette (higher is "
                    "better) per k; the larger dot is the k in use."),
            _figure("chart-funnel", "Lifecycle", funnel_chart(report)),
            _details(report),
        ]
    )  # fmt: skip
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<title>Segments: {_esc(report.campaign)}</title><style>{CSS}</style></head>"
        f"<body>{body}</body></html>\n"
    )
