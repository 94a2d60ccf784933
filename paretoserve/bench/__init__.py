"""`paretoserve bench`: load generation, per-request timing, engine and device sampling, energy, summary."""

from paretoserve.bench.config import BenchConfig, TokenRange

__all__ = ["BenchConfig", "BenchError", "TokenRange", "run_bench"]


def __getattr__(name: str):
    # The runner (aiohttp, the sampler) is imported on first use: advise and report import bench's SLO
    # parser at start-up and never run a load.
    if name in ("BenchError", "run_bench"):
        from paretoserve.bench import runner
        return getattr(runner, name)
    raise AttributeError(f"module 'paretoserve.bench' has no attribute {name!r}")
