"""What is behind the URL: the served model, whether it is a paretoserve engine, and its local process."""

from __future__ import annotations

import ipaddress
from dataclasses import asdict, dataclass
from urllib.parse import urlsplit

import httpx
import psutil

from paretoserve.bench.access import Access

BUNDLED_MODEL_NAME = "gemma-3-270m-q4_k_m"  # what `paretoserve engine --model default` serves
DEFAULT_ALIAS = "default"  # the engine's alias of its model, and a multi-model router's of its first
LOCAL_HOSTS = {"localhost", "0.0.0.0", "::"}


class EndpointError(Exception):
    """The URL does not answer like an OpenAI-compatible server; the message names --url."""


@dataclass(frozen=True)
class ServerInfo:
    model: str | None  # the model asked for where /v1/models lists it, else the first it lists
    owned_by: str | None
    max_model_len: int | None  # context per sequence, where the server says (paretoserve, vLLM)

    @property
    def ours(self) -> bool:
        """A paretoserve engine: it accepts prompts as token ids and `ignore_eos`."""
        return self.owned_by == "paretoserve"

    def to_dict(self) -> dict:
        return {**asdict(self), "paretoserve": self.ours}


async def probe(base_url: str, timeout_s: float = 10.0, access: Access | None = None,
                model: str | None = None) -> ServerInfo:
    """GET /v1/models: the entry of `model` (a router serving several models lists each with its own owner and
    context length), else the first, which is also what `default` names; a server without it is still
    benchmarked (model unknown); one that refuses the key is an EndpointError naming --api-key."""
    access = access or Access()
    async with httpx.AsyncClient(base_url=base_url.rstrip("/"), timeout=timeout_s, trust_env=False,
                                 headers=access.headers(), verify=access.ssl_context()) as client:
        try:
            response = await client.get("/v1/models")
        except httpx.HTTPError as exc:
            raise EndpointError(f"--url: nothing answers at {base_url} ({type(exc).__name__}: {exc})") from exc
    if response.status_code in (401, 403):
        given = "the --api-key given" if access.api_key is not None else "no --api-key"
        raise EndpointError(f"--url {base_url} answers {response.status_code} with {given}: give the server's key "
                            "with --api-key")
    if response.status_code != 200:
        return ServerInfo(None, None, None)
    try:
        listed = response.json().get("data") or [{}]
        first = listed[0]
        entry = next((e for e in listed if isinstance(e, dict) and e.get("id") == model), first) \
            if model not in (None, DEFAULT_ALIAS) else first
        length = entry.get("max_model_len")
    except (ValueError, AttributeError, IndexError, TypeError):
        return ServerInfo(None, None, None)
    return ServerInfo(entry.get("id"), entry.get("owned_by"), length if isinstance(length, int) else None)


def local_port(url: str) -> int | None:
    """The port of a URL on this machine, else None."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    try:
        local = host in LOCAL_HOSTS or ipaddress.ip_address(host).is_loopback
    except ValueError:
        local = False
    if not local:
        return None
    return parts.port or (443 if parts.scheme == "https" else 80)


def listening_pids(port: int) -> tuple[int, ...]:
    """Processes listening on a local TCP port (needs no privileges for one's own processes)."""
    try:
        conns = psutil.net_connections(kind="tcp")
    except (psutil.Error, OSError):
        return ()
    return tuple(sorted({c.pid for c in conns if c.status == psutil.CONN_LISTEN and c.laddr
                         and c.laddr.port == port and c.pid}))
