"""A stand-in engine process for sweep and launch tests: /health, /metrics and a minimal /v1/completions.

    python fake_engine.py --port P [--max-batch B] [--health-delay S] [--never-healthy] [--crash-after S]
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
    args = parser.parse_args()
    born = time.monotonic()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *a) -> None:
            pass

        def _send(self, status: int, body: bytes, ctype: str = "application/json") -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            if self.path == "/health":
                ok = not args.never_healthy and time.monotonic() - born >= args.health_delay
                self._send(200 if ok else 503, b"{}")
            elif self.path == "/metrics":
                self._send(200, f"fake_max_batch {args.max_batch}\nfake_pid {os.getpid()}\n".encode(), "text/plain")
            else:
                self._send(404, b"{}")

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", 0))
            body = json.loads(self.rfile.read(length) or b"{}")
            n = int(body.get("max_tokens", 1))
            self._send(200, json.dumps({"choices": [{"text": "x" * n, "finish_reason": "length"}],
                                        "usage": {"prompt_tokens": 1, "completion_tokens": n}}).encode())

    if args.crash_after is not None:
        threading.Timer(args.crash_after, lambda: os._exit(3)).start()
    ThreadingHTTPServer(("127.0.0.1", args.port), Handler).serve_forever()


if __name__ == "__main__":
    main()
