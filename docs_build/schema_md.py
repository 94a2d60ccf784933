"""A pydantic model's JSON schema as Markdown: each field's type in words and the comment that explains it."""

from __future__ import annotations

import ast
import inspect
import io
import json
import tokenize
import typing

from pydantic import BaseModel

from docs_build.md_table import cell


def models_from(*roots: type[BaseModel]) -> dict[str, type[BaseModel]]:
    """Every pydantic model reachable from the roots' field annotations, by class name, the roots first."""
    found: list[type[BaseModel]] = []
    todo = list(roots)
    while todo:
        model = todo.pop(0)
        if model in found:
            continue
        found.append(model)
        for field in model.model_fields.values():
            todo += [t for t in _types_in(field.annotation) if isinstance(t, type) and issubclass(t, BaseModel)]
    return {model.__name__: model for model in found}


def _types_in(annotation) -> list:
    args = typing.get_args(annotation)
    return [annotation] if not args else [t for arg in args for t in _types_in(arg)]


def type_of(prop: dict) -> str:
    """A schema's type in words, as a table cell: `integer`, `number or null`, `list of Verdict` (a link to its
    section), `"a" or "b"`."""
    if "$ref" in prop:
        name = prop["$ref"].rsplit("/", 1)[-1]
        return f"[{name}](#{name.lower()})"
    for key in ("anyOf", "oneOf"):
        if key in prop:
            return " or ".join(dict.fromkeys(type_of(option) for option in prop[key]))
    if "enum" in prop:
        return " or ".join(cell(json.dumps(value)) for value in prop["enum"])
    if "const" in prop:
        return cell(json.dumps(prop["const"]))
    kind = prop.get("type")
    if kind == "array":
        if "prefixItems" in prop:
            return r"\[" + ", ".join(type_of(p) for p in prop["prefixItems"]) + r"\]"
        return f"list of {type_of(prop.get('items', {}))}"
    if kind == "object" and isinstance(prop.get("additionalProperties"), dict):
        return f"object of {type_of(prop['additionalProperties'])}"
    if kind == "object" and prop.get("patternProperties"):
        (pattern, value), *_ = prop["patternProperties"].items()
        return f"object of {type_of(value)}, keys matching `{pattern}`"
    if isinstance(kind, list):
        return " or ".join(kind)
    return kind or "any"


BOUNDS = (("minimum", ">= {}"), ("exclusiveMinimum", "> {}"), ("maximum", "<= {}"), ("exclusiveMaximum", "< {}"),
          ("minItems", "at least {} items"), ("maxItems", "at most {} items"), ("minLength", "at least {} long"),
          ("maxLength", "at most {} long"), ("const", "only {}"))


def allowed(prop: dict) -> str:
    """A field's bounds in words (`>= 0, <= 2`), from whichever type of a union carries them."""
    options = prop.get("anyOf") or prop.get("oneOf") or [prop]
    found = [text.format(json.dumps(option[key])) for option in options for key, text in BOUNDS if key in option]
    return cell(", ".join(dict.fromkeys(found)))


def field_comments(cls: type[BaseModel]) -> dict[str, str]:
    """Each field of `cls` (its own and its bases') and the comment that explains it: on the field's line, or the
    lines just above it."""
    found: dict[str, str] = {}
    for base in reversed(cls.__mro__):  # a subclass's comment wins over its base's
        if isinstance(base, type) and issubclass(base, BaseModel) and base is not BaseModel:
            found.update(_own_comments(base))
    return found


def _own_comments(cls: type) -> dict[str, str]:
    source = inspect.getsource(cls)
    comments = {token.start[0]: token.string.lstrip("#").strip()
                for token in tokenize.generate_tokens(io.StringIO(source).readline)
                if token.type == tokenize.COMMENT}
    lines = source.splitlines()
    found = {}
    body = ast.parse(source).body[0]
    assert isinstance(body, ast.ClassDef)
    for node in body.body:
        if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)):
            continue
        text = comments.get(node.end_lineno or node.lineno)
        if text is None:  # a block of whole-line comments right above the field
            above, line = [], node.lineno - 1
            while line in comments and lines[line - 1].lstrip().startswith("#"):
                above.insert(0, comments[line])
                line -= 1
            text = " ".join(above) or None
        if text:
            found[node.target.id] = text
    return found
