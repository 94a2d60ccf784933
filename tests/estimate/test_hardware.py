"""Hardware specs: built-ins with sources, user YAML with errors that name the field, the CPU probe and its cache."""

from __future__ import annotations

import pytest

from paretoserve.estimate import cpu_probe
from paretoserve.estimate.cpu_probe import CpuProbeConfig
from paretoserve.estimate.hardware import BUILTIN_SPECS, HardwareError, hardware_names, load_hardware

CPUINFO = """processor\t: 0
model name\t: Test CPU 9000
cpu MHz\t\t: 2500.000
flags\t\t: fpu sse sse2 avx fma avx2
"""


def test_builtins_carry_their_figures_and_sources():
    h100 = load_hardware("h100")
    assert (h100.memory_bytes, h100.bandwidth_bytes_per_s, h100.peak_flops) == (80e9, 3.35e12, 989.4e12)
    assert h100.ridge_flops_per_byte == pytest.approx(295.3, abs=0.1)
    for name in BUILTIN_SPECS:
        assert "datasheet" in load_hardware(name).source.lower()
    assert set(hardware_names()) >= {"cpu", "h100", "h100-64gb", "h200", "a100-80gb", "a100-40gb", "l4", "l40s"}


def test_unknown_hardware_lists_the_known_names():
    with pytest.raises(HardwareError, match=r"--hardware: unknown hardware 'tpu'; known: cpu, h100, h100-64gb"):
        load_hardware("tpu")


def test_a_yaml_spec(tmp_path):
    path = tmp_path / "mi300x.yaml"
    path.write_text("name: mi300x\nmemory_gb: 192\nbandwidth_gb_s: 5300\npeak_tflops: 1307.4\nsource: AMD sheet\n")
    spec = load_hardware(str(path))
    assert (spec.name, spec.memory_bytes, spec.bandwidth_bytes_per_s, spec.peak_flops) == (
        "mi300x", 192e9, 5.3e12, 1307.4e12)
    assert spec.source == "AMD sheet" and not spec.bandwidth_measured


@pytest.mark.parametrize("text, message", [
    ("memory_gb: 24\nbandwidth_gb_s: 300\npeak_tflops: 121\nbandwith: 3\n", "unknown field 'bandwith'; allowed: "),
    ("memory_gb: 24\npeak_tflops: 121\n", "missing field 'bandwidth_gb_s'"),
    ("memory_gb: 24\nbandwidth_gb_s: fast\npeak_tflops: 121\n", "field 'bandwidth_gb_s' must be a positive number"),
    ("memory_gb: 24\nbandwidth_gb_s: 300\npeak_tflops: 121\nbandwidth_measured: maybe\n", "'bandwidth_measured'"),
    ("- 1\n- 2\n", "expected a mapping"),
    ("memory_gb: [\n", "not valid YAML"),
])
def test_bad_yaml_names_the_field(tmp_path, text, message):
    path = tmp_path / "gpu.yaml"
    path.write_text(text)
    with pytest.raises(HardwareError, match=message):
        load_hardware(str(path))


def test_cpu_peak_from_cpuinfo_and_bandwidth_measured_once(tmp_path, monkeypatch):
    cpuinfo, meminfo = tmp_path / "cpuinfo", tmp_path / "meminfo"
    cpuinfo.write_text(CPUINFO)
    meminfo.write_text("MemTotal:       1024 kB\n")
    calls = []
    monkeypatch.setattr(cpu_probe, "measure_read_bandwidth", lambda *a: calls.append(a) or 30e9)
    monkeypatch.setattr(cpu_probe.os, "sched_getaffinity", lambda pid: {0, 1})
    probe = CpuProbeConfig(cache_dir=str(tmp_path), cpuinfo_path=str(cpuinfo), meminfo_path=str(meminfo))
    spec = load_hardware("cpu", probe)
    assert spec.peak_flops == pytest.approx(2 * 2 * 8 * 2 * 2.5e9)  # cores x FMA units x AVX2 fp32 lanes x 2 x GHz
    assert (spec.bandwidth_bytes_per_s, spec.memory_bytes, spec.bandwidth_measured) == (30e9, 1024 * 1024, True)
    assert "Test CPU 9000" in spec.description
    load_hardware("cpu", probe)
    assert len(calls) == 1  # the second call reads the cache
    load_hardware("cpu", CpuProbeConfig(cache_dir=str(tmp_path), cpuinfo_path=str(cpuinfo),
                                        meminfo_path=str(meminfo), remeasure=True))
    assert len(calls) == 2


def test_bandwidth_measurement_runs_small():
    # 1 MiB, cache-resident: only checks that it runs and gives a figure; how fast is no test's business (a busy
    # machine can starve its threads), the probe's figure is what `estimate --hardware cpu` prints
    bandwidth = cpu_probe.measure_read_bandwidth(1 << 20, 2, 2)
    assert 0 < bandwidth < float("inf")
