"""The latency distributions as a plot: latest.svg drawn here, latest.png rendered from it by Chromium.

Each distribution is drawn as latency against percentile on a tail-stretching axis (the distance
to 100 % on a log scale: 0, 90, 99, 99.9 % evenly spaced), with latency on a log axis, so the body
and the tail of a gateway run and of its baseline read on one chart. The PNG is the SVG rendered by
the same headless Chromium and Playwright the dashboard's browser tests use, so no plotting
library is needed."""

from __future__ import annotations

import math
import shutil
from collections.abc import Mapping, Sequence
from html import escape
from pathlib import Path

from .stats import percentile

W, PANEL_H = 900, 380
LEFT, RIGHT, TOP, BOTTOM = 70, 290, 40, 50
COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf", "#7f7f7f")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


def tail_x(q: float) -> float:
    """Percentile q in [0, 1) -> log10(1 / (1 - q)): 0 at 0 %, 1 at 90 %, 2 at 99 %, 3 at 99.9 %."""
    return math.log10(1 / (1 - q))


def _e(text: object) -> str:
    return escape(str(text), quote=True)


def panel(title: str, curves: Mapping[str, Sequence[float]], y0: float) -> list[str]:
    """One chart: every curve's sorted samples as a line; -> SVG elements placed at height y0."""
    data = {k: sorted(v) for k, v in curves.items() if v}
    plot_w, plot_h = W - LEFT - RIGHT, PANEL_H - TOP - BOTTOM
    out = [f'<text x="{LEFT}" y="{y0 + 24}" font-size="15" font-weight="bold">{_e(title)}</text>']
    if not data:
        return [*out, f'<text x="{LEFT}" y="{y0 + 80}">not measured in this run</text>']
    positive = [x for v in data.values() for x in v if x > 0]
    lo = 10 ** math.floor(math.log10(min(positive))) if positive else 0.01
    hi = 10 ** math.ceil(math.log10(max(positive))) if positive else 1.0
    hi = max(hi, lo * 10)
    x_max = max(3.0, min(4.0, math.ceil(max(tail_x((len(v) - 1) / len(v)) for v in data.values()))))

    def px(x: float) -> float:
        return LEFT + plot_w * x / x_max

    def py(ms: float) -> float:
        v = max(ms, lo)
        return y0 + TOP + plot_h * (1 - (math.log10(v) - math.log10(lo)) / (math.log10(hi) - math.log10(lo)))

    out.append(f'<rect x="{LEFT}" y="{y0 + TOP}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#999"/>')
    decade = lo
    while decade <= hi * 1.0001:
        for m in (1, 2, 5):
            v = decade * m
            if v > hi * 1.0001:
                break
            y = py(v)
            minor = "" if m == 1 else ' stroke-dasharray="2,3"'
            out.append(f'<line x1="{LEFT}" x2="{LEFT + plot_w}" y1="{y:.1f}" y2="{y:.1f}" stroke="#ddd"{minor}/>')
            out.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="11">{v:g}</text>')
        decade *= 10
    for k in range(int(x_max) + 1):
        label = f"{100 * (1 - 10 ** -k):.{max(0, k - 2)}f}%"
        x = px(k)
        out.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{y0 + TOP}" y2="{y0 + TOP + plot_h}" stroke="#ddd"/>')
        out.append(f'<text x="{x:.1f}" y="{y0 + TOP + plot_h + 16}" text-anchor="middle" font-size="11">{label}</text>')
    out.append(f'<text x="{LEFT + plot_w / 2}" y="{y0 + PANEL_H - 8}" text-anchor="middle" font-size="12">'
               "percentile (tail stretched)</text>")
    out.append(f'<text x="16" y="{y0 + TOP + plot_h / 2}" font-size="12" text-anchor="middle" '
               f'transform="rotate(-90 16 {y0 + TOP + plot_h / 2})">ms (log)</text>')
    # A run's press -> alert and the baseline measured beside it share a colour (solid and dashed).
    keys = [label.split(":")[0] if " run" in label.split(":")[0] else label for label in data]
    palette = {k: COLORS[i % len(COLORS)] for i, k in enumerate(dict.fromkeys(keys))}
    for i, (label, samples) in enumerate(data.items()):
        color = palette[keys[i]]
        dash = ' stroke-dasharray="6,3"' if "hop" in label else ""  # baselines dashed
        n = len(samples)
        step = max(1, n // 2000)  # enough points for the eye; the tail is always drawn in full
        idx = [j for j in range(n) if j % step == 0 or j >= n - 200]
        pts = " ".join(f"{px(tail_x(j / n)):.1f},{py(samples[j]):.1f}" for j in idx)
        out.append(f'<polyline points="{pts}" fill="none" stroke="{color}" stroke-width="1.8"{dash}/>')
        ly = y0 + TOP + 14 + 34 * i
        lx = LEFT + plot_w + 16
        out.append(f'<line x1="{lx}" x2="{lx + 24}" y1="{ly}" y2="{ly}" stroke="{color}" stroke-width="2"{dash}/>')
        out.append(f'<text x="{lx + 30}" y="{ly + 4}" font-size="12">{_e(label)}</text>')
        summary = (f"n {n:,}  p50 {percentile(samples, 50):.2f}  p99 {percentile(samples, 99):.2f}  "
                   f"max {samples[-1]:.1f}")
        out.append(f'<text x="{lx + 30}" y="{ly + 19}" font-size="10" fill="#555">{_e(summary)}</text>')
    return out


def svg(panels: Sequence[tuple[str, Mapping[str, Sequence[float]]]]) -> str:
    height = PANEL_H * len(panels)
    body = [el for i, (title, curves) in enumerate(panels) for el in panel(title, curves, i * PANEL_H)]
    return "\n".join([f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{height}" '
                      f'viewBox="0 0 {W} {height}" font-family="sans-serif">',
                      f'<rect width="{W}" height="{height}" fill="#fff"/>', *body, "</svg>"])


def render_png(svg_text: str, png: Path) -> None:
    """Headless Chromium (Debian's, as the browser tests drive it) screenshots the SVG."""
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": W, "height": 400}, device_scale_factor=2)
            page.set_content(f'<html><body style="margin:0">{svg_text}</body></html>')
            page.locator("svg").screenshot(path=str(png))
        finally:
            browser.close()


def draw(curves: Mapping[str, Sequence[float]], out: Path) -> tuple[Path, Path]:
    """latest.svg and latest.png: round trips and press -> alert on one chart, escalation lateness on another."""
    latency = {k: v for k, v in curves.items() if "lateness" not in k}
    lateness = {k: v for k, v in curves.items() if "lateness" in k}
    text = svg([("Round trips and press -> pager alert (ms)", latency),
                ("Escalation lateness against the stored deadline (ms)", lateness)])
    svg_path, png_path = out / "latest.svg", out / "latest.png"
    svg_path.write_text(text)
    render_png(text, png_path)
    return svg_path, png_path
