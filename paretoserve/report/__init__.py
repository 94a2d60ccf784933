"""The HTML report: a sweep directory and its advice -> one self-contained HTML file and PNG plots."""

from paretoserve.report.build import ReportConfig, ReportFiles, write_report
from paretoserve.report.recommendation import load_advice_file
from paretoserve.report.sweep_data import ReportError

__all__ = ["ReportConfig", "ReportError", "ReportFiles", "load_advice_file", "write_report"]
