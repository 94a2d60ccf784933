"""The advice for people: rich tables of the batches, the memory, the replica plan, frontiers and commands; of a
placement, each model's B_opt, the memory map and the arrangements compared."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from paretoserve.advise.advice import Advice
from paretoserve.advise.memory_map import MemoryMap
from paretoserve.advise.placement_view import PlacementView
from paretoserve.results.placement import ColocationFigures, MixCapacityFigures


def size(n: float | None) -> str:
    """Bytes as GiB / MiB with the unit; '-' when unknown."""
    if n is None:
        return "-"
    return f"{n / 2**30:.2f} GiB" if abs(n) >= 2**30 else f"{n / 2**20:.1f} MiB"


def share(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.2f} %"


def rate(x: float, ci95: tuple[float, float] | None) -> str:
    """A throughput, with its 95 % interval over repeats in brackets where it has one."""
    return f"{x:,.1f}" + (f" [{ci95[0]:,.1f}, {ci95[1]:,.1f}]" if ci95 else "")


def batches_table(advice: Advice) -> Table:
    fields = [lim.field for lim in advice.slo.limits]
    table = Table(title=f"BCA: B_opt = {advice.b_opt} under {escape(advice.slo.text)}"
                        + (f", efficiency > {advice.slo.min_efficiency:g}" if advice.slo.min_efficiency else "")
                        + (f" ({advice.b_opt_certainty})" if advice.b_opt_certainty else ""))
    for column in ("batch", "cap", advice.throughput_metric, "efficiency"):
        table.add_column(column, justify="right")
    table.add_column("verdict")
    for v in advice.batches:
        mark = "[bold green]B_opt[/]" if v.key == advice.b_opt_key else ("ok" if v.meets else
                                                                        escape("; ".join(v.reasons)))
        table.add_row(str(v.batch), str(v.max_batch), rate(v.throughput, v.throughput_ci95),
                      "-" if v.efficiency is None else f"{v.efficiency:.3f}", mark)
    table.caption = (f"limits on {', '.join(fields)}; "
                     f"throughput kept at B_opt: {share(advice.throughput_fraction_at_b_opt)}")
    return table


def memory_table(advice: Advice) -> Table:
    m = advice.memory
    table = Table(title="Memory", show_header=False)
    table.add_column("what")
    table.add_column("value", justify="right")
    table.add_column("source")
    table.add_row("device memory", size(m.device_memory_bytes), escape(m.device_memory_source))
    table.add_row("KV needed at B_opt", size(m.kv_need_bytes), escape(m.kv_need_source))
    table.add_row("default KV allocation", size(m.default_kv_bytes), escape(m.default_kv_source))
    table.add_row("freed", f"{size(m.freed_bytes)} ({share(m.freed_fraction)} of device)", "default - needed")
    for part in m.breakdown:
        table.add_row(f"  {part.part}", f"{size(part.bytes)} ({share(part.fraction)})", "")
    return table


def plan_table(advice: Advice) -> Table:
    plan = advice.replica_plan
    table = Table(title=f"Replica plan: {plan.replicas} x B={plan.max_batch} ({plan.predicted_or_measured}), "
                        f"{plan.gain_vs_baseline:+.1%} vs the best single engine")
    for column in ("replicas", "cap", plan.throughput_metric, "mean TPOT ms", "mean ITL ms", "kind", "SLO"):
        table.add_column(column, justify="right")
    for o in plan.options:
        chosen = (o.replicas, o.max_batch, o.predicted_or_measured) == (plan.replicas, plan.max_batch,
                                                                        plan.predicted_or_measured)
        low = f" (>= {o.throughput_low:,.0f})" if o.throughput_low is not None else ""
        table.add_row(f"{'> ' if chosen else ''}{o.replicas}", str(o.max_batch),
                      rate(o.throughput, o.throughput_ci95) + low,
                      f"{o.latency_ms.get('mean_tpot_ms', float('nan')):.2f}",
                      f"{o.latency_ms.get('mean_itl_ms', float('nan')):.2f}", o.predicted_or_measured,
                      "ok" if o.meets_slo else escape("; ".join(o.reasons)))
    table.caption = escape(plan.note + (f"; {plan.decision}" if plan.decision else ""))
    if (r := advice.roofline) is not None:
        table.caption += "\n" + escape(r.text())
    return table


def frontier_table(advice: Advice) -> Table:
    table = Table(title="Pareto frontiers (non-dominated points, as replicas x batch)")
    table.add_column("frontier")
    table.add_column("points")
    for f in advice.pareto:
        points = ", ".join(f"{p.config['replicas']}x{p.config['batch']}" for p in f.points) or "(not measured)"
        table.add_row(f"{f.y} vs {f.x}", points)
    return table


def print_advice(advice: Advice, console: Console | None = None) -> None:
    """Everything in the advice, as tables, then the launch commands."""
    console = console or Console()
    console.print(f"[bold]advise[/] {escape(advice.sweep_dir)}: model {escape(str(advice.model))}, "
                  f"device {escape(str(advice.device))}")
    for table in (batches_table(advice), memory_table(advice), plan_table(advice), frontier_table(advice)):
        console.print(table)
    if advice.capacity is not None:
        console.print(f"[bold]Capacity[/] ({escape(advice.capacity.directory)}): {escape(advice.capacity.summary)}")
        for step in advice.capacity.arithmetic:
            console.print(f"  {escape(step)}")
    c = advice.commands
    console.print("[bold]Launch commands[/]")
    for label, line in (("embedded engine", c.engine), ("replica plan", c.serve), ("llama-server", c.llama_server),
                        ("vLLM", c.vllm), ("vLLM (KV bytes)", c.vllm_kv_bytes)):
        if line:
            console.print(f"  {label}: ", escape(line), soft_wrap=True)


def model_lines(view: PlacementView) -> list[str]:
    """Each model's B_opt and plan from its own tune, and how it is placed: one line each."""
    out = []
    for m in view.models:
        a, plan = m.advice, m.advice.replica_plan
        cap = f" (cap {a.b_opt_max_batch})" if a.b_opt_max_batch != a.b_opt else ""
        threads = f"{m.threads_per_replica} thread{'s' if m.threads_per_replica != 1 else ''}"
        kv = f", KV {m.kv_tokens} tokens" if m.kv_tokens is not None else ""
        out.append(f"[bold]{escape(m.name)}[/] (share {m.share:.2f}): B_opt = {a.b_opt}{cap} under "
                   f"{escape(a.slo.text)}, {a.throughput_at_b_opt:,.1f} {a.throughput_metric}; alone "
                   f"{plan.replicas} x B={plan.max_batch} ({plan.predicted_or_measured}); placed "
                   f"{m.replicas} x cap {m.max_batch}, {threads}{kv} ({escape(str(m.advice_path))})")
    return out


def memory_map_table(memory: MemoryMap, names: list[str]) -> Table:
    """The device's memory: each model's weights and KV per replica, its share, and what stays free."""
    table = Table(title="Memory map of the device")
    for column in ("model", "replicas", "cap", "weights", "KV per replica", "KV tokens", "memory share", "total"):
        table.add_column(column, justify="left" if column == "model" else "right")
    for name, m in zip(names, memory.models, strict=True):
        table.add_row(escape(name), str(m.replicas), str(m.max_batch), size(m.weights_bytes), size(m.kv_bytes),
                      f"{m.kv_tokens:,}", share(m.mem_fraction), size(m.total_bytes))
    device = memory.device_bytes
    table.caption = (f"used {size(memory.used_bytes)} of {size(device)} ({share(memory.used_bytes / device)}), "
                     f"free {size(memory.free_bytes)}" if device else
                     f"used {size(memory.used_bytes)}; the device's memory is unknown (give --device-memory)")
    return table


def arrangements_table(c: ColocationFigures) -> Table:
    """Each arrangement's mix throughput beside the placement's."""
    table = Table(title="The placement against the alternatives: mix throughput, min_i(rate_i / share_i)")
    for column in ("arrangement", "devices", "mix req/s", "req/s per device", "placement / it, per device"):
        table.add_column(column, justify="left" if column == "arrangement" else "right")
    table.add_row("[bold]placement[/]", "1", f"{c.placement_rps:.2f}", f"{c.placement_rps:.2f}", "")
    table.add_row("time-sharing", "1", f"{c.time_sharing_rps:.2f}", f"{c.time_sharing_rps:.2f}",
                  _times(c.ratio(c.time_sharing_rps)))
    table.add_row(f"one device per model (needs {c.devices})", str(c.devices), f"{c.solo_rps:.2f}",
                  f"{c.solo_per_device_rps:.2f}", _times(c.ratio(c.solo_per_device_rps)))
    return table


def model_rates_table(c: ColocationFigures) -> Table:
    """Each model's rate in each arrangement and its interference (placement over solo)."""
    table = Table(title="Each model's rate, requests/s (goodput where it has an SLO)")
    for column in ("model", "share", "placement", "time-sharing", "solo", "placement / solo"):
        table.add_column(column, justify="left" if column == "model" else "right")
    for m in c.models:
        table.add_row(escape(m.name), f"{m.share:.2f}", f"{m.placement_rps:.2f}", f"{m.time_sharing_rps:.2f}",
                      f"{m.solo_rps:.2f}", "-" if m.interference is None else f"{m.interference:.2f}")
    table.caption = f"{c.runs} runs in {c.wall_s / 60:.1f} min"
    return table


def mix_capacity_table(capacity: MixCapacityFigures) -> Table:
    """Every total rate of the mix tried, and each model's rate and attainment there."""
    head = (f"Mix capacity: {capacity.capacity_rps:.3g} req/s in all" if capacity.capacity_rps is not None
            else "Mix capacity: none found")
    table = Table(title=f"{head}, every model {capacity.attainment:.0%} within its SLO")
    table.add_column("total req/s", justify="right")
    table.add_column("verdict")
    table.add_column("each model: req/s, within its SLO")
    for run in capacity.runs:
        models = "; ".join(f"{m.name} {m.rate_rps:.3g} req/s {m.attainment:.1%}{'' if m.met else ' (missed)'}"
                           for m in run.models)
        table.add_row(f"{run.rate_rps:.4g}", "met" if run.met else "missed", escape(models))
    if capacity.stop_reason:
        table.caption = escape(capacity.stop_reason)
    return table


def print_placement(view: PlacementView, console: Console | None = None) -> None:
    """A placement: each model's B_opt and plan, the memory map, the arrangements compared, the mix's capacity."""
    console = console or Console()
    console.print(f"[bold]advise[/] {escape(str(view.path))}: {len(view.models)} models on one device of "
                  f"{view.cores} cores")
    for line in model_lines(view):
        console.print(line, soft_wrap=True)
    tables = [memory_map_table(view.memory, [m.name for m in view.models]),
              arrangements_table(view.colocation), model_rates_table(view.colocation)]
    for table in tables + ([mix_capacity_table(view.mix_capacity)] if view.mix_capacity else []):
        console.print(table)
    for warning in view.colocation.warnings:
        console.print(f"warning: {escape(warning)}")
    console.print("[bold]Serve it[/]: ", escape(view.serve), soft_wrap=True)


def _times(ratio: float | None) -> str:
    return "-" if ratio is None else f"{ratio:.2f} x"
