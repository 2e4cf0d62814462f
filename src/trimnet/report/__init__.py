"""The HTML report: one self-contained page (figures embedded) built from a run's summary.json."""

from trimnet.report.html import build_report, render

__all__ = ["build_report", "render"]
