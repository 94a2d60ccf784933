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
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx
from client_outputs import PARSERS, Figures, Shape, aiperf_cmd, bench_cmd, guidellm_cmd
from client_watch import Watch

from paretoserve.engine_process import EngineProcess, embedded_engine_cmd, free_port

CLIENTS = ("bench", "guidellm", "aiperf", "aiperf-paced")
INSTALL = {
    "guidellm": "python3 -m venv ~/venvs/guidellm && ~/venvs/guidellm/bin/pip install torch==2.13.0 "
                "guidellm==0.8.1, then --guidellm ~/venvs/guidellm/bin/guidellm",
    "aiperf": "python3 -m venv ~/venvs/aiperf && ~/venvs/aiperf/bin/pip install aiperf==0.13.0, "
              "then --aiperf ~/venvs/aiperf/bin/aiperf",
}


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
