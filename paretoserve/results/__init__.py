"""Measured results, the contract between measuring (`sweep`, `import vllm`, `tune`) and everything that reads a
measurement (`advise`, `estimate --calibrate`, `report`).

- `store.SweepStore`: a sweep directory, sweep.json (spec and environment) and points.jsonl (one line per point).
- `point.Point`, `point.to_point`: one finished points.jsonl record read into a typed record; the batch sizes
  (`max_batch` nominal, `batch` and `mean_batch` measured) and the energy rule are defined there.
- `sweep.read_sweep`: a finished sweep directory; what kind of sweep it is (embedded engine, --engine-cmd,
  vLLM import) and what its environment says about the machine.
"""

from paretoserve.results.point import Point, to_point
from paretoserve.results.store import StoreError, SweepStore
from paretoserve.results.sweep import Sweep, read_sweep

__all__ = ["Point", "StoreError", "Sweep", "SweepStore", "read_sweep", "to_point"]
