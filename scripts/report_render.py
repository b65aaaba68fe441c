"""Rendering shared by the command-line reports: a plain terminal table and a self-contained HTML page whose charts
are inline SVG (no script, no stylesheet or font from elsewhere: the file opens anywhere, offline)."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

Row = Sequence[object]


def money(minor: int | None, currency: str | None = "RUB") -> str:
    """12345678 → '123 456.78 RUB' (a space between thousands, like the CRM's timeline); no currency: '123 456.78'."""
    if minor is None:
        return "-"
    sign = "-" if minor < 0 else ""
    units, cents = divmod(abs(minor), 100)
    return f"{sign}{units:,}.{cents:02d}".replace(",", " ") + (f" {currency}" if currency else "")


def amounts(by_currency: dict[str, int]) -> str:
    return ", ".join(money(v, c) for c, v in sorted(by_currency.items())) or "-"


def percent(share: float | None) -> str:
    return "-" if share is None else f"{share * 100:.1f}%"


def duration(seconds: int | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def table(header: Row, rows: Sequence[Row]) -> str:
    """Columns padded to their widest cell; the first column left-aligned, the others right-aligned."""
    cells = [[str(c) for c in header], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]

    def line(row: list[str]) -> str:
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True)))

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(cells[0]), rule, *(line(r) for r in cells[1:])])


PALETTE = ("#2f6fdf", "#9aa5b1", "#2a9d5b", "#e07b39", "#8e5cd9", "#c94f6d", "#3aa6b9")


def bar_chart(title: str, series: Sequence[tuple[str, Sequence[tuple[str, float]]]], unit: str = "") -> str:
    """Grouped horizontal bars: for each label, one bar per series (e.g. this month and the previous one)."""
    labels = list(dict.fromkeys(label for _, values in series for label, _ in values))
    values = {(name, label): value for name, points in series for label, value in points}
    top = max([v for v in values.values()] + [0]) or 1
    bar, gap, left, width = 16, 10, 150, 360
    group = bar * len(series) + gap
    height = 30 + group * len(labels) + 24
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-label="{escape(title)}" '
        f'width="{left + width + 110}" height="{height}" font-family="sans-serif" font-size="12">',
        f'<text x="0" y="16" font-weight="bold">{escape(title)}</text>',
    ]
    for row, label in enumerate(labels):
        y0 = 30 + row * group
        parts.append(f'<text x="0" y="{y0 + bar * len(series) / 2 + 4}">{escape(label)}</text>')
        for index, (name, _) in enumerate(series):
            value = values.get((name, label), 0)
            length = width * value / top
            y = y0 + index * bar
            shown = f"{value:g}{unit}"
            parts.append(
                f'<rect x="{left}" y="{y}" width="{length:.1f}" height="{bar - 3}" '
                f'fill="{PALETTE[index % len(PALETTE)]}"><title>{escape(name)}: {escape(shown)}</title></rect>'
            )
            parts.append(f'<text x="{left + length + 4:.1f}" y="{y + bar - 5}">{escape(shown)}</text>')
    legend_y = height - 8
    for index, (name, _) in enumerate(series):
        x = left + index * 140
        parts.append(f'<rect x="{x}" y="{legend_y - 9}" width="10" height="10" fill="{PALETTE[index]}"/>')
        parts.append(f'<text x="{x + 14}" y="{legend_y}">{escape(name)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def html_page(
    title: str, subtitle: str, header: Row, rows: Sequence[Row], charts: Sequence[str], notes: Sequence[str] = ()
) -> str:
    head = "".join(f"<th>{escape(str(c))}</th>" for c in header)
    body = "".join("<tr>" + "".join(f"<td>{escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    figures = "".join(f"<figure>{chart}</figure>" for chart in charts)
    listed = "<ul>" + "".join(f"<li>{escape(n)}</li>" for n in notes) + "</ul>" if notes else ""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body {{ font: 14px/1.4 system-ui, sans-serif; margin: 2rem auto; max-width: 60rem; color: #1d2733; padding: 0 1rem; }}
table {{ border-collapse: collapse; margin: 1rem 0; }}
th, td {{ padding: .3rem .8rem; border-bottom: 1px solid #d8dee4; text-align: right; white-space: nowrap;
  font-variant-numeric: tabular-nums; }}
th:first-child, td:first-child {{ text-align: left; }}
figure {{ margin: 1.5rem 0; }}
.sub {{ color: #5b6b7b; }}
</style></head><body>
<h1>{escape(title)}</h1><p class="sub">{escape(subtitle)}</p>
<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>
{listed}
{figures}
</body></html>
"""
