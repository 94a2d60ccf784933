"""The report of real measurements: the Mind the Memory Gap subset (tests/data) imported from vLLM."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from paretoserve.cli import main

pytestmark = pytest.mark.integration

DATA = Path(__file__).parents[1] / "data"
RUNS = DATA / "mind-the-memory-gap" / "advisor" / "output_length" / "_390" / "opt-1.3b"


@pytest.fixture(scope="module")
def opt_sweep(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("vllm") / "opt-1.3b"
    assert main(["import", "vllm", str(RUNS), "--out", str(out), "--model-config",
                 str(DATA / "model-configs" / "opt-1.3b.json"), "--gpu-name", "H100", "--gpu-memory-gb", "64"]) == 0
    return out


def test_report_of_imported_vllm_runs_with_the_papers_rule(opt_sweep, tmp_path, capsys):
    assert main(["report", str(opt_sweep), "-o", str(tmp_path / "report.html"), "--dpi", "40",
                 "--slo-multiple", "3", "--slo-ref-batch", "32", "--slo-metric", "tpot"]) == 0
    assert "B_opt = 128" in capsys.readouterr().out  # the paper's B_opt for OPT-1.3B, output length 390
    html = (tmp_path / "report.html").read_text()
    assert len(re.findall(r'<img src="data:image/png;base64,', html)) == len(list(tmp_path.glob("report_*.png")))
    assert "H100 (64.00 GB)" in html and "Recommended batch B_opt = 128" in html
    assert "mean_tpot_ms 27.38 ms &gt; 19.76" in html  # B=256 rejected under 3 x TPOT(B=32) = 3 x 6.585 ms
    for batch, throughput in ((32, "4,779"), (128, "7,879"), (256, "8,757")):  # output tok/s in the bench JSONs
        assert re.search(rf"<td class=\"text\">B={batch}</td>.*?<td>{throughput}</td>", html)
    energy = re.search(r'<section id="energy">(.*?)</section>', html, re.S).group(1)
    assert "nvidia-smi mean power x duration" in energy and "ESTIMATED" not in energy  # measured power, not estimated
    assert "--max-num-seqs 128" in html  # the vLLM launch line
