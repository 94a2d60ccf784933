"""Ray Serve autoscaling from the measured capacity, on a local Ray: does the replica count follow the load?

1. Deploys our engine (the bundled model, --threads per replica) on Ray Serve with one fixed replica, through the
   path `serve run ray-serve.yaml` takes (ServeDeploySchema -> deploy_apps), and measures its capacity with the
   project's capacity search (`paretoserve capacity`'s session: open-loop rates, each request judged on --slo);
   or reads the runs of an earlier measurement (--capacity-dir).
2. Advises the autoscaling from it (advise/capacity.py, advise/autoscaling.py) for a traffic whose low and peak
   are --low and --peak times one replica's capacity, with the delays given, and redeploys the application with
   it (ray_config.autoscaled: num_replicas auto; Ray replaces the running replica with one of the new version).
3. Ramps a Poisson rate from the low to the peak in --steps runs of --step-s seconds (bench's run_bench, mode
   rate, through Ray's proxy), holds the peak, drops to the low and holds it past the downscale delay; a thread
   reads serve.status() every --sample-s for the replicas running and starting.

Prints the autoscaling config, then per step: its start, the offered rate, the replicas the capacity says it
needs (ceil(rate / one replica's capacity)), the requests in flight (Little's law: throughput x mean latency) and
the replicas Ray's policy asks for them (ceil(in flight / target)), both within min..max, the replicas running at
its end and the requests within the SLO. Then every change of the running count, and whether the count rose
and fell within the configured delay plus Ray's look-back, its metrics interval and a replica's start, counted
from the start of the first step whose requests in flight asked for it. The short delays, look-back and metrics
interval are for this benchmark only (the advice keeps Ray's 10 s interval and 30 s look-back). Client, Ray and
the replicas share this machine's cores.

    python benchmarks/ray_autoscaling.py [--max-batch 4] [--slo 'ttft_ms<=1500'] [--low 0.3] [--peak 1.3]
        [--steps 4] [--step-s 12] [--upscale-delay 3] [--downscale-delay 15] [--capacity-dir DIR]

Measured 2026-12-07 on the 2-core EPYC VM while other work kept it busy (load 3-9): one replica's capacity
5.56 req/s (ttft_ms<=1500, 95 %), target 4 (Little's law 6.2, capped at the batch cap); up to 2 replicas +12.0 s
after the step that asked (delay 3 s, allowance 13.2 s), down to 1 +35.5 s after (delay 15 s, allowance 21 s:
late, Poisson bursts above the target restart Ray's downscale wait). Two replicas did not hold the SLO at the
peak: the cores are shared with Ray's proxy, the client and the other work.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import os
import tempfile
import threading
import time
from pathlib import Path

import ray
from ray import serve
from ray.serve._private import api as serve_api
from ray.serve._private.common import ReplicaState
from ray.serve.schema import ServeDeploySchema

from paretoserve.advise.autoscaling import Autoscaling, autoscaling
from paretoserve.advise.capacity import CapacityAdvice, capacity_advice
from paretoserve.advise.ray_config import APP_NAME, BUILDER, DEPLOYMENT, autoscaled
from paretoserve.advise.traffic import Traffic
from paretoserve.bench.config import BenchConfig, TokenRange
from paretoserve.bench.runner import run_bench
from paretoserve.bench.slo import parse_slo
from paretoserve.engine_process import free_port
from paretoserve.serve.ray_replica import RayPlan
from paretoserve.sweep.capacity import CapacityConfig, CapacitySession

RAY_ENV = {"RAY_USAGE_STATS_ENABLED": "0"}  # never report usage statistics to Ray's servers
LOGGING = {"log_level": "WARNING", "enable_access_log": False}  # no log line per request in the replicas


class Replicas:
    """A thread that samples the deployment's running and starting replicas: [(t_s, running, starting)]."""

    def __init__(self, start: float, every_s: float) -> None:
        self.start, self.every_s = start, every_s
        self.samples: list[tuple[float, int, int]] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.wait(self.every_s):
            app = serve.status().applications.get(APP_NAME)
            states = app.deployments[DEPLOYMENT].replica_states if app and DEPLOYMENT in app.deployments else {}
            self.samples.append((time.monotonic() - self.start, states.get(ReplicaState.RUNNING, 0),
                                 states.get(ReplicaState.STARTING, 0)))

    def running(self) -> int:
        return self.samples[-1][1] if self.samples else 0

    def first(self, after_s: float, test) -> tuple[float, int, int] | None:
        """The first sample at or after `after_s` whose running count passes `test`."""
        return next((s for s in self.samples if s[0] >= after_s and test(s[1])), None)


def deploy(plan: RayPlan, port: int, deployment: dict, timeout_s: float = 300) -> None:
    """The application as a Serve config (ray-serve.yaml's shape), deployed as `serve run` does; waits for it."""
    doc = {"proxy_location": "HeadOnly", "http_options": {"host": "127.0.0.1", "port": port},
           "applications": [{"name": APP_NAME, "route_prefix": "/", "import_path": BUILDER, "args": plan.args(),
                             "logging_config": LOGGING, "deployments": [deployment]}]}
    config = ServeDeploySchema.model_validate(doc)
    client = serve_api.serve_start(http_options={**config.http_options.model_dump(), "location": "HeadOnly"},
                                   global_logging_config=LOGGING)
    client.deploy_apps(config)
    deadline = time.monotonic() + timeout_s
    time.sleep(1)  # the controller takes the new config before it reports its status
    while (status := serve.status().applications.get(APP_NAME)) is None or status.status != "RUNNING":
        if time.monotonic() > deadline:
            raise RuntimeError(f"{APP_NAME} not running after {timeout_s:g} s: {status}")
        time.sleep(0.5)


def bench_config(args, url: str, rate: float, **changes) -> BenchConfig:
    return BenchConfig(url=url, input_tokens=TokenRange(args.input_tokens, args.input_tokens),
                       output_tokens=TokenRange(args.output_tokens, args.output_tokens), mode="rate", rate=rate,
                       slo=parse_slo(args.slo), energy="none", **changes)


def measure_capacity(args, url: str, directory: Path) -> None:
    """`paretoserve capacity` against the one fixed replica, small: few requests a rate, no re-measuring."""
    config = CapacityConfig(bench=bench_config(args, url, 1.0, requests=args.requests), out=directory,
                            attainment=args.attainment, resolution=0.15, max_runs=args.max_runs, remeasure_budget=0,
                            overload=0, concurrency=args.max_batch)
    report = CapacitySession(config, echo=print).run()
    print(f"capacity search: {report.guess}; {report.runs} runs in {report.wall_s:.0f} s")


def advised(args, directory: Path) -> tuple[CapacityAdvice, Autoscaling]:
    """The capacity advice for a traffic of --low..--peak times one replica's capacity, and its autoscaling."""
    one = capacity_advice(directory, replicas=1, max_batch=args.max_batch).per_replica_rps
    low, peak = args.low * one, args.peak * one
    traffic = Traffic(mean_rps=(low + peak) / 2, peak_rps=peak, low_rps=low, source="benchmark ramp")
    capacity = capacity_advice(directory, replicas=1, max_batch=args.max_batch, traffic=traffic)
    return capacity, autoscaling(capacity, args.upscale_delay, args.downscale_delay)


def ramp(args, low: float, peak: float, scaling: Autoscaling) -> list[float]:
    """The offered rates, one per step: low to peak, the peak held, then the low held past the downscale delay."""
    up = [low + (peak - low) * i / max(1, args.steps - 1) for i in range(args.steps)]
    down = math.ceil((scaling.downscale_delay_s + 2 * args.look_back) / args.step_s) + 1
    return up + [peak] * args.hold_steps + [low] * down


def asks(in_flight: float, scaling: Autoscaling) -> int:
    """The replicas Ray's default policy wants for `in_flight` requests: ceil(in flight / target), within bounds."""
    wanted = math.ceil(in_flight / scaling.target_ongoing_requests - 1e-9)
    return min(scaling.max_replicas, max(scaling.min_replicas, wanted))


def start_up_s(samples: list[tuple[float, int, int]], count: int) -> float:
    """A replica's start (s): from the first sample with one STARTING to the first after it with `count` running."""
    first = next((t for t, _, starting in samples if starting), None)
    if first is None:
        return 0.0
    return next((t for t, n, _ in samples if t > first and n >= count), first) - first


def verdict(name: str, steps: list[tuple[float, float, int]], want, samples: list, delay_s: float,
            allowance_s: float, allowance: str) -> str:
    """Whether the running count reached what the first step asking for it (`want(asked)`) wanted within the delay
    and the allowance, counted from that step's start; `samples` are the ones after the previous change."""
    asked_at = next((at for at, _, asked in steps if want(asked)), None)
    if asked_at is None:
        return f"{name}: no step's load asked for it"
    got = next((t for t, n, _ in samples if want(n)), None)
    if got is None:
        return f"{name}: asked from t={asked_at:.0f} s, never happened (delay {delay_s:g} s)"
    lag = got - asked_at
    ok = "within" if lag <= delay_s + allowance_s else "LATER than"
    return (f"{name}: asked by the step from t={asked_at:.0f} s, done at t={got:.0f} s: {lag:+.1f} s, {ok} the "
            f"delay {delay_s:g} s + {allowance_s:.1f} s ({allowance})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--max-batch", type=int, default=4, help="each replica's batch cap (max_ongoing_requests)")
    ap.add_argument("--threads", type=int, default=1, help="threads (num_cpus) per replica")
    ap.add_argument("--input-tokens", type=int, default=16)
    ap.add_argument("--output-tokens", type=int, default=8)
    ap.add_argument("--slo", default="ttft_ms<=1500", help="each request's limits (capacity and timeline)")
    ap.add_argument("--attainment", type=float, default=0.95, help="share of requests within the SLO")
    ap.add_argument("--requests", type=int, default=30, help="requests per capacity run")
    ap.add_argument("--max-runs", type=int, default=5, help="capacity runs at most")
    ap.add_argument("--capacity-dir", type=Path, help="read these capacity runs instead of measuring")
    ap.add_argument("--low", type=float, default=0.3, help="the traffic's low, times one replica's capacity")
    ap.add_argument("--peak", type=float, default=1.3, help="the traffic's peak, times one replica's capacity")
    ap.add_argument("--max-replicas", type=int, default=2, help="cap on the advised max_replicas (cores)")
    ap.add_argument("--steps", type=int, default=4, help="steps from the low to the peak")
    ap.add_argument("--hold-steps", type=int, default=2, help="steps at the peak")
    ap.add_argument("--step-s", type=float, default=12.0, help="seconds per step")
    ap.add_argument("--upscale-delay", type=float, default=3.0, help="upscale_delay_s (s)")
    ap.add_argument("--downscale-delay", type=float, default=15.0, help="downscale_delay_s (s)")
    ap.add_argument("--look-back", type=float, default=5.0, help="look_back_period_s (s; Ray's default 30)")
    ap.add_argument("--metrics-interval", type=float, default=1.0, help="metrics_interval_s (s; Ray's default 10)")
    ap.add_argument("--sample-s", type=float, default=0.5, help="how often serve.status() is read (s)")
    args = ap.parse_args()

    os.environ.update(RAY_ENV)
    logging.getLogger("ray.serve").setLevel(logging.WARNING)  # the driver's "Connecting to existing Serve app"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    plan = RayPlan(replicas=1, max_batch=args.max_batch, threads_per_replica=args.threads,
                   ctx_per_seq=args.input_tokens + args.output_tokens + 1)
    fixed = {"name": DEPLOYMENT, "num_replicas": 1, "max_ongoing_requests": args.max_batch,
             "ray_actor_options": {"num_cpus": args.threads}}
    ray.init(address="local", num_cpus=args.max_replicas * args.threads, include_dashboard=False,
             logging_level=logging.WARNING)
    try:
        started = time.monotonic()
        deploy(plan, port, fixed)
        print(f"one replica up in {time.monotonic() - started:.0f} s on {url}")
        directory = args.capacity_dir or Path(tempfile.mkdtemp(prefix="ray-autoscaling-")) / "capacity"
        if args.capacity_dir is None:
            measure_capacity(args, url, directory)
        capacity, scaling = advised(args, directory)
        scaling = scaling.model_copy(update={"max_replicas": min(scaling.max_replicas, args.max_replicas)})
        config = {**scaling.ray_config(), "look_back_period_s": args.look_back,
                  "metrics_interval_s": args.metrics_interval}
        print(f"capacity ({directory}): {capacity.summary}")
        print("autoscaling_config:", ", ".join(f"{k} {v:g}" for k, v in config.items()))
        for name, why in scaling.reasons.items():
            print(f"  {name}: {why}")
        deploy(plan, port, {**autoscaled(fixed, scaling), "autoscaling_config": config})
        run(args, url, capacity, scaling)
    finally:
        serve.shutdown()
        ray.shutdown()


def run(args, url: str, capacity: CapacityAdvice, scaling: Autoscaling) -> None:
    """The ramp, its timeline and the verdicts."""
    one, traffic = capacity.per_replica_rps, capacity.traffic
    assert traffic is not None and traffic.low_rps is not None and traffic.peak_rps is not None  # advised() sets them
    start = time.monotonic()
    replicas = Replicas(start, args.sample_s)
    print(f"\n{'t (s)':>6} {'rate':>6} {'needs':>5} {'in flight':>9} {'asks':>4} {'running':>7} {'done':>5} "
          f"{'in SLO':>7} {'mean e2el ms':>12}")
    steps = []
    for i, rate in enumerate(ramp(args, traffic.low_rps, traffic.peak_rps, scaling)):
        at = time.monotonic() - start
        result = asyncio.run(run_bench(bench_config(args, url, rate, duration_s=args.step_s, seed=i),
                                       keep_requests=False))
        e2el_ms = result.get("mean_e2el_ms") or 0.0
        in_flight = (result.get("request_throughput") or 0.0) * e2el_ms / 1000  # Little's law over the step
        needs = min(scaling.max_replicas, max(scaling.min_replicas, math.ceil(rate / one - 1e-9)))
        steps.append((at, rate, asks(in_flight, scaling)))
        print(f"{at:6.0f} {rate:6.2f} {needs:5d} {in_flight:9.1f} {steps[-1][2]:4d} {replicas.running():7d} "
              f"{result['completed']:5d} {result.get('slo_attainment') or 0:7.1%} {e2el_ms:12.0f}")
    replicas.stop.set()
    replicas.thread.join()
    samples = replicas.samples
    changes = [(t, n) for (t, n, _), (_, before, _) in zip(samples[1:], samples, strict=False) if n != before]
    print("running replicas: " + " ".join(f"t={t:.0f} s -> {n};" for t, n in changes) if changes else "never changed")
    start_s = start_up_s(samples, scaling.max_replicas)
    print(f"a replica's start: {start_s:.1f} s (first STARTING sample to the count running)")
    window = args.look_back + args.metrics_interval
    print(verdict(f"up to {scaling.max_replicas}", steps, lambda n: n >= scaling.max_replicas, samples,
                  scaling.upscale_delay_s, window + start_s, "look-back, metrics interval, a replica's start"))
    risen = next((t for t, n, _ in samples if n >= scaling.max_replicas), math.inf)
    print(verdict(f"down to {scaling.min_replicas}", [s for s in steps if s[0] > risen],
                  lambda n: n <= scaling.min_replicas, [x for x in samples if x[0] > risen],
                  scaling.downscale_delay_s, window, "look-back, metrics interval"))


if __name__ == "__main__":
    main()
