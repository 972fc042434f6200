"""A pytest plugin: the run's skips counted by reason, one line each, instead of one per test.

Without the PostgreSQL and MariaDB URLs, more than a thousand tests skip for two reasons; `-ra`
listed each test. pyproject.toml's `-r` leaves skips out, and this summary says why they skipped.
"""

from collections import Counter

import pytest


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """After the run: `N  reason` for each distinct skip reason, the most frequent first."""
    reports = terminalreporter.stats.get("skipped", [])
    reasons = Counter(_reason(report) for report in reports)
    if not reasons:
        return
    total = sum(reasons.values())
    terminalreporter.write_sep("=", f"{total:,} skipped, by reason")
    for reason, count in sorted(reasons.items(), key=lambda item: (-item[1], item[0])):
        terminalreporter.write_line(f"{count:>7,}  {reason}")


def _reason(report: pytest.TestReport) -> str:
    """The reason a report gives for its skip (`Skipped: ` and the location left out)."""
    longrepr = report.longrepr
    text = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
    return text.removeprefix("Skipped: ")
