"""reference/sweep-directory.md: the sweep directory's section of ARCHITECTURE.md, included as it stands."""

from __future__ import annotations

from pathlib import Path

SECTION = "## The sweep directory"


def sweep_directory(architecture: Path) -> str:
    """The section under `SECTION` up to the next `## ` heading, one heading level up (its `###` become `##`)."""
    lines = architecture.read_text(encoding="utf-8").splitlines()
    if SECTION not in lines:
        raise ValueError(f"{architecture}: no line {SECTION!r} to include in reference/sweep-directory.md")
    start = lines.index(SECTION) + 1
    end = next((i for i in range(start, len(lines)) if lines[i].startswith("## ")), len(lines))
    body, fenced = [], False
    for line in lines[start:end]:
        fenced ^= line.startswith("```")
        body.append(line[1:] if not fenced and line.startswith("###") else line)
    return "\n".join(body).strip() + "\n"
