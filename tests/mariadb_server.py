"""A throwaway MariaDB server: mariadb-install-db in a temporary folder, mariadbd, gone at the end.

For tests that stop the database and start it again on the same port and data. As root,
mariadbd runs as the `mysql` system user (`--user`), which owns the folder, a fresh one under
/tmp; otherwise as the caller. root@127.0.0.1 signs in without a password.
"""

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

SYSTEM_USER: Final = "mysql"
START_SECONDS: Final = 60
READY: Final = "ready for connections"
# How `stop` ends the server: its own shutdown (clients are disconnected, the data is closed
# cleanly), or a kill (InnoDB recovers from its log at the next start).
STOP_SIGNALS: Final = {"term": signal.SIGTERM, "kill": signal.SIGKILL}
# Small and quick. innodb_flush_log_at_trx_commit=2 writes the log to the OS at every commit and
# syncs it once a second: a killed server keeps every commit it acknowledged (only the machine
# crashing, which no test does, would lose the last second).
OPTIONS: Final = (
    "--bind-address=127.0.0.1",
    "--skip-name-resolve",
    "--innodb-buffer-pool-size=32M",
    "--innodb-flush-log-at-trx-commit=2",
    "--innodb-doublewrite=0",
    "--performance-schema=0",
    "--max-connections=100",
)


class MariaDbError(RuntimeError):
    """mariadb-install-db or mariadbd failed; the message carries their output."""


def available() -> str | None:
    """Why no server can be started here, or None when it can."""
    missing = [name for name in ("mariadb-install-db", "mariadbd") if _binary(name) is None]
    if missing:
        return f"{' and '.join(missing)} not found (apt-get install mariadb-server)"
    return None


@dataclass(slots=True)
class MariaDbServer:
    """A server in `folder` on 127.0.0.1:`port`; `stop` and `start` keep both."""

    port: int
    folder: Path
    process: subprocess.Popen[bytes] | None = None

    def url(self, database: str, *, driver: str = "mysql+asyncmy") -> str:
        return f"{driver}://root@127.0.0.1:{self.port}/{database}"

    @property
    def _log(self) -> Path:
        return self.folder / "error.log"

    def start(self) -> None:
        """Start mariadbd; return once it is ready for connections."""
        if self.process is not None and self.process.poll() is None:
            raise MariaDbError(f"mariadbd is running already (pid {self.process.pid})")
        ready_before = self._times_ready()
        command = [str(_binary("mariadbd")), "--no-defaults", f"--datadir={self.folder / 'data'}",
                   f"--tmpdir={self.folder / 'tmp'}", f"--port={self.port}",
                   f"--socket={self.folder / 'mariadb.sock'}",
                   f"--pid-file={self.folder / 'mariadb.pid'}", f"--log-error={self._log}",
                   *_as_system_user(), *OPTIONS]  # fmt: skip
        self.process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + START_SECONDS
        while self._times_ready() == ready_before:
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop("kill")
                raise MariaDbError(f"mariadbd did not start:\n{self._log_tail()}")
            time.sleep(0.02)  # its log is a file: nothing to wait on but the clock

    def stop(self, mode: str = "term") -> None:
        """End the server (`term`: its own shutdown; `kill`: SIGKILL); return once it is gone."""
        if mode not in STOP_SIGNALS:
            raise ValueError(f"unknown stop mode {mode!r}: use {' or '.join(STOP_SIGNALS)}")
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(STOP_SIGNALS[mode])
        try:
            self.process.wait(START_SECONDS)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise MariaDbError(f"mariadbd did not stop:\n{self._log_tail()}") from None

    def _times_ready(self) -> int:
        return self._log.read_text(errors="replace").count(READY) if self._log.exists() else 0

    def _log_tail(self) -> str:
        return self._log.read_text(errors="replace")[-2000:] if self._log.exists() else ""


@contextlib.contextmanager
def throwaway_mariadb(*, port: int) -> Iterator[MariaDbServer]:
    """A fresh server on 127.0.0.1:`port`, with its system tables; stopped and deleted after."""
    folder = Path(tempfile.mkdtemp(prefix="gqlb-mariadb-", dir="/tmp"))
    server = MariaDbServer(port=port, folder=folder)
    try:
        # Temporary tables go to a folder of the server's own, not /tmp, which others share.
        (folder / "tmp").mkdir()
        if os.geteuid() == 0:
            for owned in (folder, folder / "tmp"):
                shutil.chown(owned, user=SYSTEM_USER, group=SYSTEM_USER)
        install = [str(_binary("mariadb-install-db")), "--no-defaults",
                   f"--datadir={folder / 'data'}", f"--tmpdir={folder / 'tmp'}",
                   "--auth-root-authentication-method=normal", "--skip-test-db",
                   *_as_system_user()]  # fmt: skip
        installed = subprocess.run(install, check=False, capture_output=True, text=True)
        if installed.returncode != 0:
            output = installed.stdout + installed.stderr
            raise MariaDbError(f"mariadb-install-db failed ({installed.returncode}):\n{output}")
        server.start()
        yield server
    finally:
        server.stop("term")
        shutil.rmtree(folder, ignore_errors=True)


def _binary(name: str) -> str | None:
    """A MariaDB program: on the PATH, or in /usr/sbin (not on every user's PATH)."""
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin")


def _as_system_user() -> list[str]:
    """As root, mariadbd and mariadb-install-db run as the mysql user (they switch to it)."""
    return [f"--user={SYSTEM_USER}"] if os.geteuid() == 0 else []
