"""The OpenAPI 3.1 document of the engine's and the router's routes (`GET /openapi.json`).

The request schemas come from the pydantic models that validate the bodies, so they cannot drift;
two rules the models apply outside their field types are added here: null counts as absent (so every
optional field is nullable) and logit_bias takes no keys other than token ids.
"""

from __future__ import annotations

import copy

from pydantic.json_schema import models_json_schema

from paretoserve import __version__
from paretoserve.openai_api.protocol import ChatRequest, CompletionRequest

REF = "#/components/schemas/{model}"
ERROR = {"type": "object", "required": ["error"], "properties": {"error": {
    "type": "object", "required": ["message", "type", "param", "code"],
    "description": "what was refused and why, as OpenAI answers it",
    "properties": {"message": {"type": "string", "description": "the reason, in words"},
                   "type": {"type": "string", "description": "e.g. invalid_request_error, rate_limit_error"},
                   "param": {"type": ["string", "null"], "description": "the request field at fault"},
                   "code": {"type": ["string", "null"], "description": "e.g. invalid_api_key, model_not_found"}}}}}
ERROR_TEXT = {"400": "a malformed or unsupported request (`param` names the field)",
              "401": "with --api-key: no key or a wrong one, on /v1/* (and /metrics with --keyed-metrics)",
              "404": "an unknown model or route", "405": "a method the route does not take",
              "413": "a body over --max-body-bytes",
              "429": "the queue is full, or (router) the client is past its limit (Retry-After)",
              "500": "a bug (the message has a request id)", "502": "the replica failed before answering",
              "503": "loading, or no healthy replica (Retry-After)", "504": "the replica did not answer in time"}
HEADERS = {"401": {"WWW-Authenticate": {"description": "`Bearer`", "schema": {"type": "string"}}},
           "405": {"Allow": {"description": "the methods the path takes", "schema": {"type": "string"}}}}
DESCRIPTION = ("A method a path does not list (HEAD goes with GET) gets a 405: the Error object and an Allow header "
               "(components.responses.MethodNotAllowed). With --api-key every /v1/* route needs "
               "`Authorization: Bearer KEY`, else a 401.")


def openapi_document(title: str, router: bool) -> dict:
    """The document; the router's generation routes can also answer 502 and 504. Every /v1/* route lists the
    401 of --api-key, which the document cannot know is set; a 405 belongs to no listed operation, so it is a
    shared response that the description names."""
    _, defs = models_json_schema([(CompletionRequest, "validation"), (ChatRequest, "validation")], ref_template=REF)
    schemas = {name: _nullable_optionals(schema) for name, schema in defs["$defs"].items()}
    schemas["Error"] = ERROR
    generation_errors = ["400", "401", "404", "413", "429", "500", "503"] + (["502", "504"] if router else [])
    paths = {
        "/v1/completions": _generation("CompletionRequest", "text_completion", generation_errors),
        "/v1/chat/completions": _generation("ChatRequest", "chat.completion", generation_errors),
        "/v1/models": {"get": {"summary": "the served model", "responses": {
            "200": _json({"type": "object"}, "the model list"),
            **_errors(["401"] + (["500", "502", "503"] if router else []))}}},
        "/v1/models/{model_id}": {"get": {
            "summary": "one model (models.retrieve); `default` is an alias of the served one",
            "parameters": [{"name": "model_id", "in": "path", "required": True, "schema": {"type": "string"}}],
            "responses": {"200": _json({"type": "object"}, "the model"),
                          **_errors(["401", "404"] + (["500", "502", "503"] if router else []))}}},
        "/health": {"get": {"summary": "200 when ready to serve", "responses": {
            "200": _json({"type": "object"}, "ready"), "503": _json({"type": "object"}, "not ready")}}},
        "/metrics": {"get": {"summary": "Prometheus metrics", "responses": {
            "200": {"description": "Prometheus text", "content": {"text/plain": {"schema": {"type": "string"}}}},
            **_errors(["401"])}}},
        "/openapi.json": {"get": {"summary": "this document", "responses": {
            "200": _json({"type": "object"}, "OpenAPI 3.1")}}},
    }
    return {"openapi": "3.1.0", "info": {"title": title, "version": __version__, "description": DESCRIPTION},
            "paths": paths,
            "components": {"schemas": schemas, "responses": {"MethodNotAllowed": _errors(["405"])["405"]}}}


def _generation(schema: str, kind: str, errors: list[str]) -> dict:
    return {"post": {
        "summary": f"OpenAI-compatible {kind}",
        "requestBody": {"required": True,
                        "content": {"application/json": {"schema": {"$ref": REF.format(model=schema)}}}},
        "responses": {"200": {"description": f"the {kind}, or an SSE stream of chunks when `stream` is true",
                              "content": {"application/json": {"schema": {"type": "object"}},
                                          "text/event-stream": {"schema": {"type": "string"}}}},
                      **_errors(errors)}}}


def _json(schema: dict, description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(statuses: list[str]) -> dict:
    return {s: {**_json({"$ref": REF.format(model="Error")}, ERROR_TEXT[s]),
                **({"headers": HEADERS[s]} if s in HEADERS else {})} for s in statuses}


def _nullable_optionals(schema: dict) -> dict:
    """Every field that is not required also takes null; a map with key patterns takes no other keys."""
    schema = copy.deepcopy(schema)
    required = set(schema.get("required", ()))
    for name, prop in schema.get("properties", {}).items():
        if "patternProperties" in prop:
            prop.setdefault("additionalProperties", False)
        if name in required or {"type": "null"} in prop.get("anyOf", ()):
            continue
        meta = {k: prop.pop(k) for k in ("title", "default", "description") if k in prop}
        schema["properties"][name] = {"anyOf": [prop, {"type": "null"}], **meta}
    return schema
