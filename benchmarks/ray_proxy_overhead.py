"""What Ray Serve's proxy adds, next to our router and a direct connection, against the same stub engine.

One run measures, with router_overhead.py's raw-asyncio client and load (one connection closed loop for
p50 / p99; --connections keep-alive connections for --duration seconds for req/s), non-streamed and
streamed (--stream-tokens SSE events):

- direct: the stub engine of loadgen_capacity.py (its own process, answers at once);
- router: `paretoserve serve --no-pin` with the stub as its one replica;
- ray relay: Ray Serve's proxy -> one replica hosting our router app over the stub (what `serve --backend ray
  --engine llama-server|vllm|sglang` runs: Ray's hop plus our relay);
- ray ingress: Ray Serve's proxy -> one replica whose ASGI app answers itself (what `serve --backend ray` does
  with the embedded engine: no second HTTP hop), next to the same Starlette app under uvicorn alone.

Ray runs locally (`ray.init(address="local", num_cpus=2)`, no dashboard, usage stats off) with the settings
that matter for latency: max_ongoing_requests 1024 (the default of 5 would queue 27 of 32 connections at the
proxy), access log off (on, each request writes a log line in the replica), num_cpus 0 for the replica.
`--ray-env NAME=VALUE` sets Ray Serve environment flags for the whole run (e.g.
RAY_SERVE_RUN_USER_CODE_IN_SEPARATE_THREAD=0). Client, router, stub and Ray share this machine's cores.

    python benchmarks/ray_proxy_overhead.py [--requests 1000] [--connections 32] [--duration 3] [--stream-tokens 8]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from router_overhead import STUB, latencies, pct, rate  # noqa: E402

from paretoserve.cli.common import stop_on_sigterm  # noqa: E402
from paretoserve.engine_process import free_port  # noqa: E402
from paretoserve.serve import ReplicaServer, ServeConfig  # noqa: E402

DEPLOYMENT = {"num_replicas": 1, "max_ongoing_requests": 1024, "ray_actor_options": {"num_cpus": 0}}
LOGGING = {"log_level": "WARNING", "enable_access_log": False}


def relay_app(stub_url: str):
    """serve.ingress's builder: our router over the stub, built in the replica."""
    def build():
        from paretoserve.serve.backends import StaticReplica
        from paretoserve.serve.config import RouterConfig
        from paretoserve.serve.router import build_router
        return build_router([StaticReplica(0, stub_url)], RouterConfig(resume_streams=False))
    return build


def answering_app():
    """A Starlette app that answers completions at once, in the stub's shapes (JSON, or SSE events)."""
    import json as json_

    from starlette.applications import Starlette
    from starlette.responses import Response, StreamingResponse
    from starlette.routing import Route

    async def completions(request):
        req = await request.json()
        n_out = max(1, min(int(req.get("max_tokens") or 1), 64))
        usage = {"prompt_tokens": 1, "completion_tokens": n_out, "total_tokens": n_out + 1}
        if not req.get("stream"):
            return Response(json_.dumps({"id": "c", "object": "text_completion", "model": "stub", "usage": usage,
                                         "choices": [{"index": 0, "text": " x" * n_out, "finish_reason": "length"}]}),
                            media_type="application/json")

        async def events():
            for i in range(n_out):
                yield "data: " + json_.dumps({"id": "c", "object": "text_completion", "model": "stub", "choices": [
                    {"index": 0, "text": " x", "finish_reason": "length" if i == n_out - 1 else None}]}) + "\n\n"
            yield "data: " + json_.dumps({"id": "c", "choices": [], "usage": usage}) + "\n\n" + "data: [DONE]\n\n"
        return StreamingResponse(events(), media_type="text/event-stream")

    return Starlette(routes=[Route("/v1/completions", completions, methods=["POST"])])


@contextlib.contextmanager
def uvicorn_app(app, port: int):
    """`app` under uvicorn alone, in a thread of this process (the ray-ingress baseline)."""
    import uvicorn
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error", access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    try:
        yield
    finally:
        server.should_exit = True
        thread.join(10)


def deploy_on_ray(stub_url: str, port: int) -> None:
    import ray
    from ray import serve
    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="WARNING")
    serve.start(proxy_location="HeadOnly", http_options={"host": "127.0.0.1", "port": port}, logging_config=LOGGING)
    relay = serve.deployment(serve.ingress(relay_app(stub_url))(), name="relay", **DEPLOYMENT)
    answer = serve.deployment(serve.ingress(answering_app)(), name="answer", **DEPLOYMENT)
    serve.run(relay.bind(), name="relay", route_prefix="/relay", logging_config=LOGGING)
    serve.run(answer.bind(), name="answer", route_prefix="/answer", logging_config=LOGGING)


def row(name: str, values: dict[str, float], spec: str) -> str:
    return f"{name:44}" + "".join(f"{format(v, spec):>13}" for v in values.values())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=1000, help="sequential requests per latency run")
    ap.add_argument("--connections", type=int, default=32, help="connections of the throughput run")
    ap.add_argument("--duration", type=float, default=3.0, help="seconds per throughput run")
    ap.add_argument("--stream-tokens", type=int, default=8, help="SSE events of a streamed answer")
    ap.add_argument("--ray-env", action="append", default=[], metavar="NAME=VALUE",
                    help="a Ray Serve environment flag for this run (repeatable)")
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, stop_on_sigterm)
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    for item in args.ray_env:
        name, _, value = item.partition("=")
        os.environ[name] = value

    plan = ServeConfig(replicas=1, pin=False, health_path="/v1/models",
                       engine_cmd=f"{sys.executable} {STUB} --serve {{port}}")
    ray_port, app_port = free_port(), free_port()
    with ReplicaServer(plan) as server:
        server.wait_healthy(60)
        stub_url = server.refresh()["replicas"][0]["url"]
        started = time.monotonic()
        deploy_on_ray(stub_url, ray_port)
        print(f"Ray Serve up in {time.monotonic() - started:.1f} s; client, router, stub and Ray share "
              f"{len(os.sched_getaffinity(0))} cores; flags: {' '.join(args.ray_env) or 'defaults'}")
        # (name, port, path prefix): the path prefix is Ray's route_prefix, which the proxy strips
        targets = {"direct": (int(stub_url.rsplit(":", 1)[1]), ""), "router": (server.port, ""),
                   "ray relay": (ray_port, "/relay"), "app alone": (app_port, ""), "ray ingress": (ray_port, "/answer")}
        plain = json.dumps({"prompt": "hello", "max_tokens": 1}).encode()
        streamed = json.dumps({"prompt": "hello", "max_tokens": args.stream_tokens, "stream": True}).encode()
        import ray
        from ray import serve
        try:
            with uvicorn_app(answering_app(), app_port):
                print(f"{'run':44}" + "".join(f"{name:>13}" for name in targets))
                for kind, body in (("non-streamed", plain), (f"streamed ({args.stream_tokens} events)", streamed)):
                    lat = {name: asyncio.run(latencies(port, body, args.requests, prefix))
                           for name, (port, prefix) in targets.items()}
                    for q in (0.5, 0.99):
                        print(row(f"{kind} p{int(q * 100)} ms, 1 connection",
                                  {n: pct(v, q) for n, v in lat.items()}, ".3f"), flush=True)
                for kind, body in (("non-streamed", plain), ("streamed", streamed)):
                    rates = {name: asyncio.run(rate(port, body, args.connections, args.duration, prefix))
                             for name, (port, prefix) in targets.items()}
                    print(row(f"{kind} req/s, {args.connections} connections", rates, ",.0f"), flush=True)
        finally:
            serve.shutdown()
            ray.shutdown()


if __name__ == "__main__":
    main()
