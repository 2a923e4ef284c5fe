"""Histograms as standalone SVG: readable in any browser or image viewer, no JavaScript."""

from __future__ import annotations

from html import escape

from schemas.results import Histogram

WIDTH, HEIGHT = 480, 260
LEFT, RIGHT, TOP, BOTTOM = 56, 16, 36, 44


def histogram_svg(title: str, histogram: Histogram) -> str:
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    tallest = max(histogram.counts, default=0) or 1
    bar_w = plot_w / max(len(histogram.counts), 1)
    bars = []
    for i, count in enumerate(histogram.counts):
        h = plot_h * count / tallest
        lo, hi = histogram.edges[i], histogram.edges[i + 1]
        bars.append(
            f'<rect x="{LEFT + i * bar_w + 1:.1f}" y="{TOP + plot_h - h:.1f}" '
            f'width="{max(bar_w - 2, 1):.1f}" height="{h:.1f}" fill="#4878a8">'
            # The tooltip gives exact figures to anyone hovering, still without scripts.
            f"<title>{_number(lo)} to {_number(hi)}: {count:,}</title></rect>"
        )
    axis_y = TOP + plot_h
    return "\n".join(
        [
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
            f'viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="11" '
            f'role="img" aria-label="Histogram of {escape(title)}">',
            f'<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>',
            f'<text x="{LEFT}" y="20" font-size="13" font-weight="bold">{escape(title)}</text>',
            *bars,
            f'<line x1="{LEFT}" y1="{axis_y}" x2="{WIDTH - RIGHT}" y2="{axis_y}" stroke="#333"/>',
            f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{axis_y}" stroke="#333"/>',
            f'<text x="{LEFT - 4}" y="{TOP + 4}" text-anchor="end">{tallest:,}</text>',
            f'<text x="{LEFT - 4}" y="{axis_y}" text-anchor="end">0</text>',
            f'<text x="{LEFT}" y="{axis_y + 16}">{_number(histogram.edges[0])}</text>',
            f'<text x="{WIDTH - RIGHT}" y="{axis_y + 16}" text-anchor="end">'
            f"{_number(histogram.edges[-1])}</text>",
            f'<text x="{LEFT + plot_w / 2}" y="{HEIGHT - 8}" text-anchor="middle">'
            f"{sum(histogram.counts):,} values in {len(histogram.counts)} bins</text>",
            "</svg>",
            "",
        ]
    )


def _number(value: float) -> str:
    return f"{value:.6g}"
