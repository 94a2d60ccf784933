"""A stand-in engine process for sweep, launch and serve tests: /health, /metrics, /v1/models and a
minimal /v1/completions and /v1/chat/completions (plain JSON, or SSE with `"stream": true`).

    python fake_engine.py --port P [--max-batch B] [--health-delay S] [--never-healthy] [--crash-after S]
                          [--token-delay S] [--fail-status CODE] [--replica I --never-healthy-replica J] [--say TEXT]

--token-delay: seconds before each output token (streamed ones are sent as they come).
--fail-status: answer every generation request with this status (e.g. 503) instead.
--never-healthy-replica: behave as --never-healthy when --replica (serve's {replica}) equals it.
--crash-on-request: exit with status 3 on the first generation request (a crash a test can time).
--unhealthy-while PATH: when PATH exists at start, answer /health with 503 until PATH is removed (a restarted
replica a test keeps out of service while others, started before PATH was made, serve).
--say: print TEXT at start, as a real engine logs its start.
/metrics has fake_requests_total (generation requests received) and fake_pid.
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--max-batch", type=int, default=1)
    parser.add_argument("--health-delay", type=float, default=0.0)
    parser.add_argument("--never-healthy", action="store_true")
    parser.add_argument("--crash-after", type=float, default=None)
    parser.add_argument("--crash-on-request", action="store_true")
    parser.add_argument("--unhealthy-while", default=None)
    parser.add_argument("--token-delay", type=float, default=0.0)
    parser.add_argument("--fail-status", type=int, default=None)
    parser.add_argument("--replica", type=int, default=None)
    parser.add_argument("--never-healthy-replica", type=int, default=None)
    parser.add_argument("--say", default=None)
    args = parser.parse_args()
    if args.say is not None:
        print(args.say, flush=True)
    if args.replica is not None and args.replica == args.never_healthy_replica:
        args.never_healthy = True
    handler = handler_class(args)
    if args.crash_after is not None:
        threading.Timer(args.crash_after, lambda: os._exit(3)).start()
    server = ThreadingHTTPServer(("127.0.0.1", args.port), handler)
    server.daemon_threads = True
    server.serve_forever()


def handler_class(args: argparse.Namespace) -> type[BaseHTTPRequestHandler]:
    """The request handler of the engine `args` describe; its clock for --health-delay starts now."""
    born = time.monotonic()
    held = _existing(args.unhealthy_while)  # checked at start only: replicas started before it was made serve
    received = [0]
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as real engines do

        def log_message(self, *a) -> None:
            pass

        def _send(self, status: int, body: bytes, ctype: str = "application/json") -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _chunk(self, data: bytes) -> None:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()

        def do_GET(self) -> None:
            if self.path == "/health":
                ok = not args.never_healthy and time.monotonic() - born >= args.health_delay and not _exists(held)
                self._send(200 if ok else 503, b"{}")
            elif self.path == "/metrics":
                text = f"fake_max_batch {args.max_batch}\nfake_pid {os.getpid()}\nfake_requests_total {received[0]}\n"
                self._send(200, text.encode(), "text/plain")
            elif self.path == "/v1/models":
                self._send(200, json.dumps({"object": "list", "data": [
                    {"id": "fake-model", "object": "model", "owned_by": "fake", "pid": os.getpid()}]}).encode())
            else:
                self._send(404, b"{}")

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", 0))
            body = json.loads(self.rfile.read(length) or b"{}")
            _crash_if(args.crash_on_request)
            with lock:
                received[0] += 1
            if args.fail_status is not None:
                self._send(args.fail_status, json.dumps({"error": {"message": "scripted failure"}}).encode())
                return
            n = int(body.get("max_tokens") or 1)
            usage = {"prompt_tokens": 1, "completion_tokens": n, "total_tokens": n + 1}
            if not body.get("stream"):
                time.sleep(args.token_delay * n)
                self._send(200, json.dumps({"choices": [{"index": 0, "text": "x" * n, "finish_reason": "length"}],
                                            "usage": usage, "pid": os.getpid()}).encode())
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for i in range(n):
                time.sleep(args.token_delay)
                choice = {"index": 0, "text": "x", "finish_reason": "length" if i == n - 1 else None}
                self._chunk(b"data: " + json.dumps({"choices": [choice], "pid": os.getpid()}).encode() + b"\n\n")
            self._chunk(b"data: " + json.dumps({"choices": [], "usage": usage}).encode() + b"\n\n")
            self._chunk(b"data: [DONE]\n\n")
            self._chunk(b"")

    return Handler


def _existing(path: str | None) -> str | None:
    return path if path is not None and os.path.exists(path) else None


def _exists(path: str | None) -> bool:
    return path is not None and os.path.exists(path)


def _crash_if(crash: bool) -> None:
    if crash:
        os._exit(3)


if __name__ == "__main__":
    main()
