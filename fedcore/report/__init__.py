"""The self-contained HTML report of a run: figures as embedded PNGs, no network needed to view it."""

from fedcore.report.page import write_report

__all__ = ["write_report"]
