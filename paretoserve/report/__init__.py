"""The HTML report: a sweep directory and its advice -> one self-contained HTML file and PNG plots.

`write_report(sweep_dir, out_html, advice=..., no_advice_reason=...)` writes it; `compute_advice(sweep_dir,
AdviseConfig(...))` gives the advice or the advisor's reason for having none.
"""

from paretoserve.report.build import ReportConfig, ReportFiles, write_report
from paretoserve.report.recommendation import compute_advice, load_advice_file
from paretoserve.report.sweep_data import ReportError

__all__ = ["ReportConfig", "ReportError", "ReportFiles", "compute_advice", "load_advice_file", "write_report"]
