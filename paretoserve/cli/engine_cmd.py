"""`paretoserve engine`: one embedded engine behind the OpenAI-compatible HTTP API."""

from __future__ import annotations

import argparse
import socket
import sys
import threading
from dataclasses import replace

import uvicorn

from paretoserve.cli import examples
from paretoserve.cli.access_args import add_access_args, api_keys, check_tls, warn_if_open
from paretoserve.cli.common import add_engine_args, add_model_args, add_server_args, bind_port, engine_config
from paretoserve.engine.core import Engine
from paretoserve.engine.llama_load import resolve_repack
from paretoserve.openai_api.app import ServerConfig, build_app
from paretoserve.openai_api.auth import ApiKeys


def add_parser(subparsers, help: str) -> None:
    parser = subparsers.add_parser("engine", help=help, description=help,
                                   epilog=examples("paretoserve engine --max-batch 16 --port 8000"))
    add_model_args(parser)
    add_engine_args(parser)
    add_server_args(parser)
    add_access_args(parser.add_argument_group("access"))
    parser.add_argument("--max-body-bytes", type=int, default=ServerConfig.max_body_bytes,
                        help="largest request body accepted (default: %(default)s)")
    parser.add_argument("--log-level", default="warning", choices=["debug", "info", "warning", "error"])
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    keys, scheme = api_keys(args), check_tls(args)  # a bad key or a missing file is one line before the port is taken
    sock = bind_port(args.host, args.port)  # a taken port is refused before the model loads; uvicorn serves on it
    try:
        return _serve(args, sock, keys, scheme)
    finally:
        sock.close()


def _serve(args: argparse.Namespace, sock: socket.socket, keys: ApiKeys, scheme: str) -> int:
    choice = resolve_repack(args.repack)
    config = replace(engine_config(args), repack=choice.mode)  # resolved once, so the banner says what loads
    port = sock.getsockname()[1]  # the port bound, also when --port 0 asked for any free one
    engine = Engine(config, verbose=args.log_level == "debug")
    engine.start()
    app = build_app(engine, ServerConfig(host=args.host, port=port, max_body_bytes=args.max_body_bytes, api_keys=keys))
    print(f"paretoserve engine: {config.model_name} on {scheme}://{args.host}:{port} "
          f"(max_batch={config.max_batch}, kv_tokens={config.kv_tokens}, ctx_per_seq={config.ctx_per_seq}, "
          f"kv_layout={config.kv_layout}, threads={config.threads}, repack={choice.mode}: {choice.reason})",
          file=sys.stderr, flush=True)
    warn_if_open("engine", args.host, keys)
    server = uvicorn.Server(uvicorn.Config(app, host=args.host, port=port, log_level=args.log_level,
                                           access_log=False, ssl_keyfile=args.ssl_keyfile,
                                           ssl_certfile=args.ssl_certfile))
    threading.Thread(target=_exit_on_load_failure, args=(engine, server), daemon=True).start()
    try:
        server.run(sockets=[sock])
    finally:
        engine.stop()
    if engine.load_error is not None:
        print(f"paretoserve engine: the model failed to load: {engine.load_error}", file=sys.stderr)
        return 1
    return 0


def _exit_on_load_failure(engine: Engine, server: uvicorn.Server) -> None:
    """Stop serving when the model cannot load, instead of answering 503 forever."""
    engine.ready.wait()
    if engine.load_error is not None:
        server.should_exit = True
