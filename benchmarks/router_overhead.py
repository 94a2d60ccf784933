"""What the replica router adds: latency at low load and the request rate it sustains, vs no router.

One stub engine that answers at once (the stub server of loadgen_capacity.py, its own process) is
started as the single replica of `paretoserve serve --no-pin` (the router, another process). The same
load is then sent, in the same run, straight to the stub and through the router:

- latency: one connection, one request after the other (closed loop), --requests each, non-streamed
  (one JSON answer) and streamed (--stream-tokens SSE events); p50 and p99, and their difference;
- throughput: --connections keep-alive connections for --duration seconds, completed requests/s.

The load comes from a minimal HTTP/1.1 client on raw asyncio streams in this process (~30 us of
CPU per request), because paretoserve's bench client costs more per request than the router does and
would measure itself. Client, router and stub share this machine's cores.

    python benchmarks/router_overhead.py [--requests 2000] [--connections 32] [--duration 3] [--stream-tokens 8]

Targets (issue 5): router adds p50 < 1 ms and p99 < 5 ms at low load; >= 1,500 req/s through the router.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import time
from pathlib import Path

import httpx

from paretoserve.cli.common import stop_on_sigterm
from paretoserve.serve import ReplicaServer, ServeConfig

STUB = Path(__file__).with_name("loadgen_capacity.py")
P50_TARGET_MS, P99_TARGET_MS, RATE_TARGET = 1.0, 5.0, 1500.0


class Connection:
    """One keep-alive HTTP/1.1 connection that sends a fixed POST and reads the whole answer."""

    def __init__(self, port: int, body: bytes, prefix: str = "") -> None:
        self.port = port  # prefix: a path ahead of /v1/completions (a Ray Serve route_prefix)
        self.request = (f"POST {prefix}/v1/completions HTTP/1.1\r\nhost: 127.0.0.1\r\n"
                        f"content-type: application/json\r\ncontent-length: {len(body)}\r\n\r\n").encode() + body

    async def open(self) -> "Connection":
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        return self

    async def send(self) -> float:
        """Seconds from sending the request to the answer's last byte."""
        started = time.perf_counter()
        self.writer.write(self.request)
        head = (await self.reader.readuntil(b"\r\n\r\n")).lower()
        if not head.startswith(b"http/1.1 200"):
            raise RuntimeError(f"unexpected answer: {head[:80]!r}")
        if b"content-length:" in head:
            await self.reader.readexactly(int(head.split(b"content-length:")[1].split(b"\r\n")[0]))
        else:  # chunked
            while size := int((await self.reader.readuntil(b"\r\n")).strip(), 16):
                await self.reader.readexactly(size + 2)
            await self.reader.readexactly(2)
        return time.perf_counter() - started

    def close(self) -> None:
        self.writer.close()


async def latencies(port: int, body: bytes, n: int, prefix: str = "") -> list[float]:
    conn = await Connection(port, body, prefix).open()
    try:
        for _ in range(50):  # warm-up: connection set-up and first-use costs stay out
            await conn.send()
        return sorted([await conn.send() for _ in range(n)])
    finally:
        conn.close()


async def rate(port: int, body: bytes, connections: int, duration_s: float, prefix: str = "") -> float:
    conns = [await Connection(port, body, prefix).open() for _ in range(connections)]
    stop_at = time.perf_counter() + duration_s
    done = [0]

    async def loop(conn: Connection) -> None:
        while time.perf_counter() < stop_at:
            await conn.send()
            done[0] += 1

    started = time.perf_counter()
    await asyncio.gather(*(loop(c) for c in conns))
    elapsed = time.perf_counter() - started
    for conn in conns:
        conn.close()
    return done[0] / elapsed


def pct(values: list[float], q: float) -> float:
    return 1000 * values[min(len(values) - 1, int(q * len(values)))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=2000, help="sequential requests per latency run")
    ap.add_argument("--connections", type=int, default=32, help="connections of the throughput run")
    ap.add_argument("--duration", type=float, default=3.0, help="seconds per throughput run")
    ap.add_argument("--stream-tokens", type=int, default=8, help="SSE events of a streamed answer")
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, stop_on_sigterm)  # unwinds through ReplicaServer, which stops its replicas

    plan = ServeConfig(replicas=1, pin=False, health_path="/v1/models",
                       engine_cmd=f"{sys.executable} {STUB} --serve {{port}}")
    with ReplicaServer(plan) as server:
        server.wait_healthy(60)
        stub_url = server.refresh()["replicas"][0]["url"]
        ports = {"direct": int(stub_url.rsplit(":", 1)[1]), "router": server.port}
        plain = json.dumps({"prompt": "hello", "max_tokens": 1}).encode()
        streamed = json.dumps({"prompt": "hello", "max_tokens": args.stream_tokens, "stream": True}).encode()
        print(f"stub engine {stub_url} (pid {server.replica_pids[0]}), router {server.base_url} (pid {server.pid}); "
              f"client, router and stub share this machine's cores")
        print(f"{'run':42} {'direct':>10} {'router':>10} {'added':>10}  target")
        for kind, body in (("non-streamed", plain), (f"streamed ({args.stream_tokens} events)", streamed)):
            lat = {name: asyncio.run(latencies(port, body, args.requests)) for name, port in ports.items()}
            for q, target in ((0.5, P50_TARGET_MS), (0.99, P99_TARGET_MS)):
                direct, routed = pct(lat["direct"], q), pct(lat["router"], q)
                added = routed - direct
                verdict = f"< {target:g} ms " + ("MET" if added < target else "MISSED")
                print(f"{kind + f' p{int(q * 100)} ms, 1 connection':42} {direct:>10.3f} {routed:>10.3f} "
                      f"{added:>10.3f}  {verdict}", flush=True)
        for kind, body in (("non-streamed", plain), ("streamed", streamed)):
            rates = {name: asyncio.run(rate(port, body, args.connections, args.duration))
                     for name, port in ports.items()}
            verdict = f">= {RATE_TARGET:,.0f} " + ("MET" if rates["router"] >= RATE_TARGET else "MISSED")
            print(f"{kind + f' req/s, {args.connections} connections':42} {rates['direct']:>10.0f} "
                  f"{rates['router']:>10.0f} {rates['router'] - rates['direct']:>10.0f}  "
                  f"{verdict if kind == 'non-streamed' else ''}", flush=True)
        router_metrics = httpx.get(server.base_url + "/metrics").text
    failed = [line for line in router_metrics.splitlines()
              if line.startswith("paretoserve_router_requests_total") and 'code="200"' not in line]
    if failed:
        print("router answers other than 200:", *failed, sep="\n  ")


if __name__ == "__main__":
    main()
