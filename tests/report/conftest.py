"""Fixtures: a small CPU-like sweep directory (estimated energy, replica points, a failed point) and its advice; a
placement of two models and its page."""

from __future__ import annotations

from pathlib import Path

import pytest

from paretoserve.advise import Advice, AdviseConfig, advise
from paretoserve.report import ReportFiles, write_placement_report, write_report
from tests.fakes.placement import write_placement
from tests.report.sweeps import FAST, THROUGHPUT, make_point, write_sweep

SLO_100MS = AdviseConfig(slo="tpot_ms<=100")


@pytest.fixture(scope="session")
def cpu_sweep(tmp_path_factory) -> Path:
    """Read-only: tests write their reports elsewhere."""
    points = [make_point(b, t) for b, t in THROUGHPUT.items()]
    points += [make_point(1, 135.0, replicas=2, threads=1), make_point(8, 160.0, replicas=2, threads=1)]
    return write_sweep(tmp_path_factory.mktemp("cpu") / "sweep", points, failed=1)


@pytest.fixture(scope="session")
def advice(cpu_sweep) -> Advice:
    """The real advisor on cpu_sweep: B_opt 16 (B=32 breaks the SLO), the measured 1 x 16 as the plan."""
    return advise(cpu_sweep, SLO_100MS)


@pytest.fixture(scope="session")
def full_report(cpu_sweep, advice, tmp_path_factory) -> ReportFiles:
    """The report of cpu_sweep with its advice, written once for the tests that only read it."""
    return write_report(cpu_sweep, tmp_path_factory.mktemp("full") / "report.html", advice=advice, config=FAST)


@pytest.fixture(scope="session")
def placement_out(tmp_path_factory) -> Path:
    """A placement as `tune --model A --model B` writes it; read-only but for the page `placement_page` adds."""
    return write_placement(tmp_path_factory.mktemp("placement"))


@pytest.fixture(scope="session")
def placement_page(placement_out) -> ReportFiles:
    """The placement's page, written once into its directory for the tests that only read it."""
    return write_placement_report(placement_out, config=FAST)
