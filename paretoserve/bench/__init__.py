"""`paretoserve bench`: load generation, per-request timing, engine and device sampling, energy, summary."""

from paretoserve.bench.config import BenchConfig, TokenRange
from paretoserve.bench.runner import BenchError, run_bench

__all__ = ["BenchConfig", "BenchError", "TokenRange", "run_bench"]
