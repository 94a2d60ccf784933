"""The advice (`advise --json`'s fields) read into what the report shows; the one place that knows its shape."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from paretoserve.report.sweep_data import ReportError

LATENCY_FIELDS = ("ttft_ms", "tpot_ms", "itl_ms", "e2el_ms")


@dataclass(frozen=True)
class MemoryBreakdown:
    """How the device's memory splits at B_opt, in bytes; weights is None when the advice does not know it."""

    device_bytes: int
    weights_bytes: int | None
    kv_need_bytes: int
    kv_freed_bytes: int

    def rest_bytes(self) -> int:
        """Device memory not taken by weights, needed KV or freed KV (runtime, activations, headroom)."""
        return max(0, self.device_bytes - (self.weights_bytes or 0) - self.kv_need_bytes - self.kv_freed_bytes)


@dataclass(frozen=True)
class ReplicaPlan:
    """N replicas of batch cap B each, with the throughput (tok/s) and latencies (ms) expected of them."""

    replicas: int
    max_batch: int
    measured: bool
    output_throughput: float | None
    latencies_ms: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Recommendation:
    """The advice as the report shows it; b_opt is None when no batch met the SLO and efficiency floor."""

    b_opt: int | None
    slo_text: str
    slo_limits_ms: dict[str, float]  # latency field (e.g. mean_tpot_ms) -> limit, for the plots
    rejected: list[tuple[str, str]]  # (batch, why it was rejected)
    throughput_fraction: float | None
    kv_need_bytes: int | None
    kv_need_fraction: float | None
    freed_bytes: int | None
    freed_fraction: float | None
    memory: MemoryBreakdown | None
    replica_plan: ReplicaPlan | None
    commands: list[tuple[str, str]]  # (what it launches, command line)
    raw: dict


def load_advice_file(path: str | Path) -> dict:
    """A saved `advise --json` output; a missing or malformed file is an error naming --advice."""
    try:
        data = json.loads(Path(path).read_text())
    except OSError as exc:
        raise ReportError(f"--advice: cannot read {path}: {exc.strerror or exc}") from exc
    except ValueError as exc:
        raise ReportError(f"--advice: {path} is not JSON ({exc}); give a file saved from `advise --json`") from exc
    if not isinstance(data, dict) or "b_opt" not in data:
        raise ReportError(f"--advice: {path} is not `advise --json` output (no b_opt field)")
    return data


def as_advice_dict(advice) -> dict | None:
    """Accept the advise package's result object (pydantic) or its JSON dict."""
    if advice is None or isinstance(advice, dict):
        return advice
    if hasattr(advice, "model_dump"):
        return advice.model_dump(mode="json")
    raise TypeError(f"advice must be a dict or have model_dump(); got {type(advice).__name__}")


def read_recommendation(advice: dict, device_bytes: int | None) -> Recommendation:
    """Pick the fields the report shows out of the advice dict."""
    b_opt = advice.get("b_opt")
    memory = _memory(advice, device_bytes) if b_opt is not None else None
    return Recommendation(
        b_opt=int(b_opt) if b_opt is not None else None,
        slo_text=_slo_text(advice.get("slo")), slo_limits_ms=_slo_limits(advice.get("slo")),
        rejected=_rejected(advice.get("rejected")),
        throughput_fraction=advice.get("throughput_fraction_at_b_opt"),
        kv_need_bytes=advice.get("kv_need_bytes"), kv_need_fraction=advice.get("kv_need_fraction"),
        freed_bytes=advice.get("freed_bytes"), freed_fraction=advice.get("freed_fraction"),
        memory=memory, replica_plan=_replica_plan(advice.get("replica_plan")),
        commands=_commands(advice.get("commands")), raw=advice)


def _slo_text(slo) -> str:
    if slo is None:
        return "none"
    if isinstance(slo, str):
        return slo
    if isinstance(slo, dict):
        return slo.get("text") or slo.get("description") or ", ".join(f"{k}: {v}" for k, v in slo.items())
    return str(slo)


def _slo_limits(slo) -> dict[str, float]:
    """Latency limits in ms keyed by summary field, from either {'field': limit} or a list of terms."""
    if not isinstance(slo, dict):
        return {}
    terms = slo.get("terms") or slo.get("limits") or slo
    if isinstance(terms, dict):
        terms = [{"field": k, "limit_ms": v} for k, v in terms.items()]
    limits = {}
    for term in terms if isinstance(terms, list) else []:
        if not isinstance(term, dict):
            continue
        name = term.get("field") or term.get("metric")
        limit = term.get("limit_ms", term.get("limit"))
        if isinstance(name, str) and isinstance(limit, (int, float)) and name.endswith(LATENCY_FIELDS):
            limits[name] = float(limit)
    return limits


def _rejected(rejected) -> list[tuple[str, str]]:
    if isinstance(rejected, dict):
        return [(str(batch), str(why)) for batch, why in rejected.items()]
    rows = []
    for item in rejected or []:
        if isinstance(item, dict):
            batch = item.get("max_batch", item.get("batch", "?"))
            why = item.get("reason") or item.get("why") or "; ".join(item.get("reasons") or []) or "?"
            rows.append((str(batch), str(why)))
        else:
            rows.append((str(item), ""))
    return rows


def _memory(advice: dict, device_bytes: int | None) -> MemoryBreakdown | None:
    """The advice's own breakdown when it gives one, else built from its KV figures and the device size."""
    given = advice.get("memory") or advice.get("memory_breakdown") or {}
    device = given.get("device_bytes") or advice.get("device_memory_bytes") or device_bytes
    kv_need = given.get("kv_need_bytes", advice.get("kv_need_bytes"))
    freed = given.get("kv_freed_bytes", given.get("freed_bytes", advice.get("freed_bytes")))
    if not device or kv_need is None or freed is None:
        return None
    weights = given.get("weights_bytes", advice.get("weights_bytes"))
    return MemoryBreakdown(int(device), int(weights) if weights is not None else None, int(kv_need), int(freed))


def _replica_plan(plan) -> ReplicaPlan | None:
    if not isinstance(plan, dict) or not plan.get("replicas") or not plan.get("max_batch"):
        return None
    status = str(plan.get("predicted_or_measured", "predicted"))
    throughput = plan.get("output_throughput", plan.get("expected_output_throughput", plan.get("throughput")))
    latencies = {k: float(v) for k, v in plan.items() if k.endswith(LATENCY_FIELDS) and isinstance(v, (int, float))}
    return ReplicaPlan(int(plan["replicas"]), int(plan["max_batch"]), status == "measured",
                       float(throughput) if throughput is not None else None, latencies)


def _commands(commands) -> list[tuple[str, str]]:
    if isinstance(commands, dict):
        return [(str(name), line if isinstance(line, str) else " ".join(map(str, line)))
                for name, line in commands.items()]
    rows = []
    for item in commands or []:
        if isinstance(item, dict):
            rows.append((str(item.get("name") or item.get("engine") or ""), str(item.get("command") or item)))
        else:
            rows.append(("", str(item)))
    return rows
