"""The plateau in words and numbers: what bounds each step, where throughput stops growing, and why."""

from __future__ import annotations

from paretoserve.estimate.hardware import HardwareSpec
from paretoserve.estimate.roofline import COMPONENT_LABELS, StepPrediction

PLATEAU_SHARE = 0.9  # "on the plateau" = within 90 % of the best predicted throughput


def explain(curve: list[StepPrediction], hardware: HardwareSpec, max_batch_fitting: int) -> list[str]:
    """Sentences about a predicted curve (smallest batch first): bound, plateau, attention vs MLP, memory."""
    if not curve:
        return []
    first, last = curve[0], curve[-1]
    lines = [_step_sentence(first, hardware)]
    best = max(curve, key=lambda p: p.output_throughput)
    plateau = next(p for p in curve if p.output_throughput >= PLATEAU_SHARE * best.output_throughput)
    bound = next(c for c in plateau.components if c.name == plateau.bound_by)
    lines.append(f"Throughput reaches {PLATEAU_SHARE:.0%} of its predicted best ({best.output_throughput:,.0f} tok/s "
                 f"at B={best.batch}) from B={plateau.batch} ({plateau.output_throughput:,.0f} tok/s, "
                 f"ITL {plateau.step_s * 1e3:.1f} ms; largest part: the {COMPONENT_LABELS[bound.name]}, "
                 f"{bound.bound}-bound); larger batches add latency more than throughput.")
    lines.append(_attention_sentence(curve, hardware))
    lines.append(_mlp_sentence(curve, hardware))
    lines.append(f"At B={last.batch}: {_share(last, 'attention'):.0%} of the step is attention, compute utilisation "
                 f"{last.compute_utilisation:.0%}, bandwidth utilisation {last.bandwidth_utilisation:.0%} of peak.")
    lines.append(f"KV cache at B={last.batch}: {last.kv_bytes / 1e9:.2f} GB; the largest batch that fits "
                 f"{hardware.memory_bytes / 1e9:.0f} GB (weights + KV + logits) is B={max_batch_fitting:,}.")
    return lines


def _share(p: StepPrediction, name: str) -> float:
    return next(c.time_s for c in p.components if c.name == name) / p.step_s


def _step_sentence(p: StepPrediction, hardware: HardwareSpec) -> str:
    total = sum(c.bytes for c in p.components)
    weights = total - next(c.bytes for c in p.components if c.name == "attention")
    bound = next(c for c in p.components if c.name == p.bound_by)
    return (f"At B={p.batch} one step moves {total / 1e6:,.0f} MB ({weights / total:.0%} of it weights and "
            f"activations) in {p.step_s * 1e3:.2f} ms, {p.output_throughput:,.0f} tok/s; the largest part is the "
            f"{COMPONENT_LABELS[p.bound_by]} ({bound.bound}-bound), compute utilisation {p.compute_utilisation:.0%}.")


def _attention_sentence(curve: list[StepPrediction], hardware: HardwareSpec) -> str:
    intensity = next(c for c in curve[-1].components if c.name == "attention").intensity
    dominant = next((p for p in curve if _share(p, "attention") >= 0.5), None)
    flat = (f"its arithmetic intensity stays {intensity:.1f} FLOP/byte at every batch (each sequence reads its "
            f"own KV cache) against a ridge point of {hardware.ridge_flops_per_byte:.0f} FLOP/byte")
    if dominant is None:
        return (f"Attention over the KV cache stays under half of the step up to B={curve[-1].batch} "
                f"({_share(curve[-1], 'attention'):.0%}); {flat}.")
    bound = next(c for c in dominant.components if c.name == "attention").bound
    return (f"From B={dominant.batch} attention over the KV cache is {_share(dominant, 'attention'):.0%} of the step "
            f"and {bound}-bound; {flat}; compute utilisation {dominant.compute_utilisation:.0%}.")


def _mlp_sentence(curve: list[StepPrediction], hardware: HardwareSpec) -> str:
    mlp = [next(c for c in p.components if c.name == "mlp") for p in curve]
    compute = next((p for p, c in zip(curve, mlp, strict=True) if c.bound == "compute"), None)
    growth = (f"The MLP's intensity grows with the batch ({mlp[0].intensity:.1f} FLOP/byte at B={curve[0].batch}, "
              f"{mlp[-1].intensity:.0f} at B={curve[-1].batch}: its weights are read once per step for all sequences)")
    if compute is None:
        return f"{growth} but stays bandwidth-bound up to B={curve[-1].batch}."
    return f"{growth}; it is compute-bound from B={compute.batch}."
