"""mkdocs hooks (mkdocs.yml `hooks:`): a line `<!-- generated: NAME -->` in a page becomes the Markdown that
NAME's generator writes from the code, at every build, so the reference cannot drift from the code."""

from __future__ import annotations

import re
import sys
from pathlib import Path

from mkdocs.exceptions import PluginError

# mkdocs loads this file by its path, with only its own folder importable: the generators are the `docs_build`
# package at the repository root.
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from docs_build import advice_reference, architecture, cli_reference, http_reference  # noqa: E402

MARKER = re.compile(r"^<!-- generated: ([a-z-]+) -->$", re.M)


def _generators() -> dict:
    """Each marker name and the function that writes its Markdown."""
    return {
        "cli": cli_reference.cli_reference,
        "sweep-directory": lambda: architecture.sweep_directory(ROOT / "ARCHITECTURE.md"),
        "http-api": http_reference.http_reference,
        "metrics": http_reference.metrics_reference,
        "advice-json": advice_reference.advice_reference,
    }


def on_page_markdown(markdown: str, page, config, files) -> str:
    """Replace every marker of the page with its generated Markdown; an unknown name fails the build."""
    generators = _generators()

    def generated(match: re.Match) -> str:
        name = match.group(1)
        if name not in generators:
            raise PluginError(f"{page.file.src_uri}: no generator {name!r} (known: {', '.join(generators)})")
        return generators[name]()

    return MARKER.sub(generated, markdown)
