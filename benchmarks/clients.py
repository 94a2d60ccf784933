"""GuideLLM, AIPerf and `paretoserve bench` against one paretoserve engine: same server, same shape, back to back.

One `paretoserve engine` on the bundled model (or `paretoserve serve`, the router, with --router) is started
once; each client then runs as its own process against it, one after the other: synthetic prompts of
--input-tokens, exactly --output-tokens out (`ignore_eos`), --concurrency requests in flight (closed loop),
--requests in all, every request streamed from /v1/completions. The script prints each client's own
figures, read from its own output (GuideLLM's JSON, AIPerf's `profile_export_aiperf.json`, bench's
`--out` JSON), beside what the server saw and what each client cost:

- output tok/s, mean / p99 TTFT, mean ITL ((end - first token) / (tokens - 1) per request: GuideLLM's
  `inter_token_latency_ms`, AIPerf's `inter_token_latency`, bench's `mean_tpot_ms`), completed, failed;
- server tok/s: tokens the engine generated (its `/metrics` counter, sampled every 0.25 s) over the span it
  had requests running or waiting: the same clock for every client;
- client CPU s: user + system time of the client's whole process tree, while the server was busy with its
  requests (`run`) and in all, start-up included (`total`); engine CPU s over the same busy span, and what
  everything else on the machine used meanwhile (`other`: on a shared machine, the noise).

`aiperf-paced` is AIPerf again with `--request-rate 100 --arrival-pattern constant` added (see AIPERF_PACING).

    python benchmarks/clients.py [--requests 64] [--concurrency 8] [--input-tokens 32] [--output-tokens 64]
        [--clients bench,guidellm,aiperf,aiperf-paced] [--guidellm PATH] [--aiperf PATH] [--tokenizer DIR]
        [--max-batch 8] [--threads 1] [--router --replicas 1] [--bench-args ..] [--guidellm-args ..]
        [--aiperf-args ..] [--rounds 1] [--out DIR]

The clients are not paretoserve's dependencies (their pins clash with ours); install each into its own
virtualenv and pass its executable (the default is the name on PATH):

    python3 -m venv ~/venvs/guidellm && ~/venvs/guidellm/bin/pip install torch==2.13.0 guidellm==0.8.1
    python3 -m venv ~/venvs/aiperf && ~/venvs/aiperf/bin/pip install aiperf==0.13.0

(GuideLLM needs torch; a plain requirement may pull a CUDA build of several GB, so name the CPU one first.)
Both need a Hugging Face tokenizer for synthetic prompts: the bundled GGUF's, exported once into the cache
by paretoserve/hf_export.py (the `hf` extra; later runs only read it), or --tokenizer DIR. No model hub is
reached: GuideLLM and bench run with HF_HUB_OFFLINE=1. AIPerf 0.13 runs without it, because in offline
mode it looks every tokenizer up in the hub cache and refuses a local directory; given a directory it
loads it straight from disk and asks the hub nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import resource
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx
import psutil

from paretoserve.engine_process import EngineProcess, embedded_engine_cmd, free_port

SAMPLE_INTERVAL_S = 0.25
CLIENTS = ("bench", "guidellm", "aiperf", "aiperf-paced")
# AIPerf 0.13 in pure concurrency mode polls for a free slot without sleeping (its credit loop yields to the event
# loop and tries again), which keeps its timing_manager process busy for the whole run: about half a core, taken
# from a CPU engine. With a request rate far above what the engine completes (one tick per 10 ms here) the
# concurrency stays the limit, and the loop sleeps between ticks instead.
AIPERF_PACING = ("--request-rate", "100", "--arrival-pattern", "constant")
INSTALL = {
    "guidellm": "python3 -m venv ~/venvs/guidellm && ~/venvs/guidellm/bin/pip install torch==2.13.0 "
                "guidellm==0.8.1, then --guidellm ~/venvs/guidellm/bin/guidellm",
    "aiperf": "python3 -m venv ~/venvs/aiperf && ~/venvs/aiperf/bin/pip install aiperf==0.13.0, "
              "then --aiperf ~/venvs/aiperf/bin/aiperf",
}


@dataclass
class Figures:
    """What a client reported about its own run, in one set of names."""

    completed: int
    failed: int
    input_tokens_per_request: float | None
    output_tokens_per_request: float | None
    output_throughput: float | None  # tok/s
    mean_ttft_ms: float | None
    p99_ttft_ms: float | None
    mean_itl_ms: float | None


@dataclass
class ClientResult:
    client: str
    cmd: list[str]
    returncode: int | None = None
    error: str | None = None
    figures: Figures | None = None
    wall_s: float | None = None  # the client process, start to exit
    busy_s: float | None = None  # the server had requests running or waiting
    server_output_throughput: float | None = None
    client_cpu_run_s: float | None = None
    client_cpu_total_s: float | None = None
    engine_cpu_run_s: float | None = None
    other_cpu_run_s: float | None = None  # everything else this machine ran meanwhile (this script included)
    log: str | None = None
    extra: dict = field(default_factory=dict)


# -- what each client reported -------------------------------------------------------------------------

def parse_guidellm(path: Path) -> Figures:
    """GuideLLM's `--output kind=json`: one benchmark, metrics of its successful requests."""
    bench = json.loads(path.read_text())["benchmarks"][0]
    m = bench["metrics"]

    def ok(name: str) -> dict:
        return m[name]["successful"]

    totals = m["request_totals"]
    completed = int(totals["successful"])
    out_tokens = ok("output_token_count")["total_sum"]
    return Figures(
        completed=completed, failed=int(totals["errored"]) + int(totals["incomplete"]),
        input_tokens_per_request=ok("prompt_token_count")["mean"],
        output_tokens_per_request=ok("output_token_count")["mean"],
        output_throughput=out_tokens / bench["duration"] if bench["duration"] else None,
        mean_ttft_ms=ok("time_to_first_token_ms")["mean"],
        p99_ttft_ms=ok("time_to_first_token_ms")["percentiles"]["p99"],
        mean_itl_ms=ok("inter_token_latency_ms")["mean"])


def parse_aiperf(artifacts: Path) -> Figures:
    """AIPerf's summary export, `profile_export_aiperf.json` (token counts from the server's usage); its
    `request_count` counts the valid requests, `error_request_count` (present when there were any) the others."""
    d = json.loads((artifacts / "profile_export_aiperf.json").read_text())

    def stat(name: str, key: str = "avg") -> float | None:
        return (d.get(name) or {}).get(key)

    failed = stat("error_request_count")
    if failed is None:
        failed = sum(int(e.get("count", 0)) for e in d.get("error_summary") or [])
    requests = stat("request_count") or 0
    return Figures(
        completed=int(requests), failed=int(failed),
        input_tokens_per_request=stat("input_sequence_length"),
        output_tokens_per_request=stat("output_sequence_length"),
        output_throughput=stat("output_token_throughput"), mean_ttft_ms=stat("time_to_first_token"),
        p99_ttft_ms=stat("time_to_first_token", "p99"), mean_itl_ms=stat("inter_token_latency"))


def parse_bench(path: Path) -> Figures:
    """`paretoserve bench --out`: vLLM's field names."""
    r = json.loads(path.read_text())
    completed = int(r["completed"])
    return Figures(
        completed=completed, failed=int(r["failed"]),
        input_tokens_per_request=r["total_input_tokens"] / completed if completed else None,
        output_tokens_per_request=r["total_output_tokens"] / completed if completed else None,
        output_throughput=r["output_throughput"], mean_ttft_ms=r["mean_ttft_ms"], p99_ttft_ms=r["p99_ttft_ms"],
        mean_itl_ms=r["mean_tpot_ms"])


# -- how to run each client ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Shape:
    url: str
    model: str
    tokenizer: Path
    requests: int
    concurrency: int
    input_tokens: int
    output_tokens: int
    seed: int


def offline_env() -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "1"}


def bench_cmd(s: Shape, out: Path) -> tuple[list[str], dict[str, str], Path]:
    path = out / "bench.json"
    cmd = [sys.executable, "-m", "paretoserve", "bench", "--url", s.url, "--served-model-name", s.model,
           "--endpoint", "completions", "--input-tokens", str(s.input_tokens), "--output-tokens", str(s.output_tokens),
           "--mode", "concurrency", "--concurrency", str(s.concurrency), "--requests", str(s.requests),
           "--seed", str(s.seed), "--no-progress", "--out", str(path)]
    return cmd, offline_env(), path


def guidellm_cmd(exe: str, s: Shape, out: Path) -> tuple[list[str], dict[str, str], Path]:
    path = out / "guidellm.json"
    cmd = [exe, "run",
           "--backend", f"kind=openai_http,target={s.url},model={s.model},request_format=/v1/completions",
           "--profile", f"kind=concurrent,streams={s.concurrency}",
           "--constraint", f"kind=max_requests,count={s.requests}",
           "--data", f"kind=synthetic_text,prompt_tokens={s.input_tokens},output_tokens={s.output_tokens}",
           "--tokenizer", f"kind=huggingface_auto,model={s.tokenizer}",
           "--seed", f"kind=static,value={s.seed}",
           "--output", f"kind=json,path={path}",
           "--disable-console-interactive"]
    return cmd, offline_env(), path


def aiperf_cmd(exe: str, s: Shape, out: Path, paced: bool = False) -> tuple[list[str], dict[str, str], Path]:
    artifacts = out / ("aiperf-paced" if paced else "aiperf")
    cmd = [exe, "profile", "--model", s.model, "--url", s.url, "--endpoint-type", "completions", "--streaming",
           "--tokenizer", str(s.tokenizer), "--concurrency", str(s.concurrency), "--request-count", str(s.requests),
           "--synthetic-input-tokens-mean", str(s.input_tokens), "--synthetic-input-tokens-stddev", "0",
           "--output-tokens-mean", str(s.output_tokens), "--extra-inputs", "ignore_eos:true",
           "--use-server-token-count", "--random-seed", str(s.seed), "--artifact-dir", str(artifacts), "--ui", "none",
           *(AIPERF_PACING if paced else ())]
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    return cmd, env, artifacts


PARSERS = {"bench": parse_bench, "guidellm": parse_guidellm, "aiperf": parse_aiperf, "aiperf-paced": parse_aiperf}


# -- measuring a client --------------------------------------------------------------------------------

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


def children_cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run_client(name: str, cmd: list[str], env: dict[str, str], output: Path, out: Path,
               server: EngineProcess | None, url: str, timeout_s: float) -> ClientResult:
    result = ClientResult(client=name, cmd=cmd, log=str(out / f"{name}.log"))
    engine_pids = server.pids if server is not None else ()
    cpu_before, started = children_cpu_s(), time.monotonic()
    with open(result.log, "wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        with Watch(proc.pid, engine_pids, url) as watch:
            try:
                result.returncode = proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                result.error = f"still running after {timeout_s:.0f} s: stopped"
            finally:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGKILL)  # whatever it left behind in its own session
                proc.wait()
    result.wall_s = time.monotonic() - started
    # Reaped descendants are exact in getrusage; the samples also see any that escaped their parent's wait.
    result.client_cpu_total_s = max(children_cpu_s() - cpu_before, sum(watch.client.seen.values()))
    result.extra["client_cpu_by_process_s"] = watch.client.by_process()
    span = watch.busy_span()
    if span:
        for key, value in span.items():
            setattr(result, key, value)
    if result.returncode not in (0, None) and result.error is None:
        result.error = f"exited with status {result.returncode}; see {result.log}"
    try:
        result.figures = PARSERS[name](output)
    except (OSError, ValueError, KeyError, IndexError, TypeError) as exc:
        result.error = result.error or f"no readable output at {output} ({type(exc).__name__}: {exc}); see {result.log}"
    return result


# -- the table ---------------------------------------------------------------------------------------------

COLUMNS = (("client", "client", "s"), ("completed", "completed", "d"), ("failed", "failed", "d"),
           ("in tok/req", "input_tokens_per_request", ".1f"), ("out tok/req", "output_tokens_per_request", ".1f"),
           ("output tok/s", "output_throughput", ".1f"), ("mean TTFT ms", "mean_ttft_ms", ".0f"),
           ("p99 TTFT ms", "p99_ttft_ms", ".0f"), ("mean ITL ms", "mean_itl_ms", ".1f"),
           ("server tok/s", "server_output_throughput", ".1f"), ("client CPU s (run)", "client_cpu_run_s", ".1f"),
           ("client CPU s (total)", "client_cpu_total_s", ".1f"), ("engine CPU s (run)", "engine_cpu_run_s", ".1f"),
           ("other CPU s (run)", "other_cpu_run_s", ".1f"))


RANGED = ("output_throughput", "server_output_throughput")  # shown with their range over the rounds


def table(results: list[ClientResult]) -> str:
    """One row per client, in the order they ran: the median over its rounds (and the range of the token rates)."""
    lines = ["| " + " | ".join(c[0] for c in COLUMNS) + " |", "| " + " | ".join("---" for _ in COLUMNS) + " |"]
    rounds: dict[str, list[dict]] = {}
    for r in results:
        rounds.setdefault(r.client, []).append({**asdict(r), **(asdict(r.figures) if r.figures else {})})
    for client, flats in rounds.items():
        cells = [client]
        for _, key, spec in COLUMNS[1:]:
            values = [f[key] for f in flats if f.get(key) is not None]
            if not values:
                cells.append("-")
                continue
            cell = format(statistics.median(values), spec)
            if key in RANGED and len(values) > 1:
                cell += f" ({min(values):{spec}}-{max(values):{spec}})"
            cells.append(cell)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


# -- the run -----------------------------------------------------------------------------------------------

def retarget(cmd: list[str], env: dict[str, str], output: Path, out: Path, run_dir: Path):
    """The same command writing into `run_dir` instead of `out` (one directory per round)."""
    if run_dir == out:
        return cmd, env, output
    old, new = str(out), str(run_dir)
    return [a.replace(old, new) for a in cmd], env, Path(str(output).replace(old, new, 1))


def resolve_exe(name: str, given: str | None) -> str | None:
    exe = given or name
    return exe if Path(exe).is_file() and os.access(exe, os.X_OK) else shutil.which(exe)


def tokenizer_dir(given: str | None, model: str) -> Path:
    if given:
        return Path(given).expanduser()
    from paretoserve.hf_export import export_tokenizer

    return export_tokenizer(model)


def server_cmd(args: argparse.Namespace, port: int) -> list[str]:
    common = ["--model", args.model, "--max-batch", str(args.max_batch), "--ctx-per-seq", str(args.ctx_per_seq)]
    if args.router:
        return [sys.executable, "-m", "paretoserve", "serve", "--host", "127.0.0.1", "--port", str(port),
                "--replicas", str(args.replicas), "--threads-per-replica", str(args.threads), *common]
    return embedded_engine_cmd(port, "127.0.0.1", *common, "--threads", str(args.threads))


def served_model(url: str) -> str:
    return httpx.get(url + "/v1/models", timeout=10.0, trust_env=False).json()["data"][0]["id"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", default=",".join(CLIENTS), help="which, in this order (default: %(default)s)")
    ap.add_argument("--requests", type=int, default=64)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--input-tokens", type=int, default=32)
    ap.add_argument("--output-tokens", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--guidellm", default=None, help="GuideLLM's executable (default: `guidellm` on PATH)")
    ap.add_argument("--aiperf", default=None, help="AIPerf's executable (default: `aiperf` on PATH)")
    ap.add_argument("--tokenizer", default=None, help="a Hugging Face tokenizer directory (default: the GGUF's, "
                    "exported into the cache)")
    ap.add_argument("--model", default="default")
    ap.add_argument("--max-batch", type=int, default=8)
    ap.add_argument("--ctx-per-seq", type=int, default=256)
    # One llama.cpp thread by default: on a 2-core machine that the clients (and often other work) share, two decode
    # threads that wait on each other at every step slow down far more than the CPU the others take.
    ap.add_argument("--threads", type=int, default=1, help="engine threads (per replica with --router); 0 = all "
                    "cores (default: 1)")
    ap.add_argument("--router", action="store_true", help="through `paretoserve serve` (the router)")
    ap.add_argument("--replicas", type=int, default=1, help="with --router")
    for name in ("bench", "guidellm", "aiperf"):
        ap.add_argument(f"--{name}-args", default="", help=f"more arguments for {name}, one shell-quoted string")
    ap.add_argument("--rounds", type=int, default=1, help="run every client this many times, interleaved; the "
                    "table shows medians and the token rates' ranges (default: 1)")
    ap.add_argument("--timeout", type=float, default=900.0, help="seconds per client")
    ap.add_argument("--out", default=None, help="directory for the clients' outputs and logs (default: a new one)")
    args = ap.parse_args()

    names = [c.strip() for c in args.clients.split(",") if c.strip()]
    unknown = set(names) - set(CLIENTS)
    if unknown:
        ap.error(f"--clients: unknown {sorted(unknown)}; choose from {', '.join(CLIENTS)}")
    exes = {n: resolve_exe(n.split("-")[0], getattr(args, n.split("-")[0])) for n in names if n != "bench"}
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="paretoserve-clients-"))
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = tokenizer_dir(args.tokenizer, args.model) if exes else None

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    results: list[ClientResult] = []
    with EngineProcess(server_cmd(args, port), url, log_path=out / "server.log") as server:
        server.wait_healthy(300)
        shape = Shape(url=url, model=served_model(url), tokenizer=tokenizer or Path("-"), requests=args.requests,
                      concurrency=args.concurrency, input_tokens=args.input_tokens, output_tokens=args.output_tokens,
                      seed=args.seed)
        print(f"{'router, ' + str(args.replicas) + ' replica(s)' if args.router else 'engine'} at {url} "
              f"(max_batch {args.max_batch}, threads {args.threads or 'all'}); {args.requests} requests, "
              f"concurrency {args.concurrency}, {args.input_tokens} in / {args.output_tokens} out, streamed; "
              f"outputs in {out}", flush=True)
        for round_no, name in ((i, n) for i in range(args.rounds) for n in names):
            if name == "bench":
                cmd, env, output = bench_cmd(shape, out)
            elif exes[name] is None:
                results.append(ClientResult(client=name, cmd=[],
                                            error=f"not found; install: {INSTALL[name.split('-')[0]]}"))
                print(f"{name}: {results[-1].error}", flush=True)
                continue
            elif name == "guidellm":
                cmd, env, output = guidellm_cmd(exes[name], shape, out)
            else:
                cmd, env, output = aiperf_cmd(exes[name], shape, out, paced=name == "aiperf-paced")
            cmd += shlex.split(getattr(args, f"{name.split('-')[0]}_args"))
            print(f"{name}: running, round {round_no + 1} of {args.rounds} ({datetime.datetime.now():%H:%M:%S})",
                  flush=True)
            run_dir = out / f"round-{round_no + 1}" if args.rounds > 1 else out
            run_dir.mkdir(exist_ok=True)
            cmd, env, output = retarget(cmd, env, output, out, run_dir)
            results.append(run_client(name, cmd, env, output, run_dir, server, url, args.timeout))
            results[-1].extra["round"] = round_no + 1
            (out / "clients.json").write_text(json.dumps([asdict(r) for r in results], indent=1) + "\n")  # so far
            if results[-1].error:
                print(f"{name}: {results[-1].error}", flush=True)
    (out / "clients.json").write_text(json.dumps([asdict(r) for r in results], indent=1) + "\n")
    print()
    print(table(results))


if __name__ == "__main__":
    main()
