"""A throwaway PostgreSQL 15 cluster: initdb in a temporary folder, pg_ctl, gone at the end.

The postmaster starts under `taskset` on the database's core, so every backend it forks stays
there too. initdb refuses to run as root: as root, the cluster belongs to the `postgres` system
user (its folder is a fresh one under /tmp that the user can reach); otherwise to the caller.
`pg_stat_statements` is preloaded, so the run can count the SELECTs each request sends.
"""

import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

PG_BIN: Final = Path("/usr/lib/postgresql/15/bin")
SYSTEM_USER: Final = "postgres"
SUPERUSER: Final = "postgres"
START_SECONDS: Final = 60

# Durability is worthless in a cluster that is deleted at the end; skipping it seeds faster.
SETTINGS: Final = {
    "listen_addresses": "'127.0.0.1'",
    "max_connections": "200",
    "shared_buffers": "'512MB'",
    "work_mem": "'16MB'",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "shared_preload_libraries": "'pg_stat_statements'",
    "pg_stat_statements.max": "10000",
    "pg_stat_statements.track": "top",
    "log_min_messages": "warning",
}


class ClusterError(RuntimeError):
    """initdb or pg_ctl failed; the message carries their output."""


@dataclass(frozen=True, slots=True)
class Cluster:
    """A running cluster: its port, folder and postmaster pid."""

    port: int
    folder: Path
    postmaster_pid: int

    def url(self, database: str, *, driver: str = "postgresql") -> str:
        return f"{driver}://{SUPERUSER}@127.0.0.1:{self.port}/{database}"


def available() -> str | None:
    """Why no cluster can be started here, or None when it can."""
    if not (PG_BIN / "initdb").exists():
        return f"no PostgreSQL 15 in {PG_BIN} (apt-get install postgresql-15)"
    extension = Path("/usr/share/postgresql/15/extension/pg_stat_statements.control")
    if not extension.exists():
        return "pg_stat_statements is missing (it ships with postgresql-contrib)"
    return None


@contextlib.contextmanager
def throwaway_cluster(*, port: int, core: int, say: Callable[[str], None]) -> Iterator[Cluster]:
    """Start a fresh cluster on 127.0.0.1:`port`, pinned to `core`; stop and delete it after."""
    folder = Path(tempfile.mkdtemp(prefix="gqlb-pg-", dir="/tmp"))
    as_user = _as_cluster_user(folder)
    data = folder / "data"
    log = folder / "postgresql.log"
    try:
        _run([*as_user, str(PG_BIN / "initdb"), "-D", str(data), "-U", SUPERUSER, "-A", "trust",
              "-E", "UTF8", "--no-locale"])  # fmt: skip
        settings = SETTINGS | {"port": str(port), "unix_socket_directories": f"'{folder}'"}
        with (data / "postgresql.conf").open("a", encoding="utf-8") as conf:
            conf.writelines(f"{name} = {value}\n" for name, value in settings.items())
        start = [str(PG_BIN / "pg_ctl"), "-D", str(data), "-l", str(log), "-w",
                 "-t", str(START_SECONDS), "start"]  # fmt: skip
        _run([*as_user, "taskset", "-c", str(core), *start], log=log)
        pid = int((data / "postmaster.pid").read_text().split()[0])
        say(f"postgresql: throwaway cluster on port {port}, core {core}, in {folder}")
        yield Cluster(port=port, folder=folder, postmaster_pid=pid)
    finally:
        if (data / "postmaster.pid").exists():
            subprocess.run(
                [*as_user, str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"],
                check=False,
                capture_output=True,
            )
        shutil.rmtree(folder, ignore_errors=True)
        say("postgresql: cluster stopped and deleted")


def _as_cluster_user(folder: Path) -> list[str]:
    """The command prefix that runs initdb and pg_ctl as a user they accept."""
    if os.geteuid() != 0:
        return []
    shutil.chown(folder, user=SYSTEM_USER, group=SYSTEM_USER)
    return ["runuser", "-u", SYSTEM_USER, "--"]


def _run(command: list[str], *, log: Path | None = None) -> None:
    finished = subprocess.run(command, check=False, capture_output=True, text=True)
    if finished.returncode == 0:
        return
    detail = finished.stdout + finished.stderr
    if log is not None and log.exists():
        detail += log.read_text(errors="replace")[-2000:]
    raise ClusterError(f"{Path(command[0]).name} … failed ({finished.returncode}):\n{detail}")
