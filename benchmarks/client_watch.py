"""benchmarks/clients.py's measuring of a client: its process tree's CPU, the engine's, the machine's, and the
server's state, sampled together, and the span the server was busy with the client's requests."""

from __future__ import annotations

import contextlib
import threading
import time

import httpx
import psutil

SAMPLE_INTERVAL_S = 0.25


class TreeCpu:
    """CPU seconds (user + system) of a process and everything it started, as last seen alive."""

    def __init__(self, pid: int) -> None:
        self.root = psutil.Process(pid)
        self.seen: dict[tuple[int, float], float] = {}
        self.names: dict[tuple[int, float], str] = {}

    def sample(self) -> float:
        try:
            procs = [self.root, *self.root.children(recursive=True)]
        except psutil.Error:
            procs = []
        for p in procs:
            with contextlib.suppress(psutil.Error):
                key = (p.pid, p.create_time())
                t = p.cpu_times()
                self.seen[key] = t.user + t.system
                # Its command line as it is now: AIPerf's services retitle themselves after they start.
                self.names[key] = " ".join(p.cmdline())[:80].rstrip() or p.name()
        return sum(self.seen.values())

    def by_process(self, top: int = 8) -> dict[str, float]:
        """CPU seconds per command line, largest first."""
        out: dict[str, float] = {}
        for key, cpu in self.seen.items():
            out[self.names.get(key, "?")] = out.get(self.names.get(key, "?"), 0.0) + cpu
        return {name: round(cpu, 2) for name, cpu in sorted(out.items(), key=lambda kv: -kv[1])[:top]}


def server_state(client: httpx.Client, url: str) -> tuple[float, float] | None:
    """(requests running + waiting, tokens generated so far) summed over every label set (a router's replicas too)."""
    try:
        text = client.get(url + "/metrics").text
    except httpx.HTTPError:
        return None
    busy = generated = 0.0
    for line in text.splitlines():
        name = line.split("{", 1)[0].split(" ", 1)[0]
        if name in ("paretoserve_requests_running", "paretoserve_requests_waiting"):
            busy += float(line.rsplit(" ", 1)[1])
        elif name == "paretoserve_generation_tokens_total":
            generated += float(line.rsplit(" ", 1)[1])
    return busy, generated


class Watch:
    """Samples, every SAMPLE_INTERVAL_S: the client tree's CPU, the engine tree's CPU and the server's state."""

    def __init__(self, client_pid: int, engine_pids: tuple[int, ...], url: str) -> None:
        self.client = TreeCpu(client_pid)
        self.engines = [TreeCpu(p) for p in engine_pids]
        self.url = url
        # t, client cpu, engine cpu, requests running + waiting, tokens generated, the whole machine's busy cpu
        self.rows: list[tuple[float, float, float, float, float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> "Watch":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        with httpx.Client(timeout=5.0, trust_env=False) as http:
            while True:
                state = server_state(http, self.url)
                if state is not None:
                    self.rows.append((time.monotonic(), self.client.sample(), sum(e.sample() for e in self.engines),
                                      *state, machine_busy_cpu_s()))
                if self._stop.wait(SAMPLE_INTERVAL_S):
                    return

    def busy_span(self) -> dict | None:
        """The span the server had this client's requests, its edges halfway between samples; None if never busy."""
        busy = [i for i, row in enumerate(self.rows) if row[3] > 0]
        if not busy:
            return None
        first, last = busy[0], busy[-1]
        before, after = self.rows[max(first - 1, 0)], self.rows[min(last + 1, len(self.rows) - 1)]
        t0 = (before[0] + self.rows[first][0]) / 2
        t1 = (self.rows[last][0] + after[0]) / 2
        return {"busy_s": t1 - t0,
                "server_output_throughput": (after[4] - before[4]) / (t1 - t0) if t1 > t0 else None,
                "client_cpu_run_s": self._at(t1, 1) - self._at(t0, 1),
                "engine_cpu_run_s": self._at(t1, 2) - self._at(t0, 2),
                "other_cpu_run_s": (self._at(t1, 5) - self._at(t0, 5)) - (self._at(t1, 1) - self._at(t0, 1))
                - (self._at(t1, 2) - self._at(t0, 2))}

    def _at(self, t: float, col: int) -> float:
        """Column `col` linearly interpolated at time t."""
        rows = self.rows
        for a, b in zip(rows, rows[1:], strict=False):
            if a[0] <= t <= b[0]:
                return a[col] + (b[col] - a[col]) * (t - a[0]) / (b[0] - a[0]) if b[0] > a[0] else a[col]
        return rows[-1][col] if t > rows[-1][0] else rows[0][col]


def machine_busy_cpu_s() -> float:
    """CPU seconds every core of this machine spent busy since boot (all processes: the noise included)."""
    t = psutil.cpu_times()
    return sum(t) - t.idle - getattr(t, "iowait", 0.0) - getattr(t, "guest", 0.0) - getattr(t, "guest_nice", 0.0)
