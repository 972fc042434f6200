"""The Makefile's install step: a too-old Python is named, and a venv it left is rebuilt."""

import shutil
import subprocess
from pathlib import Path

import pytest

MAKEFILE = Path(__file__).resolve().parent.parent / "Makefile"


def _fake_python(path: Path, *, version: tuple[int, int]) -> None:
    """A `python` that reports `version`, makes venvs of itself and installs nothing."""
    path.write_text(
        "#!/bin/sh\n"
        'case "$1 $2" in\n'
        f"  '-c import'*) test {int(version >= (3, 11))} = 1 ;;\n"
        '  "-m venv") mkdir -p "$3/bin" && cp "$0" "$3/bin/python" ;;\n'
        "  *) exit 0 ;;\n"
        "esac\n"
    )
    path.chmod(0o755)


def _make(folder: Path, python: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", "--no-print-directory", f"PYTHON={python}", ".venv/.installed"],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def project(tmp_path: Path) -> Path:
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    shutil.copy(MAKEFILE, tmp_path / "Makefile")
    (tmp_path / "pyproject.toml").touch()
    return tmp_path


def test_a_too_old_python_is_named_and_makes_no_venv(project: Path) -> None:
    old = project / "python3.9"
    _fake_python(old, version=(3, 9))

    done = _make(project, old)

    assert done.returncode != 0
    assert f"{old} is older than Python 3.11" in done.stderr
    assert not (project / ".venv").exists()


def test_a_venv_with_a_too_old_python_is_rebuilt(project: Path) -> None:
    old, new = project / "python3.9", project / "python3.12"
    _fake_python(old, version=(3, 9))
    _fake_python(new, version=(3, 12))
    (project / ".venv" / "bin").mkdir(parents=True)
    shutil.copy(old, project / ".venv" / "bin" / "python")

    done = _make(project, new)

    assert done.returncode == 0, done.stderr
    assert ".venv has a Python older than 3.11: rebuilding it" in done.stderr
    assert (project / ".venv" / "bin" / "python").read_text() == new.read_text()
    assert (project / ".venv" / ".installed").exists()
