"""report --html: the audit summary as one self-contained page (no script, no external file).

An inline SVG bar chart of the daily counts (done and failed side by side, or stacked when
there are many days; a y axis with round ticks and grid lines, day labels thinned out so they
never overlap, a legend, a tooltip per bar), then the
same tables as the terminal report. Every piece of text is made visible first (a control or
bidi character in a file name becomes its escape, ``\x1b``, ``\u202e``: pipeline/terminal.py),
then HTML-escaped: file names and reasons are data, not markup. Colours are a colour-blind-safe
blue/orange pair.
"""

from __future__ import annotations

import math
from html import escape as _html_escape

from pipeline import timefmt
from pipeline.terminal import visible


def escape(text: object) -> str:
    """``text`` as HTML text or attribute value: nothing in it is markup or a control
    character (quotes escaped too)."""
    return _html_escape(visible(text), quote=True)


DONE_COLOUR, FAILED_COLOUR = "#1f6fb4", "#e07b00"
PLOT_HEIGHT, LEFT, TOP, BOTTOM, RIGHT = 260, 64, 44, 78, 24


def render(doc: dict) -> str:
    """The whole page for a report object from :func:`pipeline.report.summarize`."""
    since = f" since {escape(doc['since'])}" if doc["since"] else ""
    totals = doc["totals"]
    lat = doc["drop_to_done"]
    body = [
        f"<h1>Redox pipeline report{since}</h1>",
        f"<p class=meta>Generated {escape(doc['generated_at'])} from {escape(doc['config'])}. "
        "Days are UTC days of when each file finished.</p>",
        f"<p class=totals><b>{totals['done']}</b> done &middot; <b>{totals['failed']}</b> failed "
        f"&middot; drop to done: median <b>{escape(timefmt.duration(lat['median_seconds']))}</b>, "
        f"worst <b>{escape(timefmt.duration(lat['worst_seconds']))}</b>"
        + (f" ({escape(lat['worst_file'])})" if lat["worst_file"] else "") + "</p>",
        "<h2>Files per day</h2>",
        chart(doc["days"]),
        "<h2>Per day</h2>",
        _table(["Day (UTC)", "Done", "Failed"], [[d["day"], d["done"], d["failed"]] for d in doc["days"]]),
        "<h2>Per DataModel</h2>",
        _table(["DataModel", "Done", "Failed"],
               [[m["data_model"], m["done"], m["failed"]] for m in doc["data_models"]]),
        "<h2>Per route</h2>",
        _table(["Route", "Done", "Failed"], [[r["route"], r["done"], r["failed"]] for r in doc.get("routes", [])]),
        "<h2>Failure reasons, most frequent first</h2>",
        _table(["Count", "Kind", "Reason"],
               [[r["count"], r["reason_kind"], r["reason"]] for r in doc["reasons"]]),
    ]
    if doc.get("delivery"):
        d = doc["delivery"]
        keys = ("delivered", "filtered", "failed", "gave_up", "pending", "unchecked")
        body += ["<h2>Delivery confirmation (per Log ID)</h2>",
                 _table([k.replace("_", " ").capitalize() for k in keys], [[d.get(k, 0) for k in keys]])]
    return PAGE.replace("{body}", "\n".join(body))


def chart(days: list[dict]) -> str:
    """An SVG bar chart of done/failed per day (a sentence when there is no data).

    Up to about 60 days the two counts stand side by side; with more days the bars get too
    thin for that and are stacked (failed on top of done) instead.
    """
    if not days:
        return "<p>No file finished in this period.</p>"
    plot_width = min(900.0, max(480.0, 64.0 * len(days)))
    group = plot_width / len(days)
    stacked = group < 15
    top = nice_max(max((d["done"] + d["failed"]) if stacked else max(d["done"], d["failed"])
                       for d in days))
    width, height = LEFT + plot_width + RIGHT, TOP + PLOT_HEIGHT + BOTTOM
    parts = [f'<svg class=chart role="img" aria-label="Files done and failed per day" '
             f'width="{width:.0f}" height="{height}" viewBox="0 0 {width:.0f} {height}" '
             f'xmlns="http://www.w3.org/2000/svg" font-family="sans-serif" font-size="12">']
    parts += _y_axis(top, width)
    every = max(1, math.ceil(46 / group))     # a slanted day label needs about 46 px
    for i, d in enumerate(days):
        parts += _bars(d, LEFT + i * group, group, top, stacked)
        if i % every == 0:
            cx, cy = LEFT + i * group + group / 2, TOP + PLOT_HEIGHT + 14
            parts.append(f'<text x="{cx:.1f}" y="{cy}" text-anchor="end" '
                         f'transform="rotate(-40 {cx:.1f} {cy})">{escape(d["day"])}</text>')
    parts += _legend(width, stacked)
    parts.append(f'<text x="{LEFT + plot_width / 2:.0f}" y="{height - 6}" '
                 'text-anchor="middle" font-weight="bold">Day (UTC)</text>')
    parts.append("</svg>")
    return "\n".join(parts)


def _bars(day: dict, left: float, group: float, top: int, stacked: bool) -> list[str]:
    """One day's bars (each with a tooltip), with its counts above them when there is room."""
    bar = min(40.0, group * (0.7 if stacked else 0.36))
    x0 = left + (group - (bar if stacked else 2 * bar)) / 2
    parts, base = [], TOP + PLOT_HEIGHT
    for j, (key, colour) in enumerate((("done", DONE_COLOUR), ("failed", FAILED_COLOUR))):
        h = PLOT_HEIGHT * day[key] / top
        x = x0 if stacked else x0 + j * bar
        y = (base - h) if stacked else TOP + PLOT_HEIGHT - h
        parts.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" height="{h:.1f}" '
                     f'fill="{colour}"><title>{escape(day["day"])}: {day[key]} {key}</title></rect>')
        if stacked:
            base = y
        elif day[key] and bar >= 12:
            parts.append(f'<text x="{x + bar / 2:.1f}" y="{y - 4:.1f}" text-anchor="middle" '
                         f'font-size="11">{day[key]}</text>')
    return parts


def nice_max(value: int) -> int:
    """The smallest 1, 2 or 5 times a power of ten that is at least ``value`` (at least 1)."""
    if value <= 1:
        return 1
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if step * power >= value:
            return step * power
    return 10 * power  # pragma: no cover


def _y_axis(top: int, width: float) -> list[str]:
    """Grid lines and labels at five (or fewer, for small counts) round ticks, and the axes."""
    ticks = min(5, top)
    parts = []
    for k in range(ticks + 1):
        value = top * k / ticks
        y = TOP + PLOT_HEIGHT - PLOT_HEIGHT * k / ticks
        label = f"{value:.0f}" if value == int(value) else f"{value:.1f}"
        parts.append(f'<line x1="{LEFT}" x2="{width - RIGHT:.0f}" y1="{y:.1f}" y2="{y:.1f}" '
                     f'stroke="{"#444" if k == 0 else "#ddd"}"/>')
        parts.append(f'<text x="{LEFT - 8}" y="{y + 4:.1f}" text-anchor="end">{label}</text>')
    parts.append(f'<line x1="{LEFT}" x2="{LEFT}" y1="{TOP}" y2="{TOP + PLOT_HEIGHT}" stroke="#444"/>')
    mid = TOP + PLOT_HEIGHT / 2
    parts.append(f'<text x="16" y="{mid:.0f}" text-anchor="middle" font-weight="bold" '
                 f'transform="rotate(-90 16 {mid:.0f})">Files</text>')
    return parts


def _legend(width: float, stacked: bool) -> list[str]:
    x = width - RIGHT - 170
    parts = []
    failed = "failed (stacked)" if stacked else "failed"
    if stacked:
        x -= 60
    for j, (label, colour) in enumerate((("done", DONE_COLOUR), (failed, FAILED_COLOUR))):
        lx = x + j * 85
        parts.append(f'<rect x="{lx:.0f}" y="12" width="14" height="14" fill="{colour}"/>')
        parts.append(f'<text x="{lx + 20:.0f}" y="24">{label}</text>')
    return parts


def _table(header: list[str], rows: list[list]) -> str:
    if not rows:
        return "<p>None.</p>"
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(
        f'<td class="{"num" if isinstance(c, int) else ""}">{escape(str(c))}</td>' for c in row)
        + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Redox pipeline report</title>
<style>
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 24px; color: #222; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 17px; margin: 28px 0 8px; }
.meta { color: #666; margin: 0 0 12px; } .totals { font-size: 15px; }
table { border-collapse: collapse; font-size: 14px; }
th, td { border-bottom: 1px solid #ddd; padding: 4px 12px; text-align: left; }
th { background: #f3f3f3; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
svg.chart { max-width: 100%; height: auto; font-family: inherit; }
svg.chart text { font-family: inherit; }
</style>
</head>
<body>
{body}
</body>
</html>
"""
