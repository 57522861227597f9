"""Plots and self-contained HTML reports shared by every task."""

from skytriage.report.html import HtmlReport, figure_png, zscale_image

__all__ = ["HtmlReport", "figure_png", "zscale_image"]
