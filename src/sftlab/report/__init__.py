"""Reports shared by the stages: self-contained HTML pages (plots inlined) and JSON."""

from sftlab.report.html import HtmlReport, figure_to_data_uri

__all__ = ["HtmlReport", "figure_to_data_uri"]
