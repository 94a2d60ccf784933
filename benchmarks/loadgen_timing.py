"""How punctual the bench load generator is: sends against their plan, and latencies against a server's script.

The load generator (paretoserve/bench/loadgen.py) drives an in-process fake OpenAI server (Starlette under
uvicorn, in a thread of this process) whose streams wait `ttft` before their first token and `itl` between
tokens. Each line prints one figure and the target tests/bench/test_loadgen.py held it to until tests stopped
depending on a quiet machine (the tests now check orderings and lower bounds only):

- closed loop, N = 3 and 20, 4N requests: how long after an end its worker's next request went out
  (median and max; target max < 50 ms);
- rate mode, 40 req/s Poisson, 20 requests: send time minus planned time (median; target < 20 ms);
- a trace of 7 requests at 0-500 ms: arrival at the server minus planned offset (max |error|; target 50 ms);
- burst of 16: the last send after t = 0 (target < 400 ms);
- concurrency 2, ttft 80 ms, itl 20 ms, 6 tokens: median TTFT, TPOT, ITL and E2EL against the script
  (targets within 20, 6, 6 and 30 ms).

    python benchmarks/loadgen_timing.py [--repeats 3]

Run it on a quiet machine: the figures are the client's own punctuality, and a busy machine adds its delays.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import threading
import time

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Route

from paretoserve.bench.config import TokenRange
from paretoserve.bench.loadgen import ClientPool, LoadGenerator, LoadPattern, RequestBuilder
from paretoserve.bench.summary import latency_fields
from paretoserve.bench.workload import RequestSpec, synthetic
from paretoserve.engine_process import free_port


class Script:
    """The fake server's delays, and when each request arrived (perf_counter)."""

    def __init__(self) -> None:
        self.ttft_s = self.itl_s = 0.0
        self.arrivals: list[float] = []


def start_server(script: Script) -> tuple[str, uvicorn.Server]:
    async def completions(request: Request) -> StreamingResponse:
        script.arrivals.append(time.perf_counter())
        n = (await request.json()).get("max_tokens", 1)

        async def stream():
            await asyncio.sleep(script.ttft_s)
            for i in range(n):
                if i:
                    await asyncio.sleep(script.itl_s)
                choice = {"index": 0, "text": "tok ", "finish_reason": "length" if i == n - 1 else None}
                yield f"data: {json.dumps({'choices': [choice]})}\n\n"
            usage = {"prompt_tokens": 8, "completion_tokens": n, "total_tokens": 8 + n}
            yield f"data: {json.dumps({'choices': [], 'usage': usage})}\n\ndata: [DONE]\n\n"

        return StreamingResponse(stream(), media_type="text/event-stream")

    port = free_port()
    app = Starlette(routes=[Route("/v1/completions", completions, methods=["POST"])])
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error", access_log=False,
                                           lifespan="off"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.01)
    return f"http://127.0.0.1:{port}", server


def drive(url: str, pattern: LoadPattern, specs: list[RequestSpec]):
    async def go():
        pool = ClientPool(url, 64, 60.0)
        try:
            return await LoadGenerator(pool, RequestBuilder("completions", None, True, 0.0), specs, pattern).run()
        finally:
            await pool.aclose()

    return asyncio.run(go())


def specs(n: int, n_out: int) -> list[RequestSpec]:
    return synthetic(n, TokenRange(8, 8), TokenRange(n_out, n_out), seed=1, as_ids=True)


def line(name: str, value_ms: float, target_ms: float, what: str) -> None:
    print(f"{name:<52} {value_ms:8.2f} ms  target {what} {target_ms:g} ms  "
          f"{'met' if value_ms < target_ms else 'MISSED'}", flush=True)


def refill(url: str, script: Script, n: int) -> None:
    script.ttft_s, script.itl_s = 0.05, 0.005
    records = drive(url, LoadPattern("concurrency", n, requests=4 * n), specs(4 * n, 4)).records
    ends = sorted(r.end_s for r in records)
    lags = [r.sent_s - max(e for e in ends if e <= r.sent_s) for r in sorted(records, key=lambda r: r.sent_s)[n:]]
    line(f"closed loop N={n}: refill lag max (median {1e3 * statistics.median(lags):.2f} ms)", 1e3 * max(lags),
         50, "<")


def rate(url: str, script: Script) -> None:
    script.ttft_s = script.itl_s = 0.0
    records = drive(url, LoadPattern("rate", rate=40.0, arrival="poisson", seed=3, requests=20), specs(20, 2)).records
    lags = [r.sent_s - r.intended_s for r in records]
    line("rate 40/s Poisson: send lag median", 1e3 * statistics.median(lags), 20, "<")


def trace(url: str, script: Script) -> None:
    script.ttft_s = script.itl_s = 0.0
    offsets = [0.0, 0.04, 0.04, 0.15, 0.3, 0.31, 0.5]
    planned = [RequestSpec(prompt=tuple(range(8)), input_tokens=8, output_tokens=2, at_s=t) for t in offsets]
    script.arrivals.clear()
    drive(url, LoadPattern("trace"), planned)
    arrived = [t - script.arrivals[0] for t in script.arrivals]
    line("trace of 7: arrival error max", 1e3 * max(abs(a - p) for a, p in zip(arrived, offsets, strict=True)),
         50, "<")


def burst(url: str, script: Script) -> None:
    script.ttft_s, script.itl_s = 0.5, 0.0
    records = drive(url, LoadPattern("burst", requests=16), specs(16, 1)).records
    line("burst of 16: last send", 1e3 * max(r.sent_s for r in records), 400, "<")


def latencies(url: str, script: Script) -> None:
    script.ttft_s, script.itl_s = 0.08, 0.02
    fields = latency_fields(drive(url, LoadPattern("concurrency", 2, requests=6), specs(6, 6)).records)
    for name, scripted, tolerance in (("ttft", 80, 20), ("tpot", 20, 6), ("itl", 20, 6), ("e2el", 180, 30)):
        line(f"latency: median {name} - scripted {scripted} ms", abs(fields[f"median_{name}_ms"] - scripted),
             tolerance, "|error| <")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    script = Script()
    url, server = start_server(script)
    try:
        for run in range(1, args.repeats + 1):
            print(f"-- run {run}")
            refill(url, script, 3)
            refill(url, script, 20)
            rate(url, script)
            trace(url, script)
            burst(url, script)
            latencies(url, script)
    finally:
        server.should_exit = True


if __name__ == "__main__":
    main()
