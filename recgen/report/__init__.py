"""The data-analysis report: the seed notebook's exploration of the data, computed from the database.

`write_report` writes `index.html` with its PNG charts and the `data_profile` table; `refresh_report`
rewrites them when the data changed, and `start_report` does so in a thread beside a run. The sections are
computed by `dataset`, `interactions` and `features` from the grouped scans of `scans`, onto a
`page.ReportPage`.
"""

from recgen.report.write import REPORT_FILE, refresh_report, start_report, write_report

__all__ = ["REPORT_FILE", "refresh_report", "start_report", "write_report"]
