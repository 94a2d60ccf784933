"""The routes every OpenAI-compatible server of ours answers: the engine (app.py), the router (serve/router.py) and
the Ray ingress (serve/ray_ingress.py), each handled by the method of the same name."""

from __future__ import annotations

from typing import Any, Callable

from starlette.routing import Route


def api_routes(api: Any, metrics: Callable) -> list[Route]:
    """`api`'s completions, chat, models, model, health and openapi handlers on their paths; `metrics` on /metrics."""
    return [
        Route("/v1/completions", api.completions, methods=["POST"]),
        Route("/v1/chat/completions", api.chat, methods=["POST"]),
        Route("/v1/models", api.models, methods=["GET"]),
        Route("/v1/models/{model_id:path}", api.model, methods=["GET"]),
        Route("/health", api.health, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/openapi.json", api.openapi, methods=["GET"]),
    ]
