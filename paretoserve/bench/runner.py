"""One bench run end to end: probe, workload, warm-up, sampled load, summary."""

from __future__ import annotations

import asyncio
import datetime as dt
import resource
import sys
import time
from dataclasses import asdict
from pathlib import Path

from paretoserve import __version__
from paretoserve.bench import energy, probe, quiet, summary, trace, workload
from paretoserve.bench.config import BenchConfig
from paretoserve.bench.gpu import NvmlReader
from paretoserve.bench.loadgen import ClientPool, LoadGenerator, LoadPattern, RequestBuilder, encode_bodies
from paretoserve.bench.records import RequestRecord
from paretoserve.bench.sampler import EngineProcesses, Sampler
from paretoserve.bench.tokenizer import ApproxTokenizer, GgufTokenizer, Tokenizer
from paretoserve.limits import UserError

DURATION_POOL = 1000  # synthetic requests generated for a --duration run (cycled)


class BenchError(UserError):
    """A run that cannot start as asked; the message names the flag."""


class Progress:
    """What the runner tells a progress display; the default shows nothing."""

    def start(self, total: int | None, duration_s: float | None) -> None: ...

    def done(self, record: RequestRecord, now_s: float) -> None: ...


async def run_bench(cfg: BenchConfig, progress: Progress | None = None, keep_requests: bool = True) -> dict:
    """Run the workload of `cfg` against its URL and return the result record (see summary.py); with
    `keep_requests`, it holds every request's own record under "requests"."""
    progress = progress or Progress()
    try:
        server = await probe.probe(cfg.url, access=cfg.access, model=cfg.served_model_name)
    except probe.EndpointError as exc:
        raise BenchError(str(exc)) from exc
    as_ids = _prompt_as_ids(cfg, server)
    specs, tokenizer_name = _workload(cfg, server, as_ids)
    pids = cfg.engine_pids or _auto_pids(cfg.url)
    gpu, rapl = NvmlReader.open(), energy.RaplReader.open()
    try:
        plan = energy.choose_source(cfg.energy, gpu, rapl, bool(pids), cfg.watts_per_core)
    except energy.EnergySourceError as exc:
        raise BenchError(str(exc)) from exc

    builder = RequestBuilder(cfg.endpoint, cfg.served_model_name or server.model, cfg.ignore_eos, cfg.temperature)
    limit = len(specs) if cfg.mode == "trace" else cfg.request_limit
    pattern = LoadPattern(cfg.mode, cfg.concurrency, cfg.rate, cfg.arrival, cfg.seed, limit, cfg.duration_s,
                          burstiness=cfg.gamma_shape, ramp_up_s=cfg.ramp_up_s or 0.0)
    pool = ClientPool(cfg.url, _pool_size(cfg, limit), cfg.request_timeout_s, cfg.access)
    try:
        await pool.touch()
        bodies = encode_bodies(builder, specs)
        if cfg.warmup:
            warm = LoadPattern("concurrency", min(cfg.concurrency, cfg.warmup), requests=cfg.warmup)
            await LoadGenerator(pool, builder, specs, warm, bodies=bodies).run()
        busy = await asyncio.to_thread(quiet.wait_quiet, cfg.wait_quiet_s, pids, _stderr) \
            if cfg.wait_quiet_s > 0 else None
        async with Sampler(cfg.url, cfg.metrics_path, EngineProcesses(pids), gpu, rapl,
                           cfg.sample_interval_s, cfg.access, model=_model_under_test(cfg, server)) as sampler:
            await sampler.sample()
            generator = LoadGenerator(pool, builder, specs, pattern, bodies=bodies,
                                      on_done=lambda r: progress.done(r, generator.now()))
            progress.start(limit, cfg.duration_s)
            start, machine_before = time.perf_counter(), quiet.machine_cpu()
            sampler.set_start(start)
            stop = asyncio.Event()
            sampling = asyncio.create_task(sampler.run(stop))
            try:
                load = await generator.run(start)
                machine_after = quiet.machine_cpu()
            finally:
                stop.set()
                await sampling
            await sampler.sample()
    finally:
        await pool.aclose()
        if gpu is not None:
            gpu.close()

    samples = sampler.samples
    slots = _slots(cfg, limit, samples)
    result = _header(cfg, server, as_ids, tokenizer_name, pids, plan)
    result.update(summary.summarize(load, samples, slots, cfg.slo, plan, cfg.ignore_eos))
    local_engine_unseen = not pids and probe.local_port(cfg.url) is not None  # its CPU would count as others'
    result.update(_machine_fields(None if local_engine_unseen else machine_before, machine_after, load.wall_s,
                                  result))
    if busy is not None and busy >= quiet.QUIET_CORES:
        result["warnings"].append(f"--wait-quiet {cfg.wait_quiet_s:g}: the machine never went quiet ({busy:.2f} "
                                  "cores busy with other processes when the run started)")
    if sampler.metrics_error:
        result["warnings"].append(f"could not read the endpoint's metrics: {sampler.metrics_error}")
    if cfg.ramp_up_s and load.records and load.records[-1].intended_s < cfg.ramp_up_s:
        result["warnings"].append(f"the run ended {load.records[-1].intended_s:.1f} s into the {cfg.ramp_up_s:g} s "
                                  "ramp-up: the rate never reached --rate (raise --requests or --duration)")
    result["samples"] = [s.to_dict() for s in samples]
    if keep_requests:
        result["requests"] = [r.to_dict() for r in load.records]
    return result


def _model_under_test(cfg: BenchConfig, server: probe.ServerInfo) -> str | None:
    """The model whose metrics count where the endpoint labels them by model: the one the requests name."""
    name = cfg.served_model_name
    return server.model if name in (None, probe.DEFAULT_ALIAS) else name


def _stderr(line: str) -> None:
    print(line, file=sys.stderr)


def _machine_fields(before: quiet.CpuTimes | None, after: quiet.CpuTimes | None, wall_s: float,
                    result: dict) -> dict:
    """Other processes' busy cores and the hypervisor's steal over the run, with a warning where either was
    high enough to lower the figures; None where /proc/stat cannot be read or a local engine's own CPU is
    not known."""
    if before is None or after is None:
        return {"other_cpu_cores": None, "cpu_steal_fraction": None}
    ours = ((result.get("engine_cpu_cores") or 0.0) + (result.get("client_cpu_fraction") or 0.0)) * wall_s
    others, steal = quiet.others_busy_cores(before, after, wall_s, ours), quiet.steal_fraction(before, after)
    result["warnings"].extend(quiet.quiet_warnings(others, steal))
    return {"other_cpu_cores": others, "cpu_steal_fraction": steal}


def _prompt_as_ids(cfg: BenchConfig, server: probe.ServerInfo) -> bool:
    if cfg.prompt_format == "ids":
        return True
    return cfg.prompt_format == "auto" and server.ours and cfg.endpoint == "completions" \
        and (cfg.dataset == "synthetic" or cfg.trace_path is not None)


def _workload(cfg: BenchConfig, server: probe.ServerInfo, as_ids: bool) -> tuple[list, str]:
    n = cfg.request_limit or DURATION_POOL
    if cfg.dataset == "synthetic":
        room = server.max_model_len
        needed = cfg.input_tokens.high + (cfg.output_tokens.high if cfg.output_tokens else
                                          workload.SYNTHETIC_OUTPUT_TOKENS)
        if room is not None and needed > room:
            raise BenchError(f"--input-tokens + --output-tokens reach {needed} tokens; the endpoint allows {room} "
                             "per sequence (its max_model_len)")
        return workload.synthetic(n, cfg.input_tokens, cfg.output_tokens, cfg.seed, as_ids), _synthetic_kind(as_ids)
    if cfg.trace_path is not None:
        try:
            specs = trace.load_trace(Path(cfg.trace_path).expanduser(), cfg.seed, as_ids)
        except workload.WorkloadError as exc:
            raise BenchError(str(exc)) from exc
        room, needed = server.max_model_len, max(s.input_tokens + s.output_tokens for s in specs)
        if room is not None and needed > room:
            raise BenchError(f"--dataset {cfg.dataset}: its longest request (input_length + output_length) reaches "
                             f"{needed} tokens; the endpoint allows {room} per sequence (its max_model_len)")
        return specs, _synthetic_kind(as_ids)
    tokenizer = _tokenizer(cfg.tokenizer, server)
    try:
        specs = workload.load(cfg.dataset, n, cfg.input_tokens, cfg.output_tokens, cfg.seed, False, tokenizer)
    except workload.WorkloadError as exc:
        raise BenchError(str(exc)) from exc
    finally:
        if isinstance(tokenizer, GgufTokenizer):
            tokenizer.close()
    name = f"gguf:{tokenizer.path}" if isinstance(tokenizer, GgufTokenizer) else \
        f"approximate ({ApproxTokenizer.CHARS_PER_TOKEN:g} characters per token)"
    return specs, name


def _synthetic_kind(as_ids: bool) -> str:
    return "token ids (exact)" if as_ids else "common English words, one token each (approximate)"


def _tokenizer(choice: str, server: probe.ServerInfo) -> Tokenizer:
    if choice == "none" or (choice == "auto" and not (server.ours and server.model == probe.BUNDLED_MODEL_NAME)):
        return ApproxTokenizer()
    from paretoserve.model import ModelError, resolve_model

    try:
        path = resolve_model("default" if choice == "auto" else choice).path
        return GgufTokenizer(path)
    except (ModelError, ValueError) as exc:
        raise BenchError(str(exc).replace("--model", "--tokenizer")) from exc


def _auto_pids(url: str) -> tuple[int, ...]:
    port = probe.local_port(url)
    return probe.listening_pids(port) if port is not None else ()


def _pool_size(cfg: BenchConfig, limit: int | None) -> int:
    """Connections: one per concurrent request, within the file descriptors this process may open."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    cap = max(16, (soft if soft != resource.RLIM_INFINITY else 65536) - 64)
    want = cfg.concurrency if cfg.mode == "concurrency" else (limit or 10_000)
    return max(1, min(want, cap))


def _slots(cfg: BenchConfig, limit: int | None, samples: list) -> int | None:
    """Requests in flight that fill the server: see steady.py."""
    caps = [s.max_batch for s in samples if s.max_batch is not None]
    running = [s.running for s in samples if s.running is not None]
    server_cap = int(max(caps)) if caps else (int(max(running)) if running and max(running) > 0 else None)
    if cfg.mode == "concurrency":
        client = min(cfg.concurrency, limit) if limit else cfg.concurrency
        return min(client, server_cap) if server_cap else client
    return server_cap


def _header(cfg: BenchConfig, server: probe.ServerInfo, as_ids: bool, tokenizer: str, pids: tuple[int, ...],
            plan: energy.EnergyPlan) -> dict:
    config = asdict(cfg)
    config["slo"] = cfg.slo.text if cfg.slo is not None else None
    config["input_tokens"] = str(cfg.input_tokens)
    config["output_tokens"] = str(cfg.output_tokens) if cfg.output_tokens else None
    config["engine_pids"] = list(pids)
    config["watts_per_core"] = plan.watts_per_core
    config["access"] = {"api_key": cfg.access.api_key is not None, "ca_file": cfg.access.ca_file,
                        "insecure": cfg.access.insecure}  # whether a key was sent, never the key
    return {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "tool": f"paretoserve {__version__} bench",
        "base_url": cfg.url,
        "endpoint": "/v1/chat/completions" if cfg.endpoint == "chat" else "/v1/completions",
        "model_id": cfg.served_model_name or server.model,
        "server": server.to_dict(),
        "mode": cfg.mode,
        "request_rate": cfg.rate if cfg.mode == "rate" else ("inf" if cfg.mode == "burst" else None),
        # vLLM's field: the gamma shape of rate mode's gaps (1 = Poisson)
        "burstiness": (cfg.gamma_shape if cfg.arrival != "constant" else None) if cfg.mode == "rate" else None,
        "max_concurrency": cfg.concurrency if cfg.mode == "concurrency" else None,
        "prompts": "token ids" if as_ids else "text",
        "prompt_tokens_counted_by": tokenizer,
        "config": config,
    }
