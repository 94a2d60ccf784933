"""`paretoserve demo`: start the engine on the bundled model, send concurrent requests, print throughput."""

from __future__ import annotations

import argparse
import asyncio
import time

import httpx

from paretoserve.cli import examples
from paretoserve.cli.common import UsageError, add_model_arg
from paretoserve.engine_process import EngineProcess, LaunchError, embedded_engine_cmd, free_port


def add_parser(subparsers, help: str) -> None:
    parser = subparsers.add_parser("demo", help=help, description=help,
                                   epilog=examples("paretoserve demo --concurrency 8"))
    add_model_arg(parser)
    parser.add_argument("--concurrency", type=int, default=8, help="requests sent at once (default: 8)")
    parser.add_argument("--output-tokens", type=int, default=64, help="tokens generated per request (default: 64)")
    parser.set_defaults(run=run)


async def _one(client: httpx.AsyncClient, prompt: str, max_tokens: int) -> dict:
    body = {"prompt": prompt, "max_tokens": max_tokens, "temperature": 0, "ignore_eos": True}
    response = await client.post("/v1/completions", json=body)
    response.raise_for_status()
    return response.json()


async def _drive(base_url: str, concurrency: int, max_tokens: int) -> tuple[float, list[dict]]:
    prompts = [f"Story {i}: once upon a time" for i in range(concurrency)]
    async with httpx.AsyncClient(base_url=base_url, timeout=600) as client:
        started = time.perf_counter()
        results = await asyncio.gather(*[_one(client, p, max_tokens) for p in prompts])
        return time.perf_counter() - started, results


def run(args: argparse.Namespace) -> int:
    if not 1 <= args.concurrency <= 256:
        raise UsageError(f"--concurrency must be in [1, 256]; got {args.concurrency}")
    if not 1 <= args.output_tokens <= 1024:
        raise UsageError(f"--output-tokens must be in [1, 1024]; got {args.output_tokens}")
    port = free_port()
    cmd = embedded_engine_cmd(port, "127.0.0.1", "--model", args.model, "--max-batch", str(args.concurrency),
                              "--ctx-per-seq", "256")
    print(f"starting the engine: {' '.join(cmd[2:])}")
    with EngineProcess(cmd, f"http://127.0.0.1:{port}") as engine:
        try:
            engine.wait_healthy()
        except LaunchError as exc:
            raise UsageError(str(exc)) from exc
        elapsed, results = asyncio.run(_drive(engine.base_url, args.concurrency, args.output_tokens))
    tokens = sum(r["usage"]["completion_tokens"] for r in results)
    print(f"{args.concurrency} concurrent requests, {tokens} tokens generated in {elapsed:.2f} s: "
          f"{tokens / elapsed:.1f} output tok/s")
    print(f"first completion: {results[0]['choices'][0]['text'][:120]!r}")
    return 0
