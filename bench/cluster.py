"""A throwaway PostgreSQL 15 cluster: initdb in a temporary folder, pg_ctl, gone at the end.

The postmaster starts under `taskset` on the database's core, so every backend it forks stays
there too. initdb refuses to run as root: as root, the cluster belongs to the `postgres` system
user (its folder is a fresh one under /tmp that the user can reach); otherwise to the caller.
With the bench's `SETTINGS`, `pg_stat_statements` is preloaded, so the run can count the SELECTs
each request sends. Tests that restart the database use `LEAN_SETTINGS`, and `Cluster.stop` and
`Cluster.start` on the same port and folder. `throwaway_replica` adds a streaming replica.
"""

import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
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
# For tests that stop and start the cluster: small, no extension, and every commit it
# acknowledges kept. fsync and full_page_writes guard against the machine crashing, which no
# test does: a stopped or killed postmaster's writes are with the OS already. synchronous_commit
# stays on: off, an immediate stop loses commits it acknowledged.
LEAN_SETTINGS: Final = {
    "listen_addresses": "'127.0.0.1'",
    "max_connections": "50",
    "shared_buffers": "'32MB'",
    "fsync": "off",
    "full_page_writes": "off",
    "log_min_messages": "warning",
}
STOP_MODES: Final = ("smart", "fast", "immediate")


class ClusterError(RuntimeError):
    """initdb or pg_ctl failed; the message carries their output."""


@dataclass(frozen=True, slots=True)
class Cluster:
    """A running cluster: its port, folder and postmaster pid (and the core it is pinned to)."""

    port: int
    folder: Path
    postmaster_pid: int
    core: int | None = None

    def url(self, database: str, *, driver: str = "postgresql") -> str:
        return f"{driver}://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def stop(self, mode: str = "fast") -> None:
        """`pg_ctl stop -m mode` (smart, fast or immediate); returns once the postmaster is gone."""
        if mode not in STOP_MODES:
            raise ValueError(f"unknown stop mode {mode!r}: pg_ctl knows {', '.join(STOP_MODES)}")
        _run(_stop_command(self.folder, mode))

    def start(self) -> "Cluster":
        """Start the stopped cluster again, on its port and folder; the running cluster."""
        return replace(self, postmaster_pid=_start(self.folder, self.core))


def available(settings: Mapping[str, str] = SETTINGS) -> str | None:
    """Why no cluster with `settings` can be started here, or None when it can."""
    if not (PG_BIN / "initdb").exists():
        return f"no PostgreSQL 15 in {PG_BIN} (apt-get install postgresql-15)"
    extension = Path("/usr/share/postgresql/15/extension/pg_stat_statements.control")
    preloaded = settings.get("shared_preload_libraries", "")
    if "pg_stat_statements" in preloaded and not extension.exists():
        return "pg_stat_statements is missing (it ships with postgresql-contrib)"
    return None


@contextlib.contextmanager
def throwaway_cluster(
    *,
    port: int,
    core: int | None,
    say: Callable[[str], None],
    settings: Mapping[str, str] = SETTINGS,
) -> Iterator[Cluster]:
    """Start a fresh cluster on 127.0.0.1:`port`, pinned to `core` (None: not pinned), with
    `settings` in its postgresql.conf; stop and delete it after."""
    folder = Path(tempfile.mkdtemp(prefix="gqlb-pg-", dir="/tmp"))
    data = folder / "data"
    try:
        _give_to_cluster_user(folder)
        _run([*_cluster_user(), str(PG_BIN / "initdb"), "-D", str(data), "-U", SUPERUSER,
              "-A", "trust", "-E", "UTF8", "--no-locale"])  # fmt: skip
        configured = {**settings, "port": str(port), "unix_socket_directories": f"'{folder}'"}
        with (data / "postgresql.conf").open("a", encoding="utf-8") as conf:
            conf.writelines(f"{name} = {value}\n" for name, value in configured.items())
        pid = _start(folder, core)
        pinned = "" if core is None else f", core {core}"
        say(f"postgresql: throwaway cluster on port {port}{pinned}, in {folder}")
        yield Cluster(port=port, folder=folder, postmaster_pid=pid, core=core)
    finally:
        if (data / "postmaster.pid").exists():
            subprocess.run(_stop_command(folder, "fast"), check=False, capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)
        say("postgresql: cluster stopped and deleted")


@contextlib.contextmanager
def throwaway_replica(
    primary: Cluster,
    *,
    port: int,
    say: Callable[[str], None],
    settings: Mapping[str, str] = LEAN_SETTINGS,
) -> Iterator[Cluster]:
    """A streaming replica of `primary` on 127.0.0.1:`port` (`pg_basebackup -R`: a copy of its
    data that replays its WAL as it comes), hot standby; stopped and deleted after."""
    folder = Path(tempfile.mkdtemp(prefix="gqlb-pg-replica-", dir="/tmp"))
    data = folder / "data"
    try:
        _give_to_cluster_user(folder)
        _run([*_cluster_user(), str(PG_BIN / "pg_basebackup"), "-D", str(data),
              "-h", "127.0.0.1", "-p", str(primary.port), "-U", SUPERUSER,
              "-R", "-X", "stream", "-c", "fast"])  # fmt: skip
        configured = {**settings, "port": str(port), "unix_socket_directories": f"'{folder}'"}
        with (data / "postgresql.conf").open("a", encoding="utf-8") as conf:
            conf.writelines(f"{name} = {value}\n" for name, value in configured.items())
        pid = _start(folder, primary.core)
        say(f"postgresql: streaming replica of port {primary.port} on port {port}, in {folder}")
        yield Cluster(port=port, folder=folder, postmaster_pid=pid, core=primary.core)
    finally:
        if (data / "postmaster.pid").exists():
            subprocess.run(_stop_command(folder, "fast"), check=False, capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)
        say("postgresql: replica stopped and deleted")


def _start(folder: Path, core: int | None) -> int:
    """Start the cluster in `folder` (pinned to `core`), wait until it accepts; its pid."""
    data = folder / "data"
    log = folder / "postgresql.log"
    start = [str(PG_BIN / "pg_ctl"), "-D", str(data), "-l", str(log), "-w",
             "-t", str(START_SECONDS), "start"]  # fmt: skip
    pinning = [] if core is None else ["taskset", "-c", str(core)]
    _run([*_cluster_user(), *pinning, *start], log=log)
    return int((data / "postmaster.pid").read_text().split()[0])


def _stop_command(folder: Path, mode: str) -> list[str]:
    data = folder / "data"
    return [*_cluster_user(), str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", mode, "-w", "stop"]


def _give_to_cluster_user(folder: Path) -> None:
    """As root, the folder belongs to the system user the cluster runs as."""
    if os.geteuid() == 0:
        shutil.chown(folder, user=SYSTEM_USER, group=SYSTEM_USER)


def _cluster_user() -> list[str]:
    """The command prefix that runs initdb and pg_ctl as a user they accept."""
    return ["runuser", "-u", SYSTEM_USER, "--"] if os.geteuid() == 0 else []


def _run(command: list[str], *, log: Path | None = None) -> None:
    finished = subprocess.run(command, check=False, capture_output=True, text=True)
    if finished.returncode == 0:
        return
    detail = finished.stdout + finished.stderr
    if log is not None and log.exists():
        detail += log.read_text(errors="replace")[-2000:]
    raise ClusterError(f"{Path(command[0]).name} … failed ({finished.returncode}):\n{detail}")
