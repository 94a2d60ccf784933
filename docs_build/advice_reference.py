"""reference/advice-json.md: advice.json's fields, from the pydantic model that writes it (`Advice`).

Types and defaults come from the model's JSON schema; what a field means comes from its description where it
has one, else from the comment on its line (or just above it) in the model's class, where the code keeps it.
"""

from __future__ import annotations

from docs_build.md_table import cell, code, table
from docs_build.schema_md import field_comments, models_from, type_of


def advice_reference() -> str:
    """One section per model, `Advice` (the file's top level) first, then each nested model where it first
    appears; every field with its type and its meaning (model_dump writes every field, null where unset)."""
    from paretoserve.advise.advice import Advice

    schema = Advice.model_json_schema()
    defs = schema.get("$defs", {})
    classes = models_from(Advice)
    paths = _paths(schema, defs)
    out = []
    for name, model_schema in [("Advice", schema), *((n, defs[n]) for n in paths if n != "Advice")]:
        where = ", ".join(code(p) for p in paths.get(name, []))
        out += [f"## {name}", "", model_schema.get("description", ""), ""]
        if where:
            out += [f"Found at {where}.", ""]
        comments = field_comments(classes[name]) if name in classes else {}
        rows = [[code(field), type_of(prop), cell(prop.get("description") or comments.get(field, ""))]
                for field, prop in model_schema.get("properties", {}).items()]
        out.append(table(["field", "type", "meaning"], rows))
    return "\n".join(out)


def _paths(schema: dict, defs: dict) -> dict[str, list[str]]:
    """Each model's name and the JSON paths it appears at (`replica_plan.options[]`), in the file's order."""
    paths: dict[str, list[str]] = {"Advice": []}

    def visit(node: object, path: str) -> None:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str):
                name = ref.rsplit("/", 1)[-1]
                first = name not in paths
                paths.setdefault(name, []).append(path)
                if first:
                    visit(defs[name], path)
                return
            for key, value in node.items():
                if key == "properties":
                    for field, prop in value.items():
                        visit(prop, f"{path}.{field}" if path else field)
                elif key in ("items", "additionalProperties"):
                    visit(value, path + ("[]" if key == "items" else "{}"))
                elif key in ("anyOf", "oneOf", "allOf", "prefixItems"):
                    for option in value:
                        visit(option, path)
    visit({k: v for k, v in schema.items() if k != "$defs"}, "")
    return paths


