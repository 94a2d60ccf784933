"""Markdown tables whose cells hold any text: help lines, schema descriptions, code spans."""

from __future__ import annotations

import re

CODE_SPAN = re.compile(r"(`[^`]*`)")
# Outside code spans these would start HTML, emphasis or a new cell; inside, Markdown shows them as they are.
ESCAPES = {"\\": "\\\\", "|": r"\|", "<": "&lt;", ">": "&gt;", "*": r"\*", "_": r"\_", "[": r"\[", "]": r"\]"}


def cell(text: object) -> str:
    """`text` as one table cell: on one line, with Markdown's special characters shown as written."""
    parts = CODE_SPAN.split(" ".join(str(text).split()))
    return "".join(part if part.startswith("`") else "".join(ESCAPES.get(c, c) for c in part) for part in parts)


def code(text: object) -> str:
    """`text` as an inline code span (backticks inside it made safe by a longer fence)."""
    text = str(text)
    fence = "``" if "`" in text else "`"
    return f"{fence} {text} {fence}" if fence == "``" else f"`{text}`"


def table(header: list[str], rows: list[list[str]]) -> str:
    """A Markdown table; the cells are already Markdown (see `cell`, `code`)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"
