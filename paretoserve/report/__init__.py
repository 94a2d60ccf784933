"""The HTML report: a sweep and its advice -> one self-contained HTML file and PNG plots.

`write_report(sweep, out_html, advice=..., no_advice_reason=...)` writes it; `compute_advice(sweep,
AdviseConfig(...))` gives the advice or the advisor's reason for having none. `sweep` is a `results.Sweep`
already read (`read_for_report` reads one, naming DIR in its errors) or its directory.
`write_placement_report(out)` writes the page of a placement of several models (`tune --model A --model B`'s OUT).
"""

from paretoserve.report.build import ReportConfig, ReportFiles, write_report
from paretoserve.report.placement_page import write_placement_report
from paretoserve.report.recommendation import compute_advice
from paretoserve.report.sweep_data import ReportError, read_for_report

__all__ = ["ReportConfig", "ReportError", "ReportFiles", "compute_advice", "read_for_report", "write_placement_report",
           "write_report"]
