"""Sweep directories imported from the paper's own measurements (tests/data/mind-the-memory-gap)."""

from __future__ import annotations

from pathlib import Path

import pytest

from paretoserve.cli import main

DATA = Path(__file__).parents[1] / "data"
MMG = DATA / "mind-the-memory-gap"
CONFIGS = DATA / "model-configs"


def import_sweep(runs: Path, model: str, out: Path) -> Path:
    """`paretoserve import vllm` of one run tree into `out`."""
    assert main(["import", "vllm", str(runs), "--out", str(out), "--model-config", str(CONFIGS / f"{model}.json")]) == 0
    return out


@pytest.fixture(scope="session")
def paper_sweeps(tmp_path_factory) -> dict[str, Path]:
    """One sweep directory per data set: advisor _390 of the four models, background and replication of OPT-1.3B."""
    root = tmp_path_factory.mktemp("paper")
    sweeps = {m: import_sweep(MMG / "advisor" / "output_length" / "_390" / m, m, root / m)
              for m in ("opt-1.3b", "opt-2.7b", "llama-2-7b", "llama-2-13b")}
    sweeps["background"] = import_sweep(MMG / "background" / "opt-1.3b", "opt-1.3b", root / "background")
    sweeps["background-2.7b"] = import_sweep(MMG / "background" / "opt-2.7b", "opt-2.7b", root / "background-2.7b")
    sweeps["replication"] = import_sweep(MMG / "replication" / "overall_metrics" / "opt-1.3b", "opt-1.3b",
                                         root / "replication")
    return sweeps
