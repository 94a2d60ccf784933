"""The package's layers (ARCHITECTURE.md): each part imports only the parts listed for it, so none imports a
part above it and no cycle can form."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "paretoserve"

# What each top-level part may import, lowest layer first; ARCHITECTURE.md draws the same table.
ALLOWED: dict[str, set[str]] = {
    "limits": set(),
    "gguf_header": set(),
    "engine_process": set(),
    "model": {"limits"},
    "geometry": {"gguf_header", "limits", "model"},
    "engine": {"gguf_header", "limits"},
    "hf_export": {"engine", "limits", "model"},
    "results": {"geometry", "limits", "model"},
    "presets": {"engine", "engine_process", "geometry", "hf_export", "limits", "model"},
    "openai_api": {"engine"},
    "bench": {"engine", "limits", "model"},
    "estimate": {"engine", "geometry", "limits", "model", "results"},
    "serve": {"engine", "engine_process", "hf_export", "limits", "model", "openai_api", "presets"},
    "advise": {"bench", "engine", "estimate", "hf_export", "limits", "model", "presets", "results"},
    "report": {"advise", "limits", "results"},
    "sweep": {"advise", "bench", "engine", "engine_process", "estimate", "geometry", "limits", "presets", "results",
              "serve"},
    "tune": {"advise", "bench", "engine", "limits", "presets", "report", "results", "sweep"},
}
TOP = {"cli"}  # the command line may import anything


def part(path: Path) -> str:
    return path.relative_to(PACKAGE).parts[0].removesuffix(".py")


def imported_parts(path: Path) -> set[str]:
    """The top-level parts of `paretoserve` that a file imports, relative imports resolved."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = path.relative_to(PACKAGE.parent).with_suffix("").parts[:-node.level]
                names = [".".join((*base, node.module or ""))]
            elif node.module:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        found |= {n.split(".")[1] for n in names if n.startswith("paretoserve.")}
    return found - {"__version__"}


def test_every_part_is_in_the_table():
    parts = {part(p) for p in PACKAGE.rglob("*.py")} - {"__init__", "__main__"}
    assert parts == set(ALLOWED) | TOP


@pytest.mark.parametrize("name", sorted(ALLOWED))
def test_a_part_imports_only_the_layers_below_it(name):
    files = [p for p in PACKAGE.rglob("*.py") if part(p) == name]
    wrong = {f"{f.relative_to(PACKAGE)} imports {other}" for f in files for other in imported_parts(f)
             if other != name and other not in ALLOWED[name]}
    assert not wrong


def test_the_table_has_no_cycle():
    order = list(ALLOWED)  # lowest first: everything a part may import comes before it
    for i, name in enumerate(order):
        assert ALLOWED[name] <= set(order[:i]), name


if __name__ == "__main__":  # `python tests/test_layers.py`: the graph as it is, each part and what it imports
    graph = {name: set() for name in sorted(set(ALLOWED) | TOP)}
    for path in PACKAGE.rglob("*.py"):
        if part(path) in graph:
            graph[part(path)] |= imported_parts(path) - {part(path)}
    for name, imported in graph.items():
        print(f"{name} -> {', '.join(sorted(imported)) or '-'}")
