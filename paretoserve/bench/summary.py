"""From request records and samples to the result fields (vLLM `bench serve` names where one exists).

Per completed request, all in ms and counted from the intended send time:
ttft = first text chunk - intended; e2el = end of stream - intended;
tpot = (end - first chunk) / (output tokens - 1), for requests of 2+ tokens;
itl = the gaps between successive text chunks, pooled over requests.
Failed requests are counted in `failed` and left out of every latency and throughput figure.
"""

from __future__ import annotations

import numpy as np

from paretoserve.bench import slo as slo_mod
from paretoserve.bench.energy import EnergyPlan, energy_between
from paretoserve.bench.loadgen import LoadResult
from paretoserve.bench.records import RequestRecord
from paretoserve.bench.sampler import Sample
from paretoserve.bench.steady import in_flight_window, tokens_in
from paretoserve.engine.config import available_cores

LATENCY_METRICS = ("ttft_ms", "tpot_ms", "itl_ms", "e2el_ms")
STATS = (("mean", None), ("median", 50.0), ("p90", 90.0), ("p99", 99.0))
# The client warns when its own delays reach this size (the timer resolution of asyncio is ~1 ms).
LAG_WARN_MS = 5.0
CPU_WARN_FRACTION = 0.8  # of one core: a busier client may delay the timestamps it takes


def per_request(r: RequestRecord) -> dict[str, float | None]:
    """ttft/tpot/e2el of one completed request and its largest inter-token gap (itl_ms), in ms."""
    first, end = r.first_token_s, r.end_s
    assert end is not None  # completed requests only
    return {
        "ttft_ms": (first - r.intended_s) * 1e3 if first is not None else None,
        "tpot_ms": (end - first) * 1e3 / (r.output_tokens - 1) if first is not None and r.output_tokens > 1
        else None,
        "itl_ms": max(np.diff(r.token_s)) * 1e3 if len(r.token_s) > 1 else None,
        "e2el_ms": (end - r.intended_s) * 1e3,
    }


def latency_fields(records: list[RequestRecord]) -> dict[str, float | None]:
    """mean_/median_/p90_/p99_ of ttft, tpot, itl and e2el over completed requests."""
    ok = [r for r in records if r.ok]
    rows = [per_request(r) for r in ok]
    values = {m: [row[m] for row in rows if row[m] is not None] for m in ("ttft_ms", "tpot_ms", "e2el_ms")}
    values["itl_ms"] = [g * 1e3 for r in ok for g in np.diff(r.token_s)] if ok else []
    out: dict[str, float | None] = {}
    for metric in LATENCY_METRICS:
        data = np.asarray(values[metric], dtype=float)
        for stat, q in STATS:
            out[f"{stat}_{metric}"] = _stat(data, q)
    return out


def throughput_fields(records: list[RequestRecord], duration_s: float) -> dict:
    ok = [r for r in records if r.ok]
    n_in = sum(r.input_tokens for r in ok)
    n_out = sum(r.output_tokens for r in ok)
    per_s = (lambda x: x / duration_s) if duration_s > 0 else (lambda x: 0.0)
    return {"duration": duration_s, "completed": len(ok), "failed": len(records) - len(ok),
            "total_input_tokens": n_in, "total_output_tokens": n_out, "request_throughput": per_s(len(ok)),
            "output_throughput": per_s(n_out), "total_token_throughput": per_s(n_in + n_out)}


def steady_fields(records: list[RequestRecord], slots: int | None) -> dict:
    """The whole-run figures again, restricted to the steady-state window (steady.py)."""
    if not slots:
        return {"slots": None, "reason": "the number of slots is unknown (no batch cap or running-requests "
                                          "gauge in /metrics)"}
    window = in_flight_window(records, slots)
    if window is None:
        return {"slots": slots, "reason": f"{slots} requests were never in flight together: the endpoint was not "
                                          "saturated, so the whole run is the steady state"}
    start, end = window
    span = end - start
    inside = [r for r in records if r.sent_s is not None and r.sent_s >= start and r.end_s is not None
              and r.end_s <= end]
    ok = [r for r in records if r.ok]
    finished = [r for r in ok if r.end_s is not None and start <= r.end_s <= end]
    out_tokens = sum(tokens_in(r, start, end) for r in ok)
    in_tokens = sum(r.input_tokens for r in ok if r.first_token_s is not None and start <= r.first_token_s <= end)
    fields: dict[str, float | None] = {"slots": slots, "start_s": start, "end_s": end, "duration": span,
              "completed": sum(1 for r in inside if r.ok), "failed": sum(1 for r in inside if not r.ok),
              "request_throughput": len(finished) / span, "output_throughput": out_tokens / span,
              "total_token_throughput": (in_tokens + out_tokens) / span}
    fields.update(latency_fields(inside))
    return fields


def engine_fields(samples: list[Sample], duration_s: float) -> dict:
    """Means over the samples taken during the run, peaks over all samples; None where not measured."""
    during = [s for s in samples if 0 < s.t_s < duration_s]

    def values(name: str, among: list[Sample]) -> list[float]:
        return [getattr(s, name) for s in among if getattr(s, name) is not None]

    running = values("running", during)
    preempt = values("preemptions_total", samples)
    cpu = [(s.t_s, s.engine_cpu_s) for s in samples if s.engine_cpu_s is not None]
    span = cpu[-1][0] - cpu[0][0] if len(cpu) >= 2 else 0.0
    gpu_util, gpu_power = values("gpu_util_percent", during), values("gpu_power_w", during)
    return {
        "mean_running": float(np.mean(running)) if running else None,
        "max_running": max(values("running", samples), default=None),
        "mean_waiting": float(np.mean(values("waiting", during))) if values("waiting", during) else None,
        "max_batch": max(values("max_batch", samples), default=None),
        "kv_peak_fraction": max(values("kv_used_fraction", samples), default=None),
        "preemptions": preempt[-1] - preempt[0] if preempt else None,
        "rss_peak_bytes": max(values("rss_bytes", samples), default=None),
        "device_memory_peak_bytes": max(values("gpu_memory_used_bytes", samples), default=None),
        "mean_device_util_percent": float(np.mean(gpu_util)) if gpu_util else None,
        "mean_device_power_w": float(np.mean(gpu_power)) if gpu_power else None,
        "engine_cpu_cores": (cpu[-1][1] - cpu[0][1]) / span if span > 0 else None,  # busy cores, on average
    }


def energy_fields(plan: EnergyPlan, samples: list[Sample], total_output_tokens: int) -> dict:
    joules = energy_between(plan, samples[0], samples[-1]) if len(samples) >= 2 else None
    source = plan.source if joules is not None else "none"
    return {"energy_j": joules, "energy_per_output_token_j": joules / total_output_tokens
            if joules is not None and total_output_tokens else None,
            "energy_source": source, "energy_note": plan.note if joules is not None or plan.source == "none"
            else f"{plan.source} readings were missing"}


def client_fields(load: LoadResult) -> dict:
    """The client's own cost: its code's time per request (parsing its answer or stream; bodies are encoded
    before the run), how late it sent requests compared with the plan, how late its event loop woke up,
    and its CPU use."""
    sent = [r for r in load.records if r.sent_s is not None]
    lag = np.asarray([(r.sent_s - r.intended_s) * 1e3 for r in load.records if r.sent_s is not None], dtype=float)
    overhead = np.asarray([r.client_s * 1e3 for r in sent], dtype=float)
    per_chunk = np.asarray([r.client_s * 1e3 / (len(r.token_s) + 1) for r in sent], dtype=float)
    loop = np.asarray(load.loop_lag_s, dtype=float) * 1e3
    return {"client_overhead_p50_ms": _stat(overhead, 50.0), "client_overhead_per_chunk_p50_ms": _stat(per_chunk, 50.0),
            "schedule_lag_p99_ms": _stat(lag, 99.0), "event_loop_lag_p99_ms": _stat(loop, 99.0),
            "client_cpu_fraction": load.client_cpu_s / load.wall_s if load.wall_s > 0 else None,
            "connection_retries": sum(r.connection_retries for r in load.records)}


def client_warnings(fields: dict, median_itl_ms: float | None, engine_cpu_cores: float | None = None,
                    cores: int | None = None) -> list[str]:
    """Where the client itself could have distorted the result."""
    out = []
    client_cpu = fields.get("client_cpu_fraction") or 0.0
    if engine_cpu_cores is not None and cores and engine_cpu_cores + client_cpu > CPU_WARN_FRACTION * cores:
        out.append(f"the engine ({engine_cpu_cores:.1f} cores) and this client ({client_cpu:.0%} of a core) kept the "
                   f"{cores} cores here busy: they compete for CPU, which can slow both; give the engine fewer threads "
                   "than cores, or run the client on another machine")
    lag = fields.get("schedule_lag_p99_ms")
    if lag is not None and lag > LAG_WARN_MS:
        out.append(f"the client sent requests up to {lag:.1f} ms later than planned (p99 schedule lag): the offered "
                   "load was lower than asked (latencies still count from the planned time)")
    loop = fields.get("event_loop_lag_p99_ms")
    if loop is not None and loop > LAG_WARN_MS:
        out.append(f"the client's event loop woke up to {loop:.1f} ms late (p99): token timestamps may be late by "
                   "as much")
    cpu = fields.get("client_cpu_fraction")
    if cpu is not None and cpu > CPU_WARN_FRACTION:
        out.append(f"the client used {cpu:.0%} of a CPU core: it may have limited the measured throughput")
    chunk = fields.get("client_overhead_per_chunk_p50_ms")
    if chunk is not None and median_itl_ms and chunk > 0.1 * median_itl_ms:
        out.append(f"the client spends {chunk:.3f} ms of its own code per streamed chunk (p50), over 10 % of the "
                   f"median inter-token latency ({median_itl_ms:.2f} ms)")
    return out


def summarize(load: LoadResult, samples: list[Sample], slots: int | None, slo: slo_mod.Slo | None,
              plan: EnergyPlan, ignore_eos: bool) -> dict:
    """Every summary field of one run (without the config and server description)."""
    records = load.records
    result = throughput_fields(records, load.wall_s)
    result.update(latency_fields(records))
    if slo:
        rows = [per_request(r) for r in records if r.ok]
        result.update(slo_mod.evaluate(slo, rows, len(records), load.wall_s, result))
    else:
        result["request_goodput"] = None
    result.update(engine_fields(samples, load.wall_s))
    result.update(energy_fields(plan, samples, result["total_output_tokens"]))
    client = client_fields(load)
    result.update(client)
    warnings = client_warnings(client, result["median_itl_ms"], result["engine_cpu_cores"],
                               available_cores())
    failed = [r for r in records if not r.ok]
    if failed:
        warnings.append(f"{len(failed)} of {len(records)} requests failed and are left out of the latency figures; "
                        f"first error: {failed[0].error}")
    short = [r for r in records if r.ok and r.output_tokens < r.requested_output_tokens]
    if ignore_eos and short:
        warnings.append(f"{len(short)} completed requests returned fewer tokens than asked (e.g. "
                        f"{short[0].output_tokens} < {short[0].requested_output_tokens}): the server may not honour "
                        "ignore_eos")
    if any(r.ok and not r.usage_reported for r in records):
        warnings.append("the server reported no usage: output tokens were counted as streamed text chunks")
    result["steady_state"] = steady_fields(records, slots)
    result["warnings"] = warnings
    return result


def _stat(data: np.ndarray, q: float | None) -> float | None:
    if data.size == 0:
        return None
    return float(np.mean(data)) if q is None else float(np.percentile(data, q))
