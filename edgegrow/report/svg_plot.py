"""Small, dependency-free SVG charts for run reports: line and scatter series on linear or log axes
with "nice" ticks, axis labels, a legend, vertical markers, shaded spans and a y = x line.

A ``Figure`` is a stack of ``Panel``s that share one x axis (e.g. accuracy above loss, both over
epochs); markers and spans cross every panel. ``Figure.to_svg()`` returns one ``<svg>`` element
(``class="plot"``, ``data-plot=<plot_id>``) with a ``<title>`` and a visible heading; every data point
is a ``<circle>`` carrying ``data-series``, ``data-x`` and ``data-y`` (the data values, not pixels), so
tests and readers can find them. ``figure_html`` wraps it with an HTML caption.

Degenerate data is drawn, not refused: one point, all-equal values and ``None`` values (gaps in a
line) give a sensible axis; a figure with no finite value shows its ``empty_message``.
"""
from __future__ import annotations

import html
import math
import re
from dataclasses import dataclass, field

PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf")
FONT_PX = 12
FONT_FAMILY = "system-ui, -apple-system, 'Segoe UI', 'DejaVu Sans', Arial, sans-serif"
CHAR_WIDTH_PX = 6.6  # rough width of one character at FONT_PX, for laying out legends
LEFT_MARGIN_PX, RIGHT_MARGIN_PX = 70, 20
TITLE_HEIGHT_PX, LEGEND_ROW_PX, PANEL_GAP_PX, X_AXIS_HEIGHT_PX = 30, 18, 14, 44
NICE_MULTIPLIERS = (1.0, 2.0, 2.5, 5.0, 10.0)


# -- ticks ------------------------------------------------------------------------------------------
def widen_degenerate(low: float, high: float) -> tuple[float, float]:
    """``(low, high)`` ordered, and widened when equal (one point, or all values equal)."""
    if low > high:
        low, high = high, low
    if high - low <= 1e-12 * max(abs(low), abs(high), 1e-300):
        pad = abs(low) * 0.1 if low != 0 else 1.0
        low, high = low - pad, high + pad
    return low, high


def nice_ticks(low: float, high: float, count: int = 5, *, integer: bool = False) -> list[float]:
    """Round tick values (steps of 1, 2, 2.5 or 5 times a power of ten) covering ``[low, high]`` in
    about ``count`` intervals; the first tick is at or below ``low`` and the last at or above ``high``.
    ``integer``: steps of at least 1 (and never 2.5), for counts such as layers or channels."""
    if not (math.isfinite(low) and math.isfinite(high)):
        raise ValueError(f"ticks need finite bounds, got {low!r} and {high!r}")
    low, high = widen_degenerate(low, high)
    raw_step = (high - low) / max(count, 1)
    magnitude = 10.0 ** math.floor(math.log10(raw_step))
    multipliers = [m for m in NICE_MULTIPLIERS if not (integer and m == 2.5)]
    step = next(m * magnitude for m in multipliers if m * magnitude >= raw_step * (1 - 1e-9))
    step = max(step, 1.0) if integer else step
    first, last = math.floor(low / step + 1e-9), math.ceil(high / step - 1e-9)
    digits = max(0, 2 - math.floor(math.log10(step)))
    return [round(i * step, digits) for i in range(first, last + 1)]


def log_ticks(low: float, high: float) -> list[float]:
    """Powers of ten covering ``[low, high]`` (both > 0), with 2 and 5 between them over at most two
    decades."""
    if not (low > 0 and high > 0 and math.isfinite(low) and math.isfinite(high)):
        raise ValueError(f"log ticks need finite positive bounds, got {low!r} and {high!r}")
    low, high = min(low, high), max(low, high)
    if high <= low * (1 + 1e-9):  # one value: a factor of two either side
        low, high = low / 2, high * 2
    first, last = math.floor(math.log10(low) + 1e-9), math.ceil(math.log10(high) - 1e-9)
    if last == first:
        last += 1
    multipliers = (1, 2, 5) if last - first <= 2 else (1,)
    ticks = [m * 10.0 ** e for e in range(first, last) for m in multipliers] + [10.0 ** last]
    # trim to the multipliers just around the data
    below = [t for t in ticks if t <= low * (1 + 1e-9)]
    above = [t for t in ticks if t >= high * (1 - 1e-9)]
    return [t for t in ticks if below[-1] <= t <= above[0]]


def format_number(value: float, step: float | None = None) -> str:
    """A tick label: thousands as k/M/G, otherwise as many decimals as ``step`` needs."""
    if value == 0:
        return "0"
    magnitude = abs(value)
    for threshold, unit, suffix in ((1e9, 1e9, "G"), (1e6, 1e6, "M"), (1e4, 1e3, "k")):
        if magnitude >= threshold:
            return f"{value / unit:.3g}{suffix}"
    if step is None:
        return f"{value:.3g}"
    decimals = max(0, -math.floor(math.log10(step) + 1e-9))
    if abs(round(step, decimals) - step) > 1e-9 * step:
        decimals += 1  # steps of 2.5 below 10
    return f"{value:.{decimals}f}"


# -- data -------------------------------------------------------------------------------------------
@dataclass
class Series:
    """One set of points ``(x, y)``; a ``None`` or non-finite y is a gap in the line.

    ``style``: "line" (points joined), "step" (a staircase: y holds until the next x), "scatter"
    (points only) or "ring" (hollow circles, to highlight points drawn by another series).
    ``point_labels`` are drawn beside the points; ``point_attributes`` add attributes to each circle.
    """

    label: str
    points: list[tuple[float, float | None]]
    style: str = "line"
    color: str | None = None
    dashed: bool = False
    key: str | None = None  # the data-series attribute; a slug of the label when None
    point_labels: list[str] | None = None
    point_attributes: list[dict[str, str]] | None = None
    marker_radius_px: float = 3.0
    show_points: bool = True  # False: the line only (no circles, so no data points to count)
    in_legend: bool = True

    def __post_init__(self):
        if self.style not in ("line", "step", "scatter", "ring"):
            raise ValueError(f"series style must be line, step, scatter or ring, got {self.style!r}")
        self.key = self.key or slug(self.label)


@dataclass
class VerticalMarker:
    """A vertical line at data ``x`` across every panel, labelled at its top."""

    x: float
    label: str = ""
    kind: str = "marker"  # the data-marker attribute
    color: str = "#555555"
    dashed: bool = True
    legend: str | None = None  # one legend entry per distinct text


@dataclass
class Span:
    """A shaded x range across every panel, labelled at its top (e.g. a training phase)."""

    start: float
    end: float
    label: str = ""
    color: str = "#e8e8e8"


@dataclass
class Panel:
    """One plot area: series against the figure's x axis and this panel's own y axis."""

    y_label: str
    height_px: int = 200
    y_scale: str = "linear"  # or "log"
    identity_line: bool = False  # draw y = x over the range both axes share
    integer_ticks: bool = False  # y ticks at whole numbers only (counts)
    series: list[Series] = field(default_factory=list)

    def add(self, series: Series) -> Series:
        self.series.append(series)
        return series

    def finite_points(self) -> list[tuple[float, float]]:
        return [(x, y) for s in self.series for x, y in s.points if _finite(x) and _finite(y)]


@dataclass
class Figure:
    """A titled chart of one or more panels stacked over a shared x axis.

    ``x_ticks``: explicit ``(value, label)`` ticks (e.g. phase names) instead of nice numbers.
    ``caption`` goes under the chart in ``figure_html``; ``empty_message`` is shown when there is no data.
    """

    title: str
    plot_id: str
    x_label: str
    width_px: int = 860
    x_scale: str = "linear"  # or "log"
    x_ticks: list[tuple[float, str]] | None = None
    panels: list[Panel] = field(default_factory=list)
    markers: list[VerticalMarker] = field(default_factory=list)
    spans: list[Span] = field(default_factory=list)
    caption: str = ""
    empty_message: str = "no data to plot"

    def panel(self, y_label: str, **options) -> Panel:
        """Add a panel under the existing ones and return it."""
        panel = Panel(y_label, **options)
        self.panels.append(panel)
        return panel

    def to_svg(self) -> str:
        """The chart as one ``<svg>`` element (inline in HTML, or saved on its own)."""
        return _Renderer(self).render()


def figure_html(figure: Figure) -> str:
    """``<figure>`` holding the chart's SVG and, when the figure has one, its caption."""
    caption = f"<figcaption>{html.escape(figure.caption)}</figcaption>" if figure.caption else ""
    return f'<figure class="chart">{figure.to_svg()}{caption}</figure>'


def slug(text: str) -> str:
    """Lower-case letters, digits, dots and dashes: a label made safe for an attribute value."""
    return re.sub(r"[^a-z0-9.]+", "-", text.lower()).strip("-") or "series"


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


# -- drawing ----------------------------------------------------------------------------------------
class _Axis:
    """Data ↔ pixel mapping of one axis, with its ticks."""

    def __init__(self, values: list[float], scale: str, pixel_low: float, pixel_high: float,
                 fixed_ticks: list[tuple[float, str]] | None = None, integer: bool = False):
        self.log = scale == "log" and any(v > 0 for v in values)
        values = [v for v in values if v > 0] if self.log else values
        if fixed_ticks:
            tick_values = [v for v, _ in fixed_ticks]
            low, high = min(tick_values + values), max(tick_values + values)
            if low == high:
                low, high = widen_degenerate(low, high)
            else:  # half a slot of room either side, so points on the end ticks are not on the frame
                pad = (high - low) / max(len(tick_values) - 1, 1) * 0.5
                low, high = low - pad, high + pad
            self.ticks = [(v, label) for v, label in fixed_ticks]
        elif self.log:
            ticks = log_ticks(min(values), max(values))
            low, high = ticks[0], ticks[-1]
            self.ticks = [(t, format_number(t)) for t in ticks]
        else:
            ticks = nice_ticks(min(values), max(values), integer=integer) if values else nice_ticks(0.0, 1.0)
            low, high = ticks[0], ticks[-1]
            step = ticks[1] - ticks[0] if len(ticks) > 1 else None
            self.ticks = [(t, format_number(t, step)) for t in ticks]
        self.low, self.high = low, high
        self.pixel_low, self.pixel_high = pixel_low, pixel_high

    def _transform(self, value: float) -> float:
        return math.log10(value) if self.log else value

    def contains(self, value: float) -> bool:
        return _finite(value) and (value > 0 or not self.log)

    def pixel(self, value: float) -> float:
        low, high = self._transform(self.low), self._transform(self.high)
        share = (self._transform(value) - low) / (high - low) if high != low else 0.5
        return self.pixel_low + share * (self.pixel_high - self.pixel_low)


class _Renderer:
    def __init__(self, figure: Figure):
        self.figure = figure
        self.parts: list[str] = []
        self.colors: dict[str, str] = {}

    def color(self, series: Series, index: int) -> str:
        return series.color or PALETTE[index % len(PALETTE)]

    def render(self) -> str:
        figure = self.figure
        width = figure.width_px
        plot_left, plot_right = LEFT_MARGIN_PX, width - RIGHT_MARGIN_PX
        panels = figure.panels or [Panel("")]
        x_values = [x for p in panels for x, _ in p.finite_points()]
        has_data = bool(x_values)
        # a y = x panel shares one range on both axes, so the line crosses the data
        x_values += [y for p in panels if p.identity_line for _, y in p.finite_points()]
        x_values += [m.x for m in figure.markers if _finite(m.x)]
        x_values += [v for s in figure.spans for v in (s.start, s.end) if _finite(v)]
        x_axis = _Axis(x_values, figure.x_scale, plot_left, plot_right, figure.x_ticks)

        # vertical layout: title, then each panel's legend rows and plot area, then the x axis
        layout, cursor = [], TITLE_HEIGHT_PX
        for panel in panels:
            legend = self.legend_entries(panel, panel is panels[0])
            rows = self.legend_rows(legend, plot_right - plot_left)
            top = cursor + len(rows) * LEGEND_ROW_PX + (6 if rows else 0)
            layout.append((panel, rows, top, top + panel.height_px))
            cursor = top + panel.height_px + PANEL_GAP_PX
        bottom = layout[-1][3]
        height = bottom + X_AXIS_HEIGHT_PX
        title = html.escape(figure.title)
        self.parts.append(
            f'<svg xmlns="http://www.w3.org/2000/svg" class="plot" data-plot="{html.escape(figure.plot_id)}" '
            f'width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
            f'font-family="{FONT_FAMILY}" font-size="{FONT_PX}">'
            f"<title>{title}</title>"
            f'<text class="plot-title" x="{plot_left}" y="20" font-size="15" font-weight="600">{title}</text>')
        first_top = layout[0][2]
        for span in figure.spans:
            self.draw_span(span, x_axis, first_top, bottom)
        for panel, rows, top, panel_bottom in layout:
            self.draw_panel(panel, rows, x_axis, top, panel_bottom, plot_left, plot_right, has_data,
                            show_x_labels=panel is layout[-1][0])
        for marker in figure.markers:
            self.draw_marker(marker, x_axis, first_top, bottom)
        if not has_data:
            middle = (first_top + bottom) / 2
            self.parts.append(f'<text class="empty" x="{(plot_left + plot_right) / 2:.1f}" y="{middle:.1f}" '
                              f'text-anchor="middle" fill="#777">{html.escape(figure.empty_message)}</text>')
        self.parts.append(f'<text class="axis-label" x="{(plot_left + plot_right) / 2:.1f}" y="{height - 8}" '
                          f'text-anchor="middle">{html.escape(figure.x_label)}</text>')
        self.parts.append("</svg>")
        return "".join(self.parts)

    # legend ------------------------------------------------------------------------------------
    def legend_entries(self, panel: Panel, first: bool) -> list[tuple[str, str, bool, str]]:
        """(label, color, dashed, kind) for each series, and for the figure's markers on the first panel."""
        entries = [(s.label, self.color(s, i), s.dashed, s.style) for i, s in enumerate(panel.series)
                   if s.in_legend and s.label]
        if panel.identity_line and panel.finite_points():
            entries.append(("y = x (prediction exact)", "#999999", True, "line"))
        if first:
            seen = set()
            for marker in self.figure.markers:
                if marker.legend and marker.legend not in seen:
                    seen.add(marker.legend)
                    entries.append((marker.legend, marker.color, marker.dashed, "marker"))
        return entries

    @staticmethod
    def legend_rows(entries, width_px: float) -> list[list[tuple[float, tuple]]]:
        rows, row, used = [], [], 0.0
        for entry in entries:
            entry_width = 30 + len(entry[0]) * CHAR_WIDTH_PX + 16
            if row and used + entry_width > width_px:
                rows.append(row)
                row, used = [], 0.0
            row.append((used, entry))
            used += entry_width
        if row:
            rows.append(row)
        return rows

    def draw_legend(self, rows, left: float, top: float) -> None:
        self.parts.append('<g class="legend">')
        for number, row in enumerate(rows):
            y = top + number * LEGEND_ROW_PX + 12
            for offset, (label, color, dashed, kind) in row:
                x = left + offset
                dash = ' stroke-dasharray="5 3"' if dashed else ""
                if kind in ("scatter", "ring"):
                    fill = "none" if kind == "ring" else color
                    self.parts.append(f'<circle cx="{x + 12}" cy="{y - 4}" r="4" fill="{fill}" stroke="{color}"/>')
                elif kind == "marker":
                    self.parts.append(f'<line x1="{x + 12}" y1="{y - 11}" x2="{x + 12}" y2="{y + 3}" '
                                      f'stroke="{color}" stroke-width="1.5"{dash}/>')
                else:
                    self.parts.append(f'<line x1="{x}" y1="{y - 4}" x2="{x + 24}" y2="{y - 4}" stroke="{color}" '
                                      f'stroke-width="2"{dash}/>')
                self.parts.append(f'<text x="{x + 30}" y="{y}">{html.escape(label)}</text>')
        self.parts.append("</g>")

    # panels ------------------------------------------------------------------------------------
    def draw_panel(self, panel: Panel, rows, x_axis: _Axis, top: float, bottom: float, left: float, right: float,
                   has_data: bool, show_x_labels: bool) -> None:
        self.draw_legend(rows, left, top - len(rows) * LEGEND_ROW_PX - 6)
        y_values = [v for point in panel.finite_points() for v in (point if panel.identity_line else point[1:])]
        y_axis = _Axis(y_values, panel.y_scale, bottom, top, integer=panel.integer_ticks)
        self.parts.append(f'<g class="panel" data-y-label="{html.escape(panel.y_label)}">')
        self.parts.append(f'<rect x="{left}" y="{top}" width="{right - left}" height="{bottom - top}" '
                          'fill="none" stroke="#bbbbbb"/>')
        if has_data:
            for value, label in y_axis.ticks:
                y = y_axis.pixel(value)
                self.parts.append(f'<line class="grid" x1="{left}" y1="{y:.1f}" x2="{right}" y2="{y:.1f}" '
                                  'stroke="#eeeeee"/>')
                self.parts.append(f'<text class="tick" x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">'
                                  f"{html.escape(label)}</text>")
        for value, label in x_axis.ticks if has_data else []:
            x = x_axis.pixel(value)
            self.parts.append(f'<line x1="{x:.1f}" y1="{bottom}" x2="{x:.1f}" y2="{bottom + 4}" stroke="#888888"/>')
            if show_x_labels:
                self.parts.append(f'<text class="tick" x="{x:.1f}" y="{bottom + 17}" text-anchor="middle">'
                                  f"{html.escape(label)}</text>")
        middle = (top + bottom) / 2
        self.parts.append(f'<text class="axis-label" x="16" y="{middle:.1f}" text-anchor="middle" '
                          f'transform="rotate(-90 16 {middle:.1f})">{html.escape(panel.y_label)}</text>')
        if panel.identity_line and has_data:
            self.draw_identity(x_axis, y_axis)
        for index, series in enumerate(panel.series):
            self.draw_series(series, self.color(series, index), x_axis, y_axis)
        self.parts.append("</g>")

    def draw_identity(self, x_axis: _Axis, y_axis: _Axis) -> None:
        low, high = max(x_axis.low, y_axis.low), min(x_axis.high, y_axis.high)
        if not low < high:
            return
        if x_axis.log or y_axis.log:  # a straight line only where both axes agree; sample it otherwise
            count = 24
            ratio = (high / low) if low > 0 else None
            values = [low * ratio ** (i / count) if ratio else low + (high - low) * i / count for i in range(count + 1)]
        else:
            values = [low, high]
        points = " ".join(f"{x_axis.pixel(v):.1f},{y_axis.pixel(v):.1f}" for v in values)
        self.parts.append(f'<polyline class="identity" points="{points}" fill="none" stroke="#999999" '
                          'stroke-dasharray="4 3"/>')

    def draw_series(self, series: Series, color: str, x_axis: _Axis, y_axis: _Axis) -> None:
        key = html.escape(series.key)
        self.parts.append(f'<g class="series" data-series="{key}" data-label="{html.escape(series.label)}">')
        drawable = [(i, x, y) for i, (x, y) in enumerate(series.points)
                    if x_axis.contains(x) and y_axis.contains(y)]
        if series.style in ("line", "step"):
            dash = ' stroke-dasharray="6 4"' if series.dashed else ""
            for segment in _segments(series.points, x_axis, y_axis):
                if len(segment) < 2:
                    continue
                if series.style == "step":
                    segment = [p for a, b in zip(segment, segment[1:]) for p in (a, (b[0], a[1]))] + [segment[-1]]
                points = " ".join(f"{x_axis.pixel(x):.1f},{y_axis.pixel(y):.1f}" for x, y in segment)
                self.parts.append(f'<polyline points="{points}" fill="none" stroke="{color}" stroke-width="2"'
                                  f'{dash}/>')
        radius = series.marker_radius_px * (2.2 if series.style == "ring" else 1.0)
        fill = "none" if series.style == "ring" else color
        stroke_width = 2 if series.style == "ring" else 1
        for i, x, y in drawable if series.show_points else []:
            attributes = "".join(f' {html.escape(k)}="{html.escape(str(v))}"'
                                 for k, v in ((series.point_attributes or [{}] * len(series.points))[i] or {}).items())
            label = series.point_labels[i] if series.point_labels and i < len(series.point_labels) else ""
            tooltip = f"<title>{html.escape(f'{series.label} {label}: x {x:.4g}, y {y:.4g}'.strip())}</title>"
            px, py = x_axis.pixel(x), y_axis.pixel(y)
            self.parts.append(f'<circle cx="{px:.1f}" cy="{py:.1f}" r="{radius:.1f}" fill="{fill}" stroke="{color}" '
                              f'stroke-width="{stroke_width}" data-series="{key}" data-x="{x!r}" data-y="{y!r}"'
                              f"{attributes}>{tooltip}</circle>")
            if label:  # right of the point, or left of it near the right edge
                room = x_axis.pixel_high - px > CHAR_WIDTH_PX * len(label) + radius + 3
                anchor, text_x = ("start", px + radius + 3) if room else ("end", px - radius - 3)
                self.parts.append(f'<text class="point-label" x="{text_x:.1f}" y="{py - radius - 2:.1f}" '
                                  f'text-anchor="{anchor}" font-size="11" fill="{color}">{html.escape(label)}</text>')
        self.parts.append("</g>")

    def draw_marker(self, marker: VerticalMarker, x_axis: _Axis, top: float, bottom: float) -> None:
        if not x_axis.contains(marker.x):
            return
        x = x_axis.pixel(marker.x)
        dash = ' stroke-dasharray="5 3"' if marker.dashed else ""
        self.parts.append(f'<g class="marker" data-marker="{html.escape(marker.kind)}" data-x="{marker.x!r}">'
                          f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{bottom}" stroke="{marker.color}" '
                          f'stroke-width="1.5"{dash}/>')
        if marker.label:
            # labels near the right edge go on the line's left, so they stay inside the picture
            room = x_axis.pixel_high - x > CHAR_WIDTH_PX * len(marker.label) + 6
            anchor, text_x = ("start", x + 3) if room else ("end", x - 3)
            self.parts.append(f'<text x="{text_x:.1f}" y="{top + 12}" text-anchor="{anchor}" font-size="11" '
                              f'fill="{marker.color}">{html.escape(marker.label)}</text>')
        self.parts.append("</g>")

    def draw_span(self, span: Span, x_axis: _Axis, top: float, bottom: float) -> None:
        if not (x_axis.contains(span.start) and x_axis.contains(span.end)):
            return
        start, end = sorted((x_axis.pixel(span.start), x_axis.pixel(span.end)))
        self.parts.append(f'<g class="span" data-span="{html.escape(slug(span.label))}">'
                          f'<rect x="{start:.1f}" y="{top}" width="{max(end - start, 1.0):.1f}" '
                          f'height="{bottom - top}" fill="{span.color}" fill-opacity="0.6"/>')
        if span.label:
            self.parts.append(f'<text x="{(start + end) / 2:.1f}" y="{bottom - 6}" text-anchor="middle" '
                              f'font-size="11" fill="#555555">{html.escape(span.label)}</text>')
        self.parts.append("</g>")


def _segments(points, x_axis: _Axis, y_axis: _Axis) -> list[list[tuple[float, float]]]:
    """Runs of drawable points; a point that cannot be drawn (None, NaN, ≤ 0 on a log axis) breaks the line."""
    segments, current = [], []
    for x, y in points:
        if x_axis.contains(x) and y_axis.contains(y):
            current.append((x, y))
        elif current:
            segments.append(current)
            current = []
    if current:
        segments.append(current)
    return segments
