import json
import subprocess
import sys

import pytest

pytest.importorskip("flwr")
pytest.importorskip("kmedoids")

from fedcore.cli import main  # noqa: E402
from tests.waiting import HANG_S  # noqa: E402

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("argv,fragment", [
    (["run", "--bogus"], "unrecognized arguments"),
    (["run", "--rounds", "0"], "--rounds must be >= 1"),
    (["run", "--dataset", "cifar"], "unknown data set"),
    (["run", "--methods", "fedavg,fedsgd"], "unknown method 'fedsgd'"),
    (["run", "--stragglers", "1.5"], "--stragglers"),
    (["run", "--backend", "grpc"], "--backend"),
    (["run", "--targets", "0.5,x"], "--targets"),
    (["run", "--clients", "many"], "--clients"),
])
def test_bad_flags_get_one_line_and_exit_2(capsys, argv, fragment):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and fragment in err


def test_a_small_run_writes_results_and_a_self_contained_report(tmp_path):
    out = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-m", "fedcore", "run", "--dataset", "synthetic:0.5,0.5", "--clients", "12",
                           "--per-round", "4", "--rounds", "3", "--epochs", "3", "--out", str(out), "--json"],
                          capture_output=True, text=True, timeout=HANG_S)
    assert proc.returncode == 0, proc.stderr
    printed = json.loads(proc.stdout)
    saved = json.loads((out / "results.json").read_text())
    assert printed == saved
    assert set(saved["methods"]) == {"fedavg", "fedavg-ds", "fedprox", "fedcore"}
    for method in saved["methods"].values():
        assert {"final_accuracy", "sim_time_total", "time_to_accuracy", "round_time_over_deadline",
                "selection_cpu_s", "rounds"} <= set(method)
        assert {"round", "sim_time", "accuracy", "loss", "clients"} <= set(method["rounds"][1])
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") >= 2 and "http://" not in html and "https://" not in html
