"""The documentation's figure, made by paretoserve's own import, advisor and report plotting from real runs.

    python docs_build/figures.py            # writes docs/img/throughput-vs-cap.png

`docs/img/throughput-vs-cap.png`: output throughput against the batch cap with B_opt marked, for OPT-1.3B
served by vLLM on one H100 64 GB: the "Mind the Memory Gap" authors' recorded runs in
tests/data/mind-the-memory-gap (advisor/output_length/_390: 2,000 requests of a 242-token prompt and 390 output
tokens at each cap, all sent at t=0), imported with `paretoserve import vllm`, advised with advise's defaults
(the paper's SLO: mean TPOT <= 3 x its value at batch 32) and drawn by the report's throughput plot
(paretoserve/report/plots_batch.py), as `paretoserve report` draws it.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

from paretoserve.advise import AdviseConfig  # noqa: E402
from paretoserve.cli import main  # noqa: E402
from paretoserve.report import compute_advice, read_for_report  # noqa: E402
from paretoserve.report.figure import BOptMark, to_png  # noqa: E402
from paretoserve.report.plots_batch import throughput_vs_batch  # noqa: E402
from paretoserve.report.sweep_data import batch_series, load_sweep  # noqa: E402

RUNS = ROOT / "tests" / "data" / "mind-the-memory-gap" / "advisor" / "output_length" / "_390" / "opt-1.3b"
MODEL_CONFIG = ROOT / "tests" / "data" / "model-configs" / "opt-1.3b.json"
OUT = ROOT / "docs" / "img" / "throughput-vs-cap.png"
DPI = 120


def throughput_figure(out: Path = OUT) -> Path:
    """Import the runs, advise on them and write the throughput-vs-cap plot with B_opt to `out`."""
    with tempfile.TemporaryDirectory() as tmp:
        sweep_dir = Path(tmp) / "opt-1.3b"
        status = main(["import", "vllm", str(RUNS), "--model-config", str(MODEL_CONFIG), "--gpu-name", "H100 64 GB",
                       "--gpu-memory-gb", "64", "--out", str(sweep_dir)])
        if status != 0:
            raise SystemExit(f"paretoserve import vllm failed with status {status}")
        sweep = read_for_report(sweep_dir)
        advice, reason = compute_advice(sweep, AdviseConfig(device_memory="64GiB"))
        if advice is None:
            raise SystemExit(f"no advice: {reason}")
        figure = throughput_vs_batch(batch_series(load_sweep(sweep).points),
                                     BOptMark(advice.b_opt_max_batch, advice.b_opt))
    if figure is None:
        raise SystemExit("the sweep has no throughput to plot")
    limits = ", ".join(f"{limit.field} <= {limit.bound_ms:.1f} ms" for limit in advice.slo.limits)
    figure.set_size_inches(7.2, 4.0)
    figure.axes[0].set_title(f"OPT-1.3B on vLLM, one H100 64 GB (the paper's recorded runs)\n"
                             f"B_opt = {advice.b_opt} ({limits}): {advice.throughput_fraction_at_b_opt:.0%} of the "
                             f"best tok/s with {advice.kv_need_fraction:.0%} of the KV cache", fontsize=9)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(to_png(figure, DPI))
    print(f"{out.relative_to(ROOT)}: B_opt = {advice.b_opt} (cap {advice.b_opt_max_batch}), "
          f"{advice.throughput_at_b_opt:.0f} tok/s = {advice.throughput_fraction_at_b_opt:.0%} of the best "
          f"{advice.best_throughput:.0f}; KV need {advice.kv_need_fraction:.1%} of the default cache; "
          f"freed {advice.freed_fraction:.1%} of 64 GiB")
    return out


if __name__ == "__main__":
    throughput_figure()
