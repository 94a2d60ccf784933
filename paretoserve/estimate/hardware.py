"""Hardware specs for the roofline: built-in accelerators from public spec sheets, this machine's CPU, a user YAML."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from paretoserve.estimate.cpu_probe import CpuProbeConfig, probe_cpu
from paretoserve.limits import UserError


class HardwareError(UserError):
    """An unknown hardware name or a malformed spec file; the message names the field and what is allowed."""


@dataclass(frozen=True)
class HardwareSpec:
    """One device: memory in bytes, memory bandwidth in bytes/s, peak dense FLOP/s, and where the figures come from."""

    name: str
    description: str
    memory_bytes: int
    bandwidth_bytes_per_s: float
    peak_flops: float
    source: str
    bandwidth_measured: bool = False  # True when the bandwidth was measured here (already an achievable figure)

    @property
    def ridge_flops_per_byte(self) -> float:
        """Arithmetic intensity (FLOP/byte) above which a kernel is compute-bound rather than bandwidth-bound."""
        return self.peak_flops / self.bandwidth_bytes_per_s


# Dense FP16/BF16 tensor-core figures (datasheets print twice these "with sparsity"); memory in GB of 1e9 bytes.
SPARSE_NOTE = " (the sparse figure; dense is half)"
BUILTIN_SPECS = {
    "h100": dict(description="NVIDIA H100 SXM5 80 GB", memory_gb=80, bandwidth_gb_s=3350, peak_tflops=989.4,
                 source="NVIDIA H100 Tensor Core GPU datasheet (SXM5): 80 GB HBM3, 3.35 TB/s, FP16 tensor "
                        "1,979 TFLOPS" + SPARSE_NOTE),
    "h100-64gb": dict(description="NVIDIA H100 SXM5 64 GB (the paper's GPU, MareNostrum 5)", memory_gb=64,
                      bandwidth_gb_s=2680, peak_tflops=989.4,
                      source="no NVIDIA datasheet for this variant: 64 GB as the paper states; compute as the 80 GB "
                             "SXM5; bandwidth ASSUMED 4/5 of the 80 GB part's 3.35 TB/s (four of five HBM stacks); "
                             "calibrate before trusting absolute figures"),
    "h200": dict(description="NVIDIA H200 SXM 141 GB", memory_gb=141, bandwidth_gb_s=4800, peak_tflops=989.4,
                 source="NVIDIA H200 Tensor Core GPU datasheet (SXM): 141 GB HBM3e, 4.8 TB/s, FP16 tensor "
                        "1,979 TFLOPS" + SPARSE_NOTE),
    "a100-80gb": dict(description="NVIDIA A100 SXM4 80 GB", memory_gb=80, bandwidth_gb_s=2039, peak_tflops=312,
                      source="NVIDIA A100 Tensor Core GPU datasheet (SXM): 80 GB HBM2e, 2,039 GB/s, FP16 tensor "
                             "312 TFLOPS dense"),
    "a100-40gb": dict(description="NVIDIA A100 SXM4 40 GB", memory_gb=40, bandwidth_gb_s=1555, peak_tflops=312,
                      source="NVIDIA A100 Tensor Core GPU datasheet (SXM): 40 GB HBM2, 1,555 GB/s, FP16 tensor "
                             "312 TFLOPS dense"),
    "l4": dict(description="NVIDIA L4 24 GB", memory_gb=24, bandwidth_gb_s=300, peak_tflops=121,
               source="NVIDIA L4 Tensor Core GPU datasheet: 24 GB GDDR6, 300 GB/s, FP16 tensor 242 TFLOPS"
                      + SPARSE_NOTE),
    "l40s": dict(description="NVIDIA L40S 48 GB", memory_gb=48, bandwidth_gb_s=864, peak_tflops=362.05,
                 source="NVIDIA L40S GPU datasheet: 48 GB GDDR6, 864 GB/s, FP16 tensor 733 TFLOPS" + SPARSE_NOTE),
}
YAML_REQUIRED = ("memory_gb", "bandwidth_gb_s", "peak_tflops")
YAML_OPTIONAL = ("name", "description", "source", "bandwidth_measured")


def hardware_names() -> list[str]:
    """Every name `--hardware` accepts besides a YAML path: `cpu` and the built-in accelerators."""
    return ["cpu", *BUILTIN_SPECS]


def load_hardware(name: str, probe: CpuProbeConfig | None = None) -> HardwareSpec:
    """A built-in spec by name, `cpu` (this machine, probed and cached), or a YAML file path."""
    if name == "cpu":
        return cpu_spec(probe or CpuProbeConfig())
    if name in BUILTIN_SPECS:
        return spec_from_fields(name, BUILTIN_SPECS[name], where="built-in")
    if name.endswith((".yaml", ".yml")) or Path(name).is_file():
        return spec_from_yaml(Path(name))
    raise HardwareError(f"--hardware: unknown hardware {name!r}; known: {', '.join(hardware_names())}, "
                        "or a YAML file (see --hardware list)")


def cpu_spec(probe: CpuProbeConfig) -> HardwareSpec:
    """This machine: bandwidth measured once with numpy (cached), peak FLOP/s from cores, clock and vector width."""
    cpu = probe_cpu(probe)
    return HardwareSpec(
        name="cpu", description=f"{cpu.model} ({cpu.cores} cores, {cpu.vector_bits}-bit vectors, {cpu.ghz:.2f} GHz)",
        memory_bytes=cpu.memory_bytes, bandwidth_bytes_per_s=cpu.bandwidth_bytes_per_s, peak_flops=cpu.peak_flops,
        source=(f"measured here: numpy read bandwidth on {cpu.threads} threads ({cpu.measured_at}); peak = "
                f"{cpu.cores} cores x {cpu.fma_units} FMA units x {cpu.vector_bits // 32} fp32 lanes x 2 x "
                f"{cpu.ghz:.2f} GHz from /proc/cpuinfo (fp32; llama.cpp's int8 dot products on quantised "
                "weights can beat it, so a calibrated compute efficiency above 1 is possible)"),
        bandwidth_measured=True)


def spec_from_yaml(path: Path) -> HardwareSpec:
    """A user spec: memory_gb, bandwidth_gb_s, peak_tflops (dense, in the dtype you serve), optional name,
    description, source and bandwidth_measured (true when the bandwidth is one you measured, not a spec figure)."""
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise HardwareError(f"--hardware {path}: cannot read it ({exc.strerror or exc})") from exc
    except yaml.YAMLError as exc:
        raise HardwareError(f"--hardware {path}: not valid YAML ({exc})") from exc
    if not isinstance(data, dict):
        raise HardwareError(f"--hardware {path}: expected a mapping with {', '.join(YAML_REQUIRED)}")
    return spec_from_fields(str(data.get("name") or path.stem), data, where=str(path))


def spec_from_fields(name: str, fields: dict, where: str) -> HardwareSpec:
    """Check a spec's fields (units in their names) and build it; errors name the field."""
    allowed = (*YAML_REQUIRED, *YAML_OPTIONAL)
    for key in fields:
        if key not in allowed:
            raise HardwareError(f"--hardware {where}: unknown field {key!r}; allowed: {', '.join(allowed)}")
    values = {}
    for key in YAML_REQUIRED:
        if key not in fields:
            raise HardwareError(f"--hardware {where}: missing field {key!r} (required: {', '.join(YAML_REQUIRED)})")
        value = fields[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            raise HardwareError(f"--hardware {where}: field {key!r} must be a positive number; got {value!r}")
        values[key] = float(value)
    measured = fields.get("bandwidth_measured", False)
    if not isinstance(measured, bool):
        raise HardwareError(f"--hardware {where}: field 'bandwidth_measured' must be true or false; got {measured!r}")
    return HardwareSpec(name=name, description=str(fields.get("description") or name),
                        memory_bytes=int(values["memory_gb"] * 1e9),
                        bandwidth_bytes_per_s=values["bandwidth_gb_s"] * 1e9,
                        peak_flops=values["peak_tflops"] * 1e12,
                        source=str(fields.get("source") or f"user spec {where}"), bandwidth_measured=measured)
