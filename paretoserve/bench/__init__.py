"""`paretoserve bench`: load generation, per-request timing, engine and device sampling, energy, summary.

`bench.runner.run_bench(BenchConfig(...))` runs one; the package itself imports only the config, so that
advise and report, which read bench's SLO types, do not load aiohttp and the sampler.
"""

from paretoserve.bench.config import BenchConfig, TokenRange

__all__ = ["BenchConfig", "TokenRange"]
