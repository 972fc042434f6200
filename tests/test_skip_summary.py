"""`make test`'s report: skips summed up by reason, not one line per skipped test."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

SKIPPING_TESTS = """
import pytest

@pytest.mark.parametrize("n", range(3))
def test_needs_a_database(n):
    pytest.skip("GQL_BLOG_TEST_POSTGRES_URL is not set: postgresql tests skipped")

def test_needs_a_browser():
    pytest.skip("chromium not installed")

def test_runs():
    pass
"""


def test_skips_are_summed_up_by_reason_with_the_projects_options(tmp_path: Path) -> None:
    tests = tmp_path / "test_skipping.py"
    tests.write_text(SKIPPING_TESTS)
    # The project's own pytest options (pyproject.toml) and the summary plugin, on those tests.
    options = ["-c", str(ROOT / "pyproject.toml"), "-p", "tests.skip_summary"]
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", *options, "-p", "no:cacheprovider", str(tests)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert done.returncode == 0, done.stdout + done.stderr
    assert "SKIPPED [" not in done.stdout
    summary = done.stdout.split("4 skipped, by reason", 1)[1].splitlines()[1:3]
    assert summary == [
        "      3  GQL_BLOG_TEST_POSTGRES_URL is not set: postgresql tests skipped",
        "      1  chromium not installed",
    ]
