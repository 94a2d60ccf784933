"""The HTML skeleton and its small building blocks; everything inline, so the page needs no network."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from html import escape
from string import Template

PAGE = Template("""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>$title</title>
<style>
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 1.5em auto; padding: 0 1em; color: #222; }
h1 { font-size: 1.5em; }
h2 { font-size: 1.2em; border-bottom: 1px solid #ccc; padding-bottom: .2em; margin-top: 1.6em; }
table { border-collapse: collapse; font-size: .85em; margin: .5em 0; }
th, td { border: 1px solid #ddd; padding: .25em .5em; text-align: right; }
th { background: #f3f3f3; } td.text, th.text { text-align: left; }
pre { background: #f6f6f6; padding: .6em; overflow-x: auto; font-size: .85em; white-space: pre-wrap; }
figure { margin: .8em 0; } figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { font-size: .8em; color: #666; }
.estimated { background: #fff3cd; border: 1px solid #e0b000; padding: .4em .6em; font-weight: bold; }
.missing { color: #8a4b00; } .headline { font-size: 1.1em; }
</style>
</head>
<body>
<h1>$title</h1>
$body
</body>
</html>
""")


@dataclass(frozen=True)
class Plot:
    """One rendered plot: its file name beside the report, its PNG bytes and a description for alt text."""

    file_name: str
    png: bytes
    description: str


def page(title: str, sections: list[str]) -> str:
    """The whole document around the already-rendered sections."""
    return PAGE.substitute(title=escape(title), body="\n".join(sections))


def section(anchor: str, heading: str, *parts: str) -> str:
    return f'<section id="{escape(anchor)}">\n<h2>{escape(heading)}</h2>\n' + "\n".join(parts) + "\n</section>"


def paragraph(text: str, css_class: str | None = None) -> str:
    """A paragraph of plain text (escaped)."""
    attribute = f' class="{css_class}"' if css_class else ""
    return f"<p{attribute}>{escape(text)}</p>"


def image(plot: Plot) -> str:
    """The plot as an embedded PNG (data URI) with its file name as caption."""
    data = base64.b64encode(plot.png).decode("ascii")
    return (f'<figure><img src="data:image/png;base64,{data}" alt="{escape(plot.description)}">'
            f"<figcaption>{escape(plot.description)} ({escape(plot.file_name)})</figcaption></figure>")


def preformatted(text: str) -> str:
    return f"<pre>{escape(text)}</pre>"


def table(headers: list[str] | None, rows: list[list], text_columns: tuple[int, ...] = (0,)) -> str:
    """A table whose columns at `text_columns` are left-aligned text and the rest right-aligned numbers;
    headers None for a list of names and values."""
    def cell(tag: str, i: int, value) -> str:
        css = ' class="text"' if i in text_columns else ""
        return f"<{tag}{css}>{escape(fmt(value))}</{tag}>"

    head = "<tr>" + "".join(cell("th", i, h) for i, h in enumerate(headers)) + "</tr>\n" if headers else ""
    body = "\n".join("<tr>" + "".join(cell("td", i, v) for i, v in enumerate(row)) + "</tr>" for row in rows)
    return f"<table>\n{head}{body}\n</table>"


def fmt(value) -> str:
    """Numbers to four significant digits (integers whole), None as a dash."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"
    return str(value)


def gigabytes(size_bytes: float | None) -> str:
    """Bytes as GB; '-' when unknown (None, or 'unknown' in a sweep imported before it was None)."""
    return f"{size_bytes / 1e9:.2f} GB" if isinstance(size_bytes, (int, float)) else "-"


def percent(fraction: float | None) -> str:
    return "-" if fraction is None else f"{fraction:.2%}"
