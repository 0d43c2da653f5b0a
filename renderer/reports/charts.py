"""Chart geometry for the report pages, as plain data the templates draw.

A :class:`Chart` is an SVG canvas (width, height, an accessible label) and an
ordered list of marks: :class:`Text`, :class:`Rect`, :class:`Line`,
:class:`Dot`, :class:`Polyline` and :class:`Whisker`, in paint order (later
marks are drawn on top). Each mark holds pixel coordinates, already scaled;
``templates/charts.html.j2`` turns any chart into ``<svg>`` without knowing
which kind it is. Marks carry a CSS class, ``data-*`` attributes and a tooltip,
so pages (and the browser tests) can find them.

The builders below lay out the chart kinds the reports use, from plain labels
and numbers, knowing nothing of segments or experiments:

    bar_chart       one horizontal bar per row, optional dashed marker (sizes, funnel)
    heatmap         a square grid of cells shaded by a share (overlap)
    scatter         points on two numeric axes, coloured by group, with a legend
    line_panel      one metric per x (k selection), chosen x drawn larger
    interval_chart  a dot and its interval per row, dashed reference (A/B rates)

Axes are labelled at their two ends (the lowest and highest value shown).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import ClassVar

PALETTE = ("#2f4a3a", "#b5562b", "#4a6fa5", "#c9a227", "#7b4b94", "#3a8f8f", "#a23b5a", "#6b6b6b")
AXIS = "#888"
OTHER = "#bbbbbb"  # a point outside every group of the legend


# --- marks ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Text:
    """A text label anchored at ``x``/``y`` (baseline), optionally rotated about that point."""

    x: float
    y: float
    text: str
    anchor: str = "start"
    rotate: float | None = None
    bold: bool = False
    css: str = ""
    kind: ClassVar[str] = "text"


@dataclass(frozen=True)
class Rect:
    """A filled rectangle: a bar, a heatmap cell or a legend swatch."""

    x: float
    y: float
    width: float
    height: float
    fill: str
    opacity: float | None = None
    css: str = ""
    data: Mapping[str, str] = field(default_factory=dict)
    tip: str = ""
    kind: ClassVar[str] = "rect"


@dataclass(frozen=True)
class Line:
    """A straight line: an axis, a marker tick or a reference line."""

    x1: float
    y1: float
    x2: float
    y2: float
    stroke: str = AXIS
    dash: str = ""
    css: str = ""
    kind: ClassVar[str] = "line"


@dataclass(frozen=True)
class Dot:
    """A circle: a scatter point or a value on a line or interval."""

    cx: float
    cy: float
    r: float
    fill: str
    opacity: float | None = None
    css: str = ""
    data: Mapping[str, str] = field(default_factory=dict)
    tip: str = ""
    kind: ClassVar[str] = "dot"


@dataclass(frozen=True)
class Polyline:
    """An open line through ``points``."""

    points: Sequence[tuple[float, float]]
    stroke: str
    width: float = 2.0
    css: str = ""
    kind: ClassVar[str] = "polyline"

    @property
    def path(self) -> str:
        """The SVG ``points`` attribute."""
        return " ".join(f"{x:.1f},{y:.1f}" for x, y in self.points)


@dataclass(frozen=True)
class Whisker:
    """A horizontal interval from ``x1`` to ``x2`` at ``y``, with end caps."""

    x1: float
    x2: float
    y: float
    stroke: str
    cap: float = 5.0
    kind: ClassVar[str] = "whisker"


Mark = Text | Rect | Line | Dot | Polyline | Whisker


@dataclass
class Chart:
    """An SVG canvas and its marks, in paint order."""

    width: float
    height: float
    label: str
    marks: list[Mark] = field(default_factory=list)


# --- scales -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Scale:
    """A linear map from the data interval ``low..high`` onto pixels ``start..end``."""

    low: float
    high: float
    start: float
    end: float

    def __call__(self, value: float) -> float:
        return self.start + (value - self.low) / (self.high - self.low) * (self.end - self.start)

    @classmethod
    def fit(
        cls,
        values: Iterable[float | None],
        start: float,
        end: float,
        *,
        margin: float = 0.0,
        flat: float = 1.0,
    ) -> Scale:
        """Span the finite ``values``, widened by ``margin`` (a share of the span) each side.

        A single value (or none: ``0..1``) is widened by ``flat`` each side, so the
        map never divides by zero.
        """
        finite = [float(v) for v in values if v is not None and math.isfinite(v)]
        low, high = (min(finite), max(finite)) if finite else (0.0, 1.0)
        pad = (high - low) * margin if high > low else flat
        return cls(low - pad, high + pad, start, end)


def number(value: float) -> str:
    """An axis label: four significant digits, thousands separated."""
    return f"{value:,.4g}"


# --- builders ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Bar:
    """One row of a bar chart: its label, value, colour and what is shown beside it."""

    label: str
    value: float
    fill: str
    note: str = ""
    tip: str = ""
    marker: float | None = None  # a dashed tick at this value, e.g. a minimum size
    data: Mapping[str, str] = field(default_factory=dict)


def bar_chart(
    bars: Sequence[Bar],
    label: str,
    *,
    left: float = 180.0,
    area: float = 480.0,
    row: float = 26.0,
    top: float = 10.0,
    centred: bool = False,
    css: str = "bar",
) -> Chart:
    """Horizontal bars scaled to the largest value (or marker); ``centred`` for a funnel.

    The note goes right of its bar, or in a column right of the chart when bars
    are centred.
    """
    largest = max([b.value for b in bars] + [b.marker or 0.0 for b in bars] + [1.0])
    chart = Chart(left + area + 110, top * 2 + row * len(bars), label)
    for index, bar in enumerate(bars):
        y = top + index * row + 2
        height = row - 8
        width = max(2.0 if centred else 1.0, area * bar.value / largest)
        x = left + (area - width) / 2 if centred else left
        baseline = y + height / 2 + 4
        chart.marks += [
            Text(left - 8, baseline, bar.label, "end"),
            Rect(x, y, width, height, bar.fill, css=css, data=bar.data, tip=bar.tip),
        ]
        if bar.marker is not None:
            mark = left + area * bar.marker / largest
            chart.marks.append(Line(mark, y - 2, mark, y + row - 6, PALETTE[1], "3,2", "minimum"))
        note_x = left + area + 10 if centred else x + width + 6
        chart.marks.append(Text(note_x, baseline, bar.note))
    return chart


@dataclass(frozen=True)
class Cell:
    """One heatmap cell: its shade (0..1), tooltip and ``data-*`` attributes."""

    share: float
    tip: str = ""
    data: Mapping[str, str] = field(default_factory=dict)


def heatmap(
    names: Sequence[str],
    cells: Sequence[Sequence[Cell]],
    label: str,
    *,
    cell: float = 30.0,
    left: float = 180.0,
    top: float = 130.0,
) -> Chart:
    """A square grid, ``cells[row][column]``; names down the left and slanted across the top."""
    span = len(names) * cell
    chart = Chart(left + span + 110, top + span + 10, label)
    for j, name in enumerate(names):
        x = left + j * cell + cell / 2
        chart.marks.append(Text(x, top - 8, name, rotate=-50))
    for i, (name, row) in enumerate(zip(names, cells, strict=True)):
        y = top + i * cell
        chart.marks.append(Text(left - 8, y + cell / 2 + 4, name, "end"))
        for j, item in enumerate(row):
            opacity = 0.06 + 0.94 * item.share
            x = left + j * cell
            side = cell - 2
            chart.marks.append(
                Rect(x, y, side, side, PALETTE[2], opacity, "cell", item.data, item.tip)
            )
    return chart


def axes(
    x: Scale, y: Scale, x_title: str, y_title: str, fmt: Callable[[float], str] = number
) -> list[Mark]:
    """Two axis lines meeting at the origin, each labelled at both ends and titled.

    The x title sits 42 px below the x axis; the y title 14 px from the canvas edge.
    """
    bottom, right = y.start, x.end
    return [
        Line(x.start, bottom, right, bottom),
        Line(x.start, y.end, x.start, bottom),
        Text(x.start, bottom + 16, fmt(x.low), "middle"),
        Text(right, bottom + 16, fmt(x.high), "middle"),
        Text(x.start - 6, bottom, fmt(y.low), "end"),
        Text(x.start - 6, y.end + 4, fmt(y.high), "end"),
        Text((x.start + right) / 2, bottom + 42, x_title, "middle", bold=True),
        Text(14, (bottom + y.end) / 2, y_title, "middle", rotate=-90, bold=True),
    ]


def scatter(
    xs: Sequence[float],
    ys: Sequence[float],
    groups: Sequence[str],
    colours: Mapping[str, str],
    label: str,
    *,
    x_title: str,
    y_title: str,
    width: float = 600.0,
    height: float = 380.0,
    pad: float = 50.0,
) -> Chart:
    """Points coloured by group (grey when not in ``colours``); a legend to the right.

    Points with a missing coordinate are left out; the axes span the rest.
    """
    sx = Scale.fit(xs, pad, width - 20)
    sy = Scale.fit(ys, height - pad, 20)
    chart = Chart(width + 150, height, label, axes(sx, sy, x_title, y_title))
    for px, py, group in zip(xs, ys, groups, strict=True):
        if math.isfinite(px) and math.isfinite(py):
            fill = colours.get(group, OTHER)
            chart.marks.append(Dot(sx(px), sy(py), 3, fill, 0.7, "point", {"cluster": group}))
    for i, (group, colour) in enumerate(colours.items()):
        chart.marks.append(Rect(width + 10, 20 + i * 20, 12, 12, colour))
        chart.marks.append(Text(width + 28, 30 + i * 20, group))
    return chart


def line_panel(
    xs: Sequence[int],
    values: Sequence[float],
    title: str,
    *,
    left: float,
    top: float,
    stroke: str,
    metric: str,
    x_name: str = "x",
    chosen: int | None = None,
    width: float = 320.0,
    height: float = 200.0,
) -> list[Mark]:
    """One metric per integer x: a titled panel, a line and a dot per finite value.

    Dots have the classes ``k-point`` and ``metric`` (plus ``chosen`` at
    ``chosen``, drawn larger), ``data-<x_name>`` and a tooltip; the line has the
    class ``<metric>-line``.
    """
    pad, head = 40.0, 34.0
    bottom = top + height - pad
    low_x, high_x = (min(xs), max(xs)) if xs else (0, 1)
    sx = Scale(low_x, high_x if high_x > low_x else low_x + 1, left + pad, left + width - 10)
    sy = Scale.fit(values, bottom, top + head)
    shown = [(x, v) for x, v in zip(xs, values, strict=True) if math.isfinite(v)]
    marks: list[Mark] = [
        Text(left + width / 2, top + 14, title, "middle", bold=True),
        Line(left + pad, bottom, left + width - 10, bottom),
        Text(left + pad - 6, bottom, number(sy.low), "end"),
        Text(left + pad - 6, top + head + 4, number(sy.high), "end"),
        Polyline([(sx(x), sy(v)) for x, v in shown], stroke, css=f"{metric}-line"),
    ]
    for x, value in shown:
        big = x == chosen
        css = f"k-point {metric}" + (" chosen" if big else "")
        tip = f"{x_name}={x}: {metric} {number(value)}"
        marks.append(
            Dot(sx(x), sy(value), 6 if big else 4, stroke, None, css, {x_name: str(x)}, tip)
        )
        marks.append(Text(sx(x), bottom + 16, str(x), "middle"))
    return marks


@dataclass(frozen=True)
class Interval:
    """One row of an interval chart: a value (None: not drawn) and its interval."""

    label: str
    value: float | None
    low: float | None
    high: float | None
    colour: str
    data: Mapping[str, str] = field(default_factory=dict)
    tip: str = ""


def interval_chart(
    rows: Sequence[Interval],
    label: str,
    *,
    reference: float | None = None,
    fmt: Callable[[float], str] = number,
    width: float = 640.0,
    left: float = 150.0,
    right: float = 30.0,
    step: float = 30.0,
) -> Chart:
    """A dot and its interval per row on one shared scale; a dashed line at ``reference``."""
    height = 30 + step * len(rows)
    values = [v for r in rows for v in (r.value, r.low, r.high)]
    sx = Scale.fit(values, left, width - right, margin=0.1, flat=0.01)
    chart = Chart(width, height, label)
    if reference is not None:
        at = sx(reference)
        chart.marks.append(Line(at, 5, at, height - 20, "#8c959f", "4 3", "reference"))
    for i, row in enumerate(rows):
        y = 20 + step * i
        chart.marks.append(Text(left - 10, y + 4, row.label, "end", css="label"))
        if row.value is None:
            continue
        if row.low is not None and row.high is not None:
            chart.marks.append(Whisker(sx(row.low), sx(row.high), y, row.colour))
        chart.marks.append(Dot(sx(row.value), y, 4, row.colour, None, "rate", row.data, row.tip))
    chart.marks.append(Text(left, height - 4, fmt(sx.low), "start", css="tick"))
    chart.marks.append(Text(width - right, height - 4, fmt(sx.high), "end", css="tick"))
    return chart
