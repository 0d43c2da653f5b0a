"""The segments report as one self-contained HTML page: inline SVG, no scripts, no network.

Five charts, each a ``<figure class="chart" id="...">`` holding one ``<svg>``:

    chart-sizes     one bar per segment (``rect.bar``), a tick at its minimum size
    chart-overlap   heatmap of shared members (``rect.cell``), shaded by share of the row
    chart-scatter   sample of profiles on two numeric fields (``circle.point``), by cluster
    chart-kselect   inertia and silhouette per tried k (``circle.k-point``), chosen k marked
    chart-funnel    profiles per lifecycle stage (``rect.stage``)

Charts without data (no clusters, no events) say so instead of drawing. This
module turns a :class:`~renderer.reports.segments.SegmentReport` into chart
inputs (:mod:`renderer.reports.charts` lays them out); ``segments.html.j2``
draws the page.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from renderer.reports.charts import (
    PALETTE,
    Bar,
    Cell,
    Chart,
    bar_chart,
    heatmap,
    line_panel,
    scatter,
)
from renderer.reports.pages import render_page
from segments.errors import ConfigError

if TYPE_CHECKING:
    from renderer.reports.segments import ClusterSummary, SegmentReport

NO_CLUSTERS = "No cluster segments."


@dataclass(frozen=True)
class Figure:
    """One chart of the page: its id, heading and caption; ``chart`` None says ``empty``."""

    id: str
    title: str
    chart: Chart | None
    caption: str = ""
    empty: str = ""


def sizes_chart(report: SegmentReport) -> Chart | None:
    """Horizontal bars, one per segment; red when below the minimum size."""
    if not report.segments:
        return None
    bars = [
        Bar(
            row.name,
            row.size,
            PALETTE[1] if row.size < row.minimum else PALETTE[0],
            note=f"{row.size} ({row.share:.1%})",
            tip=f"{row.name}: {row.size} ({row.share:.1%})",
            marker=row.minimum,
            data={"segment": row.name, "size": str(row.size)},
        )
        for row in report.segments
    ]
    return bar_chart(bars, "segment sizes")


def overlap_chart(report: SegmentReport) -> Chart | None:
    """Shared members of every pair of segments, shaded by the share of the row's segment."""
    names = [str(n) for n in report.overlap.index]
    if not names:
        return None
    cells = []
    for row in names:
        size = int(report.overlap.at[row, row])
        line = []
        for col in names:
            shared = int(report.overlap.at[row, col])
            share = shared / size if size else 0.0
            tip = f"{row} and {col}: {shared} shared ({share:.0%} of {row})"
            line.append(Cell(share, tip, {"row": row, "col": col, "shared": str(shared)}))
        cells.append(line)
    return heatmap(names, cells, "segment overlap heatmap")


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


def scatter_chart(report: SegmentReport, x: str, y: str) -> Chart | None:
    """A deterministic sample of profiles on ``x`` and ``y``, coloured by cluster."""
    cluster = _cluster_for(report, x, y)
    points = report.points
    if points.empty or cluster is None:
        return None
    xs = points[x].to_numpy(dtype=float, na_value=np.nan)
    ys = points[y].to_numpy(dtype=float, na_value=np.nan)
    labels = points[cluster.name] if cluster.name in points else pd.Series(None, index=points.index)
    colours = {label: PALETTE[i % len(PALETTE)] for i, label in enumerate(cluster.labels)}
    groups = [str(label) for label in labels]
    return scatter(
        xs.tolist(), ys.tolist(), groups, colours, f"scatter of {x} and {y}", x_title=x, y_title=y
    )


def kselect_chart(report: SegmentReport) -> Chart | None:
    """Per cluster segment: inertia (elbow) and silhouette per tried k, side by side."""
    if not report.clusters:
        return None
    panel_w, panel_h, gap = 320.0, 200.0, 40.0
    height = len(report.clusters) * (panel_h + 40)
    chart = Chart(2 * panel_w + gap, height, "k selection: inertia and silhouette")
    for index, cluster in enumerate(report.clusters):
        top = index * (panel_h + 40)
        ks = [m.k for m in cluster.metrics]
        inertia = [m.inertia for m in cluster.metrics]
        silhouette = [math.nan if m.silhouette is None else m.silhouette for m in cluster.metrics]
        for left, metric, values, colour in (
            (0.0, "inertia", inertia, PALETTE[0]),
            (panel_w + gap, "silhouette", silhouette, PALETTE[1]),
        ):
            chart.marks += line_panel(
                ks, values, f"{cluster.name}: {metric} per k", left=left, top=top,
                stroke=colour, metric=metric, x_name="k", chosen=cluster.k,
            )  # fmt: skip
    return chart


def funnel_chart(report: SegmentReport) -> Chart | None:
    """Profiles per lifecycle stage, new to lapsed, as centred bars."""
    if not report.lifecycle:
        return None
    total = sum(report.lifecycle.values()) or 1
    bars = [
        Bar(
            stage.replace("_", " "),
            count,
            PALETTE[index % len(PALETTE)],
            note=f"{count} ({count / total:.0%})",
            tip=f"{stage}: {count}",
            data={"stage": stage, "count": str(count)},
        )
        for index, (stage, count) in enumerate(report.lifecycle.items())
    ]
    return bar_chart(
        bars, "lifecycle funnel", left=110, area=490, row=40, top=8, centred=True, css="stage"
    )


def figures(report: SegmentReport, x: str | None = None, y: str | None = None) -> list[Figure]:
    """The page's five charts, in order (see module docs)."""
    x, y = scatter_axes(report, x, y) if report.clusters else (x or "", y or "")
    points = scatter_chart(report, x, y) if report.clusters else None
    no_points = (
        "No cluster segments: add `clusters:` to the segments document."
        if report.clusters
        else NO_CLUSTERS
    )
    return [
        Figure("chart-sizes", "Segment sizes", sizes_chart(report),
               "Dashed tick: the segment's minimum size.", "No segments."),
        Figure("chart-overlap", "Overlap", overlap_chart(report),
               "Cell shade: share of the row's segment also in the column's.", "No segments."),
        Figure("chart-scatter", f"Clusters: {y} by {x}", points,
               f"A sample of up to {len(report.points)} profiles.", no_points),
        Figure("chart-kselect", "Choosing k", kselect_chart(report),
               "Inertia (lower is tighter; look for the elbow) and silhouette (higher is "
               "better) per k; the larger dot is the k in use.", NO_CLUSTERS),
        Figure("chart-funnel", "Lifecycle", funnel_chart(report),
               empty="No lifecycle stages: the campaign has no events."),
    ]  # fmt: skip


def render_report(report: SegmentReport, x: str | None = None, y: str | None = None) -> str:
    """The whole page (see module docs)."""
    return render_page("segments.html.j2", report=report, figures=figures(report, x, y))
