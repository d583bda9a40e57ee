"""Small server-side SVG charts for the report pages: no dependency, no script, every text escaped.

The pages are read in the weekly review meeting and printed for it, so a chart is plain SVG that
scales by its viewBox, prints like the page around it, and says what it shows to a screen reader
(role="img", a <title>, a <desc> listing the values). Labels come from venue files and staff, so
each one goes through html.escape; an empty data set draws a "no data" chart instead of failing."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from html import escape

WIDTH = 640
FONT = 12
CHAR_W = 6.8  # rough advance of a character at 12 px sans-serif: sizes the label column
TITLE_H = 30
BAR = "#4d4d4d"  # dark grey: reads on screen and prints the same on a black-and-white printer
LINE = "#b00020"
MUTED = "#767676"
NO_DATA = "No data for this period"

Item = tuple[str, float | None]  # (label, value); None draws an empty slot, not a zero
Format = Callable[[float], str]  # a value as printed on the chart, e.g. reports.duration_text


def _e(text: object) -> str:
    return escape(str(text), quote=True)


def _n(x: float) -> str:
    """A coordinate, short."""
    return f"{x:.1f}".removesuffix(".0")


def value_text(value: float, unit: str = "", decimals: int = 1) -> str:
    """'12.5 s', '80 %': the value as the chart prints it."""
    return f"{value:.{decimals}f} {unit}".strip()


def _clip(label: str, limit: int) -> str:
    """A label cut to fit its column; the whole label stays in the bar's own <title>."""
    return label if len(label) <= limit else label[: limit - 1] + "\u2026"


def _svg(title: str, height: float, body: list[str], chart_id: str | None, desc: str) -> str:
    ident = f' id="{_e(chart_id)}" aria-labelledby="{_e(chart_id)}-title"' if chart_id else ""
    title_id = f' id="{_e(chart_id)}-title"' if chart_id else ""
    return "\n".join([
        f'<svg xmlns="http://www.w3.org/2000/svg"{ident} class="chart" role="img" '
        f'viewBox="0 0 {WIDTH} {_n(height)}" preserveAspectRatio="xMinYMin meet" '
        f'font-family="sans-serif" font-size="{FONT}">',
        f"<title{title_id}>{_e(title)}</title>",
        f"<desc>{_e(desc)}</desc>",
        f'<rect class="frame" x="0" y="0" width="{WIDTH}" height="{_n(height)}" fill="#fff"/>',
        f'<text class="chart-title" x="8" y="20" font-size="14" font-weight="bold">{_e(title)}</text>',
        *body,
        "</svg>",
    ])


def no_data(title: str, chart_id: str | None = None) -> str:
    """A chart frame that says there was nothing to draw: a quiet week is an answer, not an error."""
    body = [f'<text class="no-data" x="{WIDTH / 2}" y="{TITLE_H + 28}" text-anchor="middle" '
            f'fill="{MUTED}">{NO_DATA}</text>']
    return _svg(title, TITLE_H + 48, body, chart_id, NO_DATA)


def _formatter(unit: str, decimals: int, fmt: Format | None) -> Format:
    return fmt or (lambda v: value_text(v, unit, decimals))


def _describe(items: Sequence[Item], fmt: Format) -> str:
    return "; ".join(f"{label}: {'no data' if v is None else fmt(v)}" for label, v in items)


def _has_data(items: Sequence[Item]) -> bool:
    return any(v is not None for _label, v in items)


def hbar_chart(title: str, items: Sequence[Item], unit: str = "", *, decimals: int = 1,
               fmt: Format | None = None, chart_id: str | None = None) -> str:
    """Horizontal bars, one row per label: for zones, staff and kinds of compensation, where labels
    are words and there may be many of them. Values print as `fmt` says, else with unit and decimals."""
    if not _has_data(items):
        return no_data(title, chart_id)
    show = _formatter(unit, decimals, fmt)
    row_h, label_chars = 24.0, min(28, max(len(label) for label, _v in items))
    x0 = 12 + label_chars * CHAR_W
    span = WIDTH - x0 - 90  # room on the right for the value
    top = max((v for _label, v in items if v is not None), default=0.0) or 1.0
    body = []
    for i, (label, v) in enumerate(items):
        y = TITLE_H + 8 + i * row_h
        mid = y + row_h / 2 + 4
        text = "no data" if v is None else show(v)
        w = 0.0 if v is None else max(0.0, v) / top * span
        body.append(
            f'<g class="bar"><title>{_e(label)}: {_e(text)}</title>'
            f'<text class="label" x="{_n(x0 - 6)}" y="{_n(mid)}" text-anchor="end">{_e(_clip(label, 28))}</text>'
            f'<rect x="{_n(x0)}" y="{_n(y + 3)}" width="{_n(w)}" height="{_n(row_h - 6)}" fill="{BAR}"/>'
            f'<text class="value" x="{_n(x0 + w + 4)}" y="{_n(mid)}">{_e(text)}</text></g>')
    height = TITLE_H + 16 + len(items) * row_h
    return _svg(title, height, body, chart_id, _describe(items, show))


def bar_chart(title: str, items: Sequence[Item], unit: str = "", *, decimals: int = 1,
              fmt: Format | None = None, chart_id: str | None = None) -> str:
    """Vertical bars with short labels under them: for hours of the day and days of the week, whose
    order on the axis is the point. The value over each bar leaves the unit to the title."""
    if not _has_data(items):
        return no_data(title, chart_id)
    show = _formatter(unit, decimals, fmt)
    over = fmt or (lambda v: value_text(v, "", decimals))
    height, bottom, left, right = 220.0, 24.0, 8.0, 8.0
    plot_top = TITLE_H + 16  # the value over the tallest bar
    plot_h = height - bottom - plot_top
    slot = (WIDTH - left - right) / len(items)
    small = 9 if len(items) > 12 else 11
    top = max((v for _label, v in items if v is not None), default=0.0) or 1.0
    body = [f'<line class="axis" x1="{_n(left)}" y1="{_n(plot_top + plot_h)}" x2="{_n(WIDTH - right)}" '
            f'y2="{_n(plot_top + plot_h)}" stroke="{MUTED}"/>']
    for i, (label, v) in enumerate(items):
        cx = left + slot * (i + 0.5)
        text = "no data" if v is None else show(v)
        h = 0.0 if v is None else max(0.0, v) / top * plot_h
        y = plot_top + plot_h - h
        value = "" if v is None else (f'<text class="value" x="{_n(cx)}" y="{_n(y - 3)}" text-anchor="middle" '
                                      f'font-size="{small}">{_e(over(v))}</text>')
        body.append(
            f'<g class="bar"><title>{_e(label)}: {_e(text)}</title>'
            f'<rect x="{_n(cx - slot * 0.35)}" y="{_n(y)}" width="{_n(slot * 0.7)}" height="{_n(h)}" fill="{BAR}"/>'
            f'{value}<text class="label" x="{_n(cx)}" y="{_n(height - 8)}" text-anchor="middle" '
            f'font-size="{small}">{_e(_clip(label, 8))}</text></g>')
    return _svg(title, height, body, chart_id, _describe(items, show))


def pareto_chart(title: str, items: Sequence[tuple[str, int]], *, chart_id: str | None = None,
                 threshold: float = 0.8) -> str:
    """Bars of counts, largest first, with the cumulative share as a line and a marker at 80 %: the
    few causes left of where the line crosses the marker are the ones worth a meeting."""
    ranked = sorted(((label, n) for label, n in items if n > 0), key=lambda item: -item[1])
    if not ranked:
        return no_data(title, chart_id)
    total = sum(n for _label, n in ranked)
    height, bottom, left, right = 280.0, 86.0, 40.0, 48.0
    plot_top = TITLE_H + 14
    plot_h = height - bottom - plot_top
    base = plot_top + plot_h
    slot = (WIDTH - left - right) / len(ranked)
    top = ranked[0][1]
    body = [f'<line class="axis" x1="{_n(left)}" y1="{_n(base)}" x2="{_n(WIDTH - right)}" y2="{_n(base)}" '
            f'stroke="{MUTED}"/>',
            f'<text class="axis-label" x="{_n(left - 4)}" y="{_n(plot_top + 4)}" text-anchor="end">{top}</text>',
            f'<text class="axis-label" x="{_n(left - 4)}" y="{_n(base + 4)}" text-anchor="end">0</text>',
            f'<text class="axis-label" x="{_n(WIDTH - right + 4)}" y="{_n(plot_top + 4)}">100 %</text>']
    y_mark = base - threshold * plot_h
    body.append(f'<g class="threshold"><line x1="{_n(left)}" y1="{_n(y_mark)}" x2="{_n(WIDTH - right)}" '
                f'y2="{_n(y_mark)}" stroke="{MUTED}" stroke-dasharray="4 3"/>'
                f'<text x="{_n(WIDTH - right + 4)}" y="{_n(y_mark + 4)}">{threshold * 100:.0f} %</text></g>')
    points: list[tuple[float, float]] = []
    desc: list[str] = []
    running = 0
    for i, (label, n) in enumerate(ranked):
        running += n
        share = running / total
        cx = left + slot * (i + 0.5)
        h = n / top * plot_h
        points.append((cx, base - share * plot_h))
        desc.append(f"{label}: {n} ({share * 100:.0f} % cumulative)")
        body.append(
            f'<g class="bar"><title>{_e(label)}: {n}, {share * 100:.0f} % cumulative</title>'
            f'<rect x="{_n(cx - slot * 0.35)}" y="{_n(base - h)}" width="{_n(slot * 0.7)}" height="{_n(h)}" '
            f'fill="{BAR}"/>'
            f'<text class="label" x="{_n(cx)}" y="{_n(base + 14)}" text-anchor="end" '
            f'transform="rotate(-35 {_n(cx)} {_n(base + 14)})">{_e(_clip(label, 18))}</text></g>')
    line = " ".join(f"{_n(x)},{_n(y)}" for x, y in points)
    body.append(f'<polyline class="cumulative" points="{line}" fill="none" stroke="{LINE}" stroke-width="2"/>')
    body.extend(f'<circle cx="{_n(x)}" cy="{_n(y)}" r="3" fill="{LINE}"/>' for x, y in points)
    return _svg(title, height, body, chart_id, "; ".join(desc))

