"""Engine metrics (both name sets), process sampling, NVML with a patched pynvml, RAPL, energy choice."""

from __future__ import annotations

import asyncio
import os
import sys
import types

import pytest
from prometheus_client import generate_latest

from paretoserve.bench import energy
from paretoserve.bench.energy import EnergyPlan, RaplReader, choose_source, energy_between
from paretoserve.bench.gpu import NvmlReader
from paretoserve.bench.sampler import EngineProcesses, Sample, Sampler, parse_llama_slots, parse_metrics
from paretoserve.engine.metrics import EngineMetrics

from .fake_server import FakeServer

pytestmark = pytest.mark.integration

VLLM_TEXT = """\
# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="m"} 5.0
vllm:num_requests_running{engine="1",model_name="m"} 2.0
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{engine="0",model_name="m"} 4.0
# TYPE vllm:gpu_cache_usage_perc gauge
vllm:gpu_cache_usage_perc{engine="0",model_name="m"} 0.25
vllm:gpu_cache_usage_perc{engine="1",model_name="m"} 0.75
# TYPE vllm:num_preemptions counter
vllm:num_preemptions_total{engine="0",model_name="m"} 9.0
"""


def test_parse_our_engines_real_metrics_text():
    metrics = EngineMetrics("m")
    metrics.bind_state(running=lambda: 3, waiting=lambda: 2, kv_used=lambda: 512, kv_reserved=lambda: 600,
                       max_batch=8)
    metrics.kv_tokens_budget.set(2048)
    values = parse_metrics(generate_latest(metrics.registry).decode())
    assert values == {"running": 3, "waiting": 2, "kv_tokens_used": 512, "kv_tokens_budget": 2048, "max_batch": 8,
                      "preemptions_total": 0, "kv_used_fraction": 0.25}


def test_parse_vllm_names_summing_engines_and_taking_the_fullest_cache():
    values = parse_metrics(VLLM_TEXT)
    assert values == {"running": 7, "waiting": 4, "kv_used_fraction": 0.75, "preemptions_total": 9}
    assert parse_metrics(VLLM_TEXT.replace("gpu_cache_usage_perc", "kv_cache_usage_perc"))["kv_used_fraction"] == 0.75


LLAMACPP_TEXT = """\
# HELP llamacpp:prompt_tokens_total Number of prompt tokens processed, excluding cached tokens
# TYPE llamacpp:prompt_tokens_total counter
llamacpp:prompt_tokens_total 2048
# HELP llamacpp:requests_processing Number of requests processing
# TYPE llamacpp:requests_processing gauge
llamacpp:requests_processing 12
# HELP llamacpp:requests_deferred Number of requests deferred
# TYPE llamacpp:requests_deferred gauge
llamacpp:requests_deferred 3
"""


def test_parse_llama_server_names():
    assert parse_metrics(LLAMACPP_TEXT) == {"running": 12, "waiting": 3}
    older = LLAMACPP_TEXT + "llamacpp:kv_cache_usage_ratio 0.375\nllamacpp:kv_cache_tokens 768\n"
    assert parse_metrics(older) == {"running": 12, "waiting": 3, "kv_used_fraction": 0.375, "kv_tokens_used": 768}


def test_llama_server_kv_use_from_its_slots():
    slots = [{"id": 0, "n_ctx": 256, "is_processing": True, "n_prompt_tokens": 96},
             {"id": 1, "n_ctx": 256, "is_processing": False, "n_prompt_tokens": 40},  # cached, not running
             {"id": 2, "n_ctx": 256, "is_processing": True, "n_prompt_tokens": 32}]
    assert parse_llama_slots(slots) == {"kv_tokens_used": 128, "kv_tokens_budget": 768, "kv_used_fraction": 1 / 6}
    with pytest.raises(ValueError):
        parse_llama_slots({"error": "no"})


def test_sampler_reads_llama_servers_metrics_and_slots():
    async def go(url):
        async with Sampler(url, "/metrics", EngineProcesses([])) as sampler:
            return await sampler.sample(), sampler

    with FakeServer(metrics="llamacpp", max_batch=4) as server:
        sample, sampler = asyncio.run(go(server.url))
    assert (sample.running, sample.waiting) == (0, 2) and sampler.metrics_error is None
    assert (sample.kv_tokens_used, sample.kv_tokens_budget, sample.kv_used_fraction) == (0, 1024, 0.0)


@pytest.mark.parametrize("style", ["paretoserve", "vllm", "sglang"])
def test_sampler_reads_the_endpoints_metrics_and_the_processes(style):
    async def go(url):
        async with Sampler(url, "/metrics", EngineProcesses([os.getpid()])) as sampler:
            return await sampler.sample(), sampler

    with FakeServer(metrics=style, max_batch=6) as server:
        sample, sampler = asyncio.run(go(server.url))
    assert sample.running == 0 and sampler.metrics_error is None
    assert sample.preemptions_total == (0 if style == "paretoserve" else 3)
    assert sample.max_batch == (6 if style == "paretoserve" else None)
    assert sample.rss_bytes > 10 * 2**20 and sample.engine_cpu_s > 0


def test_a_missing_metrics_endpoint_is_reported_once_and_no_longer_asked():
    async def go(url):
        async with Sampler(url, "/metrics", EngineProcesses([])) as sampler:
            await sampler.sample()
            await sampler.sample()
            return sampler

    with FakeServer(metrics=None) as server:
        sampler = asyncio.run(go(server.url))
    assert sampler.metrics_error.endswith("HTTP 404") and not sampler._metrics_on
    assert sampler.samples[0].running is None and sampler.samples[0].rss_bytes is None


def test_llama_server_without_metrics_is_told_the_flag_once_and_no_longer_asked():
    async def go(url):
        async with Sampler(url, "/metrics", EngineProcesses([])) as sampler:
            await sampler.sample()
            await sampler.sample()
            return sampler

    with FakeServer(metrics="llamacpp-off") as server:
        sampler = asyncio.run(go(server.url))
    assert "HTTP 501" in sampler.metrics_error and "--metrics" in sampler.metrics_error
    assert not sampler._metrics_on


def test_engine_processes_survive_a_pid_that_does_not_exist():
    assert EngineProcesses([2**22 + 12345]).read() == (None, None)


class FakeNvml(types.ModuleType):
    """Just the pynvml calls NvmlReader makes: two GPUs whose energy counters advance."""

    class NVMLError(Exception):
        pass

    def __init__(self, energy_counter: bool = True, init_fails: bool = False) -> None:
        super().__init__("pynvml")
        self.energy_counter, self.init_fails = energy_counter, init_fails
        self.energy_mj = [1_000_000, 2_000_000]
        self.shutdown_called = False

    def nvmlInit(self):
        if self.init_fails:
            raise self.NVMLError("Driver Not Loaded")

    def nvmlShutdown(self):
        self.shutdown_called = True

    def nvmlDeviceGetCount(self):
        return 2

    def nvmlDeviceGetHandleByIndex(self, i):
        return i

    def nvmlDeviceGetName(self, h):
        return b"NVIDIA H100 80GB HBM3"

    def nvmlDeviceGetMemoryInfo(self, h):
        return types.SimpleNamespace(total=80 * 2**30, used=(h + 1) * 2**30, free=0)

    def nvmlDeviceGetUtilizationRates(self, h):
        return types.SimpleNamespace(gpu=50 + 10 * h, memory=0)

    def nvmlDeviceGetPowerUsage(self, h):
        return 300_000 + 100_000 * h  # mW

    def nvmlDeviceGetTotalEnergyConsumption(self, h):
        if not self.energy_counter:
            raise self.NVMLError("Not Supported")
        return self.energy_mj[h]


def test_nvml_sampling_and_energy_with_a_patched_pynvml(monkeypatch):
    fake = FakeNvml()
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    gpu = NvmlReader.open()
    assert gpu is not None and gpu.has_energy_counter and gpu.names == ["NVIDIA H100 80GB HBM3"] * 2
    first = gpu.read()
    assert (first.memory_used_bytes, first.util_percent, first.power_w) == (3 * 2**30, 55.0, 700.0)
    assert first.energy_j == 3000.0
    fake.energy_mj = [1_250_000, 2_500_000]
    plan = choose_source("auto", gpu, None, have_engine_pids=True, watts_per_core=None)
    assert plan.source == "nvml"
    joules = energy_between(plan, Sample(0.0, gpu_energy_j=first.energy_j),
                            Sample(1.0, gpu_energy_j=gpu.read().energy_j))
    assert joules == pytest.approx(750.0)
    gpu.close()
    assert fake.shutdown_called


def test_sampler_records_gpu_readings(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", FakeNvml())

    async def go(url):
        async with Sampler(url, "/metrics", EngineProcesses([]), gpu=NvmlReader.open()) as sampler:
            return await sampler.sample()

    with FakeServer() as server:
        sample = asyncio.run(go(server.url))
    assert (sample.gpu_memory_used_bytes, sample.gpu_util_percent, sample.gpu_power_w, sample.gpu_energy_j) == \
        (3 * 2**30, 55.0, 700.0, 3000.0)


def test_a_gpu_without_energy_counter_falls_back_to_the_estimate(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", FakeNvml(energy_counter=False))
    gpu = NvmlReader.open()
    assert gpu is not None and not gpu.has_energy_counter and gpu.read().energy_j is None
    assert choose_source("auto", gpu, None, True, None).source == "estimated"
    with pytest.raises(energy.EnergySourceError, match="--energy nvml: the GPU has no energy counter"):
        choose_source("nvml", gpu, None, True, None)


def test_no_nvml_module_or_driver_means_no_gpu(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import fails
    assert NvmlReader.open() is None
    monkeypatch.setitem(sys.modules, "pynvml", FakeNvml(init_fails=True))
    assert NvmlReader.open() is None


def test_energy_is_estimated_on_a_machine_without_counters():
    plan = choose_source("auto", None, None, have_engine_pids=True, watts_per_core=None)
    assert plan.source == "estimated" and plan.watts_per_core == energy.DEFAULT_WATTS_PER_CORE
    assert "estimated" in plan.note
    assert choose_source("auto", None, None, True, 4.5).watts_per_core == 4.5
    assert choose_source("auto", None, None, False, None).source == "none"
    assert choose_source("none", None, None, True, None).source == "none"
    with pytest.raises(energy.EnergySourceError, match="--energy rapl"):
        choose_source("rapl", None, None, True, None)
    with pytest.raises(energy.EnergySourceError, match="--energy estimated"):
        choose_source("estimated", None, None, False, None)


def test_this_machine_has_no_readable_rapl_unless_powercap_exists():
    if os.access("/sys/class/powercap", os.R_OK):
        pytest.skip("this machine exposes /sys/class/powercap")
    assert RaplReader.open() is None


def test_rapl_reader_sums_packages_and_undoes_wraparound(tmp_path):
    def domain(name, kind, uj, max_uj=1_000_000):
        d = tmp_path / name
        d.mkdir()
        (d / "name").write_text(kind + "\n")
        (d / "energy_uj").write_text(f"{uj}\n")
        (d / "max_energy_range_uj").write_text(f"{max_uj}\n")
        return d

    pkg0, pkg1 = domain("intel-rapl:0", "package-0", 900_000), domain("intel-rapl:1", "package-1", 100)
    domain("intel-rapl:0:0", "dram", 5)  # a subzone: not counted twice
    domain("intel-rapl:2", "psys", 7)  # the platform: overlaps the packages
    rapl = RaplReader.open(tmp_path)
    assert rapl.read() == 0.0
    (pkg0 / "energy_uj").write_text("100000\n")  # wrapped: +200,000 uJ
    (pkg1 / "energy_uj").write_text("300100\n")  # +300,000 uJ
    assert rapl.read() == pytest.approx(0.5)
    plan = choose_source("auto", None, rapl, False, None)
    assert plan.source == "rapl"
    assert energy_between(plan, Sample(0, rapl_energy_j=0.0), Sample(1, rapl_energy_j=0.5)) == 0.5
    assert energy_between(EnergyPlan("none"), Sample(0), Sample(1)) is None
