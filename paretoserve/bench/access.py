"""How bench reaches a server beyond plain localhost: its API key, and which TLS certificates it trusts.

One TLS context serves every client bench opens (aiohttp for the load, httpx for the probe and /metrics),
so the load and the sampler trust the same certificates.
"""

from __future__ import annotations

import functools
import ssl
from dataclasses import dataclass, field
from pathlib import Path

from paretoserve.limits import UserError


class AccessError(UserError):
    """A key or certificate setting bench cannot use; the message names the flag."""


@dataclass(frozen=True)
class Access:
    """The bearer key sent with every request (None: none) and the TLS trust of an https:// URL."""

    api_key: str | None = field(default=None, repr=False)  # never in a repr, a log or a result file
    ca_file: str | None = None  # PEM bundle to trust instead of the system's (a self-signed server's certificate)
    insecure: bool = False  # no certificate check at all

    def __post_init__(self) -> None:
        if self.api_key is not None and (not self.api_key.strip() or self.api_key != self.api_key.strip()):
            raise AccessError("--api-key must be non-empty and without surrounding spaces")
        if self.ca_file is not None and self.insecure:
            raise AccessError("--ca-file and --insecure contradict each other: give one")
        if self.ca_file is not None and not Path(self.ca_file).is_file():
            raise AccessError(f"--ca-file: no such file {self.ca_file!r}")

    def check_url(self, url: str) -> None:
        """TLS flags on an http:// URL are a mistake worth naming."""
        if (self.ca_file is not None or self.insecure) and not url.startswith("https://"):
            raise AccessError(f"--ca-file and --insecure apply to an https:// --url; got {url!r}")

    def headers(self) -> dict[str, str]:
        """The Authorization header, where there is a key."""
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key is not None else {}

    def ssl_context(self) -> ssl.SSLContext:
        """The trust of every https connection: the system's, `ca_file`'s, or none with `insecure`; made once."""
        return self._context

    @functools.cached_property
    def _context(self) -> ssl.SSLContext:
        try:
            context = ssl.create_default_context(cafile=self.ca_file)
        except (ssl.SSLError, OSError) as exc:
            raise AccessError(f"--ca-file {self.ca_file}: not a PEM certificate bundle ({exc})") from exc
        if self.insecure:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context
