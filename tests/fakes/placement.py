"""A placement directory as `tune --model A --model B` writes it (placement.json, each model's advice.json, sweep
and report), made in seconds on the simulated engines and recorded colocation figures of
tests/tune/test_placement.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from paretoserve.advise import AdviseConfig
from paretoserve.tune.config import TuneConfig
from paretoserve.tune.placement import PlacementConfig, run_placement
from tests.tune.test_placement import PLATEAU, Measured, Simulated

# Under this SLO the simulated models' B_opts differ (12 and 24), each found over several batch caps.
SLO = AdviseConfig(slo="tpot_ms<=150")


def write_placement(directory: Path) -> Path:
    """Two models (a.gguf and b.gguf, served as `a` and `b`) tuned on a core each, placed, measured and their mix's
    capacity searched; returns the tune's OUT (holding placement.json)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("paretoserve.engine.config.available_cores", lambda: 2)
        for name in PLATEAU:
            (directory / name).write_bytes(b"GGUF" + bytes(28))
        models = tuple(str(directory / name) for name in PLATEAU)
        cfg = PlacementConfig(TuneConfig(out=directory / "tune", max_batch=64, duration_s=5.0, advice=SLO), models,
                              (0.5, 0.5))
        run_placement(cfg, lambda line: None, Simulated(), Measured())
    return directory / "tune"
