"""API keys, as vLLM and llama-server check them: every `/v1/*` route (and `/metrics` where asked) needs
`Authorization: Bearer <key>`; `/health` and `/openapi.json` stay open for load balancers and clients.

Keys are kept only as SHA-256 digests and every one is compared (`hmac.compare_digest` on equal-length
digests), so neither the answer's time nor the process's memory tells how much of a guess was right.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import dataclass

from starlette.datastructures import Headers
from starlette.middleware import Middleware

from paretoserve.openai_api.protocol import ApiError

ENV_VAR = "PARETOSERVE_API_KEY"  # read by `engine` and `serve` when no --api-key is given, as vLLM reads VLLM_API_KEY
CLIENT_SCOPE_KEY = "paretoserve.client"  # the scope entry naming which key a request came with (per-client limits)
LABEL_HEX = 8  # a key's name in metrics: this many hex digits of its SHA-256, as `sha256sum` prints it


@dataclass(frozen=True)
class ApiKeys:
    """The keys a server accepts (none: no check), and whether `/metrics` needs one too."""

    digests: tuple[bytes, ...] = ()
    metrics: bool = False  # off by default: scrapers and bench's sampler read counts, never prompts or outputs

    @classmethod
    def of(cls, keys: Iterable[str], metrics: bool = False) -> "ApiKeys":
        return cls(tuple(_digest(k) for k in keys), metrics)

    @classmethod
    def from_hex(cls, digests: Iterable[str], metrics: bool = False) -> "ApiKeys":
        """The keys of these SHA-256 hex digests (`hex_digests`: how a Ray config carries them, never a key)."""
        return cls(tuple(bytes.fromhex(d) for d in digests), metrics)

    @property
    def hex_digests(self) -> tuple[str, ...]:
        return tuple(d.hex() for d in self.digests)

    def __bool__(self) -> bool:
        return bool(self.digests)

    def guards(self, path: str) -> bool:
        """Whether a request for `path` must bring a key."""
        return bool(self.digests) and (path == "/v1" or path.startswith("/v1/")
                                       or (self.metrics and path == "/metrics"))

    def match(self, authorization: str | None) -> int | None:
        """The index of the key an `Authorization` header carries, or None; every key is compared."""
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer":
            return None
        digest = _digest(token.strip())
        found = None
        for index, known in enumerate(self.digests):
            if hmac.compare_digest(known, digest):
                found = index
        return found

    def label(self, index: int) -> str:
        """The name of key number `index` in metrics: 'key-' and the first hex digits of its SHA-256, never the key."""
        return self._labels[index]

    @functools.cached_property
    def _labels(self) -> tuple[str, ...]:  # made once, not on every request
        return tuple("key-" + digest.hex()[:LABEL_HEX] for digest in self.digests)


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def unauthorized(authorization: str | None) -> ApiError:
    """OpenAI's 401 for a missing or wrong key; the message never repeats what the client sent."""
    message = ("no API key: send it as 'Authorization: Bearer <key>'" if not authorization
               else "incorrect API key provided")
    return ApiError(401, message, code="invalid_api_key", headers={"WWW-Authenticate": "Bearer"})


class RequireApiKey:
    """ASGI middleware: a guarded path without a known key gets the 401; a known one is noted in the scope."""

    def __init__(self, app, keys: ApiKeys) -> None:
        self.app, self.keys = app, keys

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http" and self.keys.guards(scope["path"]):
            authorization = Headers(scope=scope).get("authorization")
            index = self.keys.match(authorization)
            if index is None:
                await unauthorized(authorization).response()(scope, receive, send)
                return
            scope[CLIENT_SCOPE_KEY] = self.keys.label(index)
        await self.app(scope, receive, send)


def auth_middleware(keys: ApiKeys) -> list[Middleware]:
    """The middleware that checks `keys` (none without keys), to go inside the error handling."""
    return [Middleware(RequireApiKey, keys=keys)] if keys else []
