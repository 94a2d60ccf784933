"""The advice for people: rich tables of the batches, the memory, the replica plan, frontiers and commands."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from paretoserve.advise.advice import Advice


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
