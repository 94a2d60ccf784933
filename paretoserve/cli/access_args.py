"""Who may reach a server that `engine` or `serve` starts, and how: API keys, the warning for an open address,
and TLS (uvicorn's, from a key and certificate file as vLLM's --ssl-keyfile / --ssl-certfile)."""

from __future__ import annotations

import argparse
import ipaddress
import os
import sys
from collections.abc import Mapping
from pathlib import Path

from paretoserve.cli.common import UsageError
from paretoserve.openai_api.auth import ENV_VAR, ApiKeys


def add_access_args(group) -> None:
    """--api-key (repeatable), --keyed-metrics, --ssl-keyfile and --ssl-certfile."""
    group.add_argument("--api-key", action="append", default=None, metavar="KEY",
                       help="clients must send 'Authorization: Bearer KEY' on every /v1/* route; repeat for several "
                            f"keys (default: ${ENV_VAR}, else none; /health stays open)")
    group.add_argument("--keyed-metrics", action="store_true",
                       help="/metrics needs a key too (default: open, for Prometheus and bench's sampler: it "
                            "shows counts, never prompts or outputs)")
    group.add_argument("--ssl-keyfile", default=None, metavar="PEM",
                       help="serve https with this private key (with --ssl-certfile)")
    group.add_argument("--ssl-certfile", default=None, metavar="PEM",
                       help="serve https with this certificate chain (with --ssl-keyfile)")


def api_keys(args: argparse.Namespace, environ: Mapping[str, str] = os.environ) -> ApiKeys:
    """The keys of --api-key, else of $PARETOSERVE_API_KEY; an empty or blank one is a UsageError naming its source."""
    given = args.api_key if args.api_key else [environ[ENV_VAR]] if environ.get(ENV_VAR) is not None else []
    source = "--api-key" if args.api_key else f"${ENV_VAR}"
    for key in given:
        if not key.strip() or key != key.strip():
            raise UsageError(f"{source}: a key must be non-empty and without surrounding spaces (the bearer header "
                             "would not carry it as given)")
    if args.keyed_metrics and not given:
        raise UsageError(f"--keyed-metrics needs a key: give --api-key or ${ENV_VAR}")
    return ApiKeys.of(given, metrics=args.keyed_metrics)


def check_tls(args: argparse.Namespace) -> str:
    """The scheme served: https when --ssl-keyfile and --ssl-certfile are given together (both existing files)."""
    files = {"--ssl-keyfile": args.ssl_keyfile, "--ssl-certfile": args.ssl_certfile}
    given = {flag: path for flag, path in files.items() if path is not None}
    if not given:
        return "http"
    if len(given) == 1:
        missing = next(flag for flag in files if flag not in given)
        raise UsageError(f"{next(iter(given))} needs {missing} too: TLS takes a private key and its certificate")
    for flag, path in given.items():
        if not Path(path).is_file():
            raise UsageError(f"{flag}: no such file {path!r}")
    return "https"


def is_loopback(host: str) -> bool:
    """Whether `host` binds only this machine's loopback (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name: it may resolve to anything


def warn_if_open(command: str, host: str, keys: ApiKeys) -> None:
    """One line on stderr when a server binds beyond loopback and anyone who reaches it may use it."""
    if not keys and not is_loopback(host):
        print(f"paretoserve {command}: warning: --host {host} without an API key: anyone who can reach this "
              f"address may use the model (give --api-key or ${ENV_VAR})", file=sys.stderr, flush=True)
