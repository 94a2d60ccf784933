"""reference/http-api.md's generated parts: the routes, statuses and request bodies from the OpenAPI documents the
engine and the router serve at /openapi.json, and the metric names from their Prometheus registries."""

from __future__ import annotations

import json

from docs_build.md_table import cell, code, table
from docs_build.schema_md import allowed, field_comments, models_from, type_of

BODIES = ("CompletionRequest", "ChatRequest")  # the request bodies, before the objects nested in them
SHARED_STATUSES = {"MethodNotAllowed": "405"}  # the document's shared responses (components.responses), by status


def http_reference() -> str:
    """Routes (which statuses the engine and the router answer on each), what each status means, and every
    request object's fields."""
    from paretoserve.openai_api.openapi import openapi_document
    from paretoserve.openai_api.protocol import ChatRequest, CompletionRequest

    engine = openapi_document("paretoserve engine", router=False)
    router = openapi_document("paretoserve router", router=True)
    rows, meanings = [], {}
    for path, methods in router["paths"].items():
        for method, operation in methods.items():
            ours = engine["paths"].get(path, {}).get(method, {}).get("responses", {})
            theirs = operation["responses"]
            for status, response in theirs.items():  # the generation routes come first and say the most
                meanings.setdefault(status, response["description"])
            rows.append([code(f"{method.upper()} {path}"), cell(operation.get("summary", "")),
                         ", ".join(sorted(ours)), ", ".join(sorted(theirs))])
    for name, response in router["components"].get("responses", {}).items():  # answers of no listed operation
        meanings.setdefault(SHARED_STATUSES[name], response["description"])
    out = ["## Routes", "", table(["route", "what", "engine answers", "router answers"], rows),
           "## Statuses", "", "Every error body is the `Error` object below, `{\"error\": {\"message\", \"type\", "
           "\"param\", \"code\"}}`.", "",
           table(["status", "when"], [[s, cell(meanings[s])] for s in sorted(meanings) if s >= "400"])]
    schemas = router["components"]["schemas"]
    classes = models_from(CompletionRequest, ChatRequest)
    for name in [*BODIES, *(n for n in schemas if n not in BODIES)]:
        out += [f"## {name}", "", schemas[name].get("description", ""), ""]
        comments = field_comments(classes[name]) if name in classes else {}
        out.append(_fields(schemas[name], comments))
    return "\n".join(out)


def _fields(schema: dict, comments: dict[str, str]) -> str:
    required = set(schema.get("required", ()))
    rows = [[code(field), type_of(prop), "required" if field in required else _default(prop), allowed(prop),
             cell(prop.get("description") or comments.get(field, ""))]
            for field, prop in schema.get("properties", {}).items()]
    return table(["field", "type", "default", "allowed", "meaning"], rows)


def _default(prop: dict) -> str:
    return code(json.dumps(prop["default"])) if "default" in prop else ""


def metrics_reference() -> str:
    """The engine's and the router's own metrics: name as scraped, type and help."""
    from prometheus_client import generate_latest

    from paretoserve.engine.metrics import EngineMetrics
    from paretoserve.serve.metrics import RouterMetrics

    out = []
    for title, registry in (("The engine's metrics (`paretoserve engine`, each replica)",
                             EngineMetrics("MODEL").registry),
                            ("The router's own metrics (`paretoserve serve`)", RouterMetrics([]).registry)):
        out += [f"### {title}", "", table(["metric", "type", "what"], _metrics(generate_latest(registry).decode()))]
    return "\n".join(out)


def _metrics(text: str) -> list[list[str]]:
    """Rows of (name as scraped, type, help) from the Prometheus text format's HELP and TYPE lines, the client
    library's `_created` series left out."""
    helps, types = {}, {}
    for line in text.splitlines():
        words = line.split(" ", 3)
        if line.startswith("# HELP "):
            helps[words[2]] = words[3] if len(words) > 3 else ""
        elif line.startswith("# TYPE "):
            types[words[2]] = words[3]
    return [[code(name), kind, cell(helps.get(name, ""))]
            for name, kind in types.items() if not name.endswith("_created")]
