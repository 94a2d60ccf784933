"""How fast the bench load generator itself can go: open-loop request rate, schedule lag, client cost.

A stub OpenAI-compatible server (raw asyncio streams, HTTP/1.1 keep-alive, started as a separate
subprocess on a free port) answers at once: /v1/models, /metrics, and /v1/completions both plain
JSON and streamed (one SSE event per output token, a usage event, then `data: [DONE]`, chunked).
`paretoserve.bench.runner.run_bench` then drives it in open-loop mode (`mode="rate"`) with constant
and Poisson arrivals for --duration seconds per run, text prompts of --input-tokens words and
`energy="none"`. The load generator always streams, so every run is a streamed request:
the "open-loop" runs ask for --output-tokens (default 1: one text event), the "streaming" runs for
--stream-tokens (default 8 text events). One line per run prints what run_bench measured:
offered rate, achieved completed req/s (`request_throughput`), schedule_lag_p99_ms,
client_overhead_p50_ms, client_cpu_fraction, failed, and whether the target holds.

    python benchmarks/loadgen_capacity.py [--rates 250,500,1000,2000] [--stream-rates 500,1000]
                                          [--duration 3] [--output-tokens 1] [--stream-tokens 8] [--warnings]

Targets (issue 3): >= 2,000 req/s open loop with schedule_lag_p99_ms < 5 ms; >= 1,000 streaming req/s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from paretoserve.engine_process import EngineProcess, free_port

MODEL = "stub"
LAG_TARGET_MS = 5.0
RATE_TARGET, STREAM_TARGET = 2000.0, 1000.0
TOLERANCE = 0.97  # achieved/offered counted as "sustained" (Poisson runs vary by a few percent)


# -- the stub server (runs in its own process) ---------------------------------------------------

def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def _event(obj: dict | str) -> bytes:
    body = obj if isinstance(obj, str) else json.dumps(obj, separators=(",", ":"))
    return _chunk(b"data: " + body.encode() + b"\n\n")


def _plain(status: str, ctype: str, body: bytes) -> bytes:
    return (f"HTTP/1.1 {status}\r\ncontent-type: {ctype}\r\ncontent-length: {len(body)}\r\n\r\n").encode() + body


MODELS = _plain("200 OK", "application/json", json.dumps(
    {"object": "list", "data": [{"id": MODEL, "object": "model", "owned_by": "loadgen-capacity-stub"}]}).encode())
METRICS = _plain("200 OK", "text/plain; version=0.0.4", b"# stub\nstub_up 1\n")
NOT_FOUND = _plain("404 Not Found", "application/json", b'{"error":{"message":"not found"}}')


def _completion(body: bytes) -> list[bytes]:
    req = json.loads(body or b"{}")
    n_out = max(1, min(int(req.get("max_tokens") or 1), 64))
    usage = {"prompt_tokens": len(str(req.get("prompt", "")).split()), "completion_tokens": n_out,
             "total_tokens": 0}
    if not req.get("stream"):
        out = {"id": "c", "object": "text_completion", "model": MODEL, "usage": usage,
               "choices": [{"index": 0, "text": " x" * n_out, "finish_reason": "length"}]}
        return [_plain("200 OK", "application/json", json.dumps(out).encode())]
    parts = [b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"]
    for i in range(n_out):
        parts.append(_event({"id": "c", "object": "text_completion", "model": MODEL, "choices": [
            {"index": 0, "text": " x", "finish_reason": "length" if i == n_out - 1 else None}]}))
    parts += [_event({"id": "c", "object": "text_completion", "model": MODEL, "choices": [], "usage": usage}),
              _event("[DONE]"), b"0\r\n\r\n"]
    return parts


async def _serve_conn(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, path = lines[0].split(" ")[:2]
            length = next((int(h.split(":", 1)[1]) for h in lines[1:] if h.lower().startswith("content-length:")), 0)
            body = await reader.readexactly(length) if length else b""
            path = path.split("?")[0]
            if path == "/v1/completions" and method == "POST":
                for part in _completion(body):  # one write per SSE event, as a streaming server would
                    writer.write(part)
            elif path == "/v1/models":
                writer.write(MODELS)
            elif path == "/metrics":
                writer.write(METRICS)
            else:
                writer.write(NOT_FOUND)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
        pass
    finally:
        writer.close()


async def _serve(port: int) -> None:
    server = await asyncio.start_server(_serve_conn, "127.0.0.1", port, backlog=4096)
    async with server:
        await server.serve_forever()


# -- the measurement ---------------------------------------------------------------------------------

def _run(url: str, rate: float, arrival: str, n_out: int, args: argparse.Namespace) -> dict:
    from paretoserve.bench.config import BenchConfig, TokenRange
    from paretoserve.bench.runner import run_bench

    cfg = BenchConfig(url=url, served_model_name=MODEL, input_tokens=TokenRange(args.input_tokens, args.input_tokens),
                      output_tokens=TokenRange(n_out, n_out), prompt_format="text", tokenizer="none",
                      duration_s=args.duration, mode="rate", rate=rate, arrival=arrival, seed=args.seed,
                      energy="none", request_timeout_s=30.0)
    return asyncio.run(run_bench(cfg))


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rates", default="250,500,1000,2000", help="open-loop offered rates, req/s")
    ap.add_argument("--stream-rates", default="500,1000", help="streaming offered rates, req/s")
    ap.add_argument("--arrivals", default="constant,poisson")
    ap.add_argument("--duration", type=float, default=3.0, help="seconds of arrivals per run")
    ap.add_argument("--input-tokens", type=int, default=4)
    ap.add_argument("--output-tokens", type=int, default=1, help="text events per open-loop response")
    ap.add_argument("--stream-tokens", type=int, default=8, help="text events per streaming response")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--warnings", action="store_true", help="also print run_bench's warnings for each run")
    ap.add_argument("--serve", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve is not None:
        asyncio.run(_serve(args.serve))
        return

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with EngineProcess([sys.executable, __file__, "--serve", str(port)], url, health_path="/v1/models") as server:
        server.wait_healthy(15)
        plan = [("open", float(r), a, args.output_tokens)
                for r in args.rates.split(",") for a in args.arrivals.split(",")]
        plan += [("stream", float(r), a, args.stream_tokens) for r in args.stream_rates.split(",")
                 for a in args.arrivals.split(",")]
        print(f"stub server pid {server.proc.pid} at {url}; {args.duration:g} s of arrivals per run; "
              f"client pid and server share this machine's cores")
        print(f"{'kind':6} {'arrival':8} {'events':>6} {'offered/s':>9} {'achieved/s':>10} {'lag_p99_ms':>10} "
              f"{'ovh_p50_ms':>10} {'client_cpu':>10} {'srv_cores':>9} {'failed':>6}  target")
        for kind, rate, arrival, n_out in plan:
            res = _run(url, rate, arrival, n_out, args)
            achieved, lag = res["request_throughput"], res["schedule_lag_p99_ms"]
            cpu, failed = res["client_cpu_fraction"], res["failed"]
            sustained = achieved is not None and achieved >= TOLERANCE * rate and failed == 0
            if kind == "open":
                prompt = lag is not None and lag < LAG_TARGET_MS
                verdict = ("lag<5ms" if prompt else "LAG>=5ms") + (" sustained" if sustained else " NOT sustained")
                if rate >= RATE_TARGET:
                    verdict += "  => target " + ("MET" if sustained and prompt else "MISSED")
            else:
                verdict = "sustained" if sustained else "NOT sustained"
                if rate >= STREAM_TARGET:
                    verdict += "  => target " + ("MET" if sustained else "MISSED")
            print(f"{kind:6} {arrival:8} {n_out:>6} {rate:>9.0f} {_fmt(achieved, '.0f'):>10} {_fmt(lag, '.2f'):>10} "
                  f"{_fmt(res['client_overhead_p50_ms'], '.3f'):>10} {_fmt(cpu, '.2f'):>10} "
                  f"{_fmt(res['engine_cpu_cores'], '.2f'):>9} {failed:>6}  {verdict}", flush=True)
            for w in res["warnings"] if args.warnings else []:
                print(f"    warning: {w}")


if __name__ == "__main__":
    main()
