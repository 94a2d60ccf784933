"""The "Mind the Memory Gap" measurements in tests/data (H100 64 GB, vLLM) as sweep directories."""

from __future__ import annotations

import json
from pathlib import Path

from paretoserve.cli import main
from paretoserve.results.store import SweepStore
from paretoserve.sweep.import_vllm import environment, import_runs

DATA = Path(__file__).parent / "data"
MMG = DATA / "mind-the-memory-gap"
CONFIGS = DATA / "model-configs"


def paper_config(model: str) -> dict:
    """The model's Hugging Face `config.json`."""
    return json.loads((CONFIGS / f"{model}.json").read_text())


def import_sweep(runs: Path, model: str, out: Path) -> Path:
    """`paretoserve import vllm` of one run tree into `out`."""
    assert main(["import", "vllm", str(runs), "--out", str(out), "--model-config", str(CONFIGS / f"{model}.json")]) == 0
    return out


def paper_sweep(model: str, directory: Path) -> Path:
    """The paper's background runs of one model as a sweep directory, as `paretoserve import vllm` writes it."""
    store = SweepStore(directory)
    store.open({"imported_from": "vllm"}, environment("H100 64 GB"), resume=False)
    for record in import_runs([MMG / "background" / model], model_config=paper_config(model)):
        store.append(record)
    return directory


def paper_sweeps(root: Path) -> dict[str, Path]:
    """One sweep directory per data set: advisor _390 of the four models, background and replication of OPT-1.3B."""
    sweeps = {m: import_sweep(MMG / "advisor" / "output_length" / "_390" / m, m, root / m)
              for m in ("opt-1.3b", "opt-2.7b", "llama-2-7b", "llama-2-13b")}
    sweeps["background"] = import_sweep(MMG / "background" / "opt-1.3b", "opt-1.3b", root / "background")
    sweeps["background-2.7b"] = import_sweep(MMG / "background" / "opt-2.7b", "opt-2.7b", root / "background-2.7b")
    sweeps["replication"] = import_sweep(MMG / "replication" / "overall_metrics" / "opt-1.3b", "opt-1.3b",
                                         root / "replication")
    return sweeps
