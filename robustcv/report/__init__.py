"""Reports over audit results: the HTML report, ``compare`` of two audits and ``check`` gates.

Everything here only reads an audit's ``results.json`` (and its example images); nothing runs a
model.
"""

from robustcv.report.check import CheckResult, Threshold, check, parse_thresholds, required_eps
from robustcv.report.compare import ComparisonResult, compare, write_comparison_html
from robustcv.report.html import render_report, write_report

__all__ = [
    "CheckResult",
    "ComparisonResult",
    "Threshold",
    "check",
    "compare",
    "parse_thresholds",
    "render_report",
    "required_eps",
    "write_comparison_html",
    "write_report",
]
