"""The roofline of one decode step: bytes moved and FLOPs per component, time = max(bytes / bandwidth, FLOPs / peak).

Linear layers read their weights once per step for the whole batch, so their arithmetic intensity grows with
the batch; attention reads every sequence's own KV cache, so its intensity stays flat and it stays
bandwidth-bound ("Mind the Memory Gap", arXiv 2503.08311).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from paretoserve.estimate.hardware import HardwareSpec
from paretoserve.geometry import ModelGeometry

COMPONENTS = ("qkv_out", "mlp", "attention", "lm_head", "embeddings")
COMPONENT_LABELS = {"qkv_out": "QKV/out projections", "mlp": "MLP", "attention": "attention over KV",
                    "lm_head": "LM head", "embeddings": "embeddings"}
LOGIT_BYTES = 4  # engines write fp32 logits
WEIGHT_GROUPS = {"qkv_out": "attention", "mlp": "mlp", "lm_head": "lm_head"}  # component -> ModelGeometry.params


@dataclass(frozen=True)
class Workload:
    """Request shape: prompt and output tokens per request (the mean context of a decode step follows)."""

    input_tokens: int = 128
    output_tokens: int = 128

    @property
    def mean_context(self) -> float:
        """Tokens in a sequence's KV cache at the average decode step: the prompt plus half the output."""
        return self.input_tokens + self.output_tokens / 2

    @property
    def tokens_per_sequence(self) -> int:
        return self.input_tokens + self.output_tokens


@dataclass(frozen=True)
class EngineAssumptions:
    """How the serving engine lays out memory: KV dtype, KV read granularity, sliding windows, activations."""

    name: str = "llama.cpp"
    kv_dtype_bytes: float = 2.0  # f16 KV cache, the default of llama.cpp and vLLM
    activation_bytes: float = 4.0  # llama.cpp keeps activations in f32; vLLM in the model dtype
    kv_pad_tokens: int = 256  # llama.cpp attends over the used cells rounded up to 256; vLLM pages of 16
    swa_full: bool = True  # sliding-window layers keep and read the whole context (llama.cpp's default)
    memory_fraction: float = 0.9  # share of device memory the engine may use (vLLM's gpu_memory_utilization)


ENGINES = {
    "llama.cpp": EngineAssumptions(),
    "vllm": EngineAssumptions(name="vllm", activation_bytes=2.0, kv_pad_tokens=16, swa_full=False),
}


@dataclass(frozen=True)
class Efficiency:
    """Achieved fraction of peak per resource, plus a fixed cost per step; fitted by `calibrate`.

    Defaults before calibration: 80 % of spec-sheet bandwidth (what STREAM-like kernels reach on HBM),
    100 % of a bandwidth measured here, and 50 % of peak FLOP/s.
    """

    weights_bandwidth: float = 0.8
    kv_bandwidth: float = 0.8
    compute: float = 0.5
    step_overhead_s: float = 0.0  # scheduling, sampling and kernel launches: time per step no roofline sees
    source: str = "default (uncalibrated)"


def default_efficiency(hardware: HardwareSpec) -> Efficiency:
    """The uncalibrated factors: a measured bandwidth is already achievable, a spec-sheet one is not."""
    if hardware.bandwidth_measured:
        return Efficiency(weights_bandwidth=1.0, kv_bandwidth=1.0, source="default (uncalibrated, measured bandwidth)")
    return Efficiency()


@dataclass(frozen=True)
class ComponentCost:
    """One component in one decode step: bytes read/written, FLOPs, its time (s) and which resource bounds it."""

    name: str
    bytes: float
    flops: float
    time_s: float
    bound: str  # "bandwidth" or "compute"

    @property
    def intensity(self) -> float:
        """Arithmetic intensity in FLOP/byte."""
        return self.flops / self.bytes if self.bytes else 0.0


@dataclass(frozen=True)
class StepPrediction:
    """The predicted decode step at one batch size; every figure is `predicted`, none measured."""

    batch: float  # sequences decoded together; a measured mean batch may be fractional
    context_tokens: float
    components: list[ComponentCost]
    step_s: float
    prefill_s_per_request: float
    output_throughput: float  # output tok/s in steady state, prefill included
    kv_bytes: int  # KV cache the batch allocates (full sequences)
    fits_memory: bool
    compute_utilisation: float
    bandwidth_utilisation: float
    bound_by: str
    label: str = field(default="predicted")

    @property
    def itl_s(self) -> float:
        """Inter-token latency of one sequence: one decode step."""
        return self.step_s


def predict(geometry: ModelGeometry, hardware: HardwareSpec, batch: float, workload: Workload,
            engine: EngineAssumptions, efficiency: Efficiency) -> StepPrediction:
    """Predict one decode step at `batch` sequences of `workload`'s mean context on `hardware`."""
    if batch < 1:
        raise ValueError(f"batch must be >= 1; got {batch}")
    context = workload.mean_context
    costs = []
    for name in COMPONENTS:
        nbytes, flops = component_traffic(geometry, name, batch, context, engine)
        bandwidth = hardware.bandwidth_bytes_per_s * (efficiency.kv_bandwidth if name == "attention"
                                                      else efficiency.weights_bandwidth)
        memory_s, compute_s = nbytes / bandwidth, flops / (hardware.peak_flops * efficiency.compute)
        costs.append(ComponentCost(name, nbytes, flops, max(memory_s, compute_s),
                                   "bandwidth" if memory_s >= compute_s else "compute"))
    step = sum(c.time_s for c in costs) + efficiency.step_overhead_s
    prefill = prefill_flops_per_request(geometry, workload) / (hardware.peak_flops * efficiency.compute)
    decode_steps = max(workload.output_tokens - 1, 0)  # the first output token comes out of the prefill
    throughput = batch * workload.output_tokens / (decode_steps * step + batch * prefill)
    kv = kv_bytes_per_batch(geometry, batch, workload, engine)
    return StepPrediction(
        batch=batch, context_tokens=context, components=costs, step_s=step, prefill_s_per_request=prefill,
        output_throughput=throughput, kv_bytes=kv, fits_memory=batch <= max_batch_fitting(geometry, hardware,
                                                                                         workload, engine),
        compute_utilisation=sum(c.flops for c in costs) / (step * hardware.peak_flops),
        bandwidth_utilisation=sum(c.bytes for c in costs) / (step * hardware.bandwidth_bytes_per_s),
        bound_by=max(costs, key=lambda c: c.time_s).name)


def component_traffic(geometry: ModelGeometry, name: str, batch: float, context: float,
                      engine: EngineAssumptions) -> tuple[float, float]:
    """(bytes, FLOPs) of one component over one decode step of `batch` sequences at `context` tokens."""
    g, act = geometry, engine.activation_bytes
    if name == "attention":
        kv_token_bytes = g.kv_shape().layer_bytes_per_token(engine.kv_dtype_bytes)
        cells = attended_cells(g, context, engine)
        return batch * cells * kv_token_bytes, batch * cells * 4 * g.heads * g.head_dim
    if name == "embeddings":
        return batch * g.hidden * (g.bytes_per_param["embeddings"] + act), 0.0
    group = WEIGHT_GROUPS[name]
    weights = g.params(group) * g.bytes_per_param[group]
    if name == "qkv_out":  # activations in and out of Q, K, V and the output projection
        per_token = g.layers * (2 * g.hidden + (2 * g.heads + 2 * g.kv_heads) * g.head_dim) * act
    elif name == "mlp":
        per_token = g.layers * (2 * g.hidden + g.ffn_matrices * g.ffn) * act
    else:  # the LM head writes one fp32 logit per vocabulary entry
        per_token = g.hidden * act + g.vocab * LOGIT_BYTES
    return weights + batch * per_token, 2.0 * batch * g.params(group)



def attended_cells(geometry: ModelGeometry, context: float, engine: EngineAssumptions) -> float:
    """KV cells one sequence's query reads summed over layers, padded as the engine pads them."""
    padded = math.ceil(context / engine.kv_pad_tokens) * engine.kv_pad_tokens
    if engine.swa_full or not geometry.sliding_window:
        return geometry.layers * padded
    local = min(padded, geometry.sliding_window)
    return geometry.local_layers * local + (geometry.layers - geometry.local_layers) * padded


def prefill_flops_per_request(geometry: ModelGeometry, workload: Workload) -> float:
    """FLOPs of one prompt: every prompt token through the layers, attention over the prompt, logits of the last."""
    g, n = geometry, workload.input_tokens
    linear = 2.0 * n * (g.params("attention") + g.params("mlp"))
    attention = 4.0 * g.layers * g.heads * g.head_dim * n * n / 2
    return linear + attention + 2.0 * g.params("lm_head")


def kv_bytes_per_batch(geometry: ModelGeometry, batch: float, workload: Workload, engine: EngineAssumptions) -> int:
    """KV cache bytes `batch` full-length sequences hold (every layer keeps every token when swa_full)."""
    tokens = workload.tokens_per_sequence
    if engine.swa_full or not geometry.sliding_window:
        per_sequence: float = tokens * geometry.kv_bytes_per_token(engine.kv_dtype_bytes)
    else:
        per_layer = geometry.kv_shape().layer_bytes_per_token(engine.kv_dtype_bytes)
        per_sequence = per_layer * (geometry.local_layers * min(tokens, geometry.sliding_window)
                                    + (geometry.layers - geometry.local_layers) * tokens)
    return int(batch * per_sequence)


def max_batch_fitting(geometry: ModelGeometry, hardware: HardwareSpec, workload: Workload,
                      engine: EngineAssumptions) -> int:
    """Largest batch whose weights + KV cache + fp32 logits fit the engine's share of device memory (0 if none)."""
    free = hardware.memory_bytes * engine.memory_fraction - geometry.weight_bytes
    per_sequence = kv_bytes_per_batch(geometry, 1, workload, engine) + geometry.vocab * LOGIT_BYTES
    return max(int(free // per_sequence), 0)
