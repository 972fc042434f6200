"""A throwaway PgBouncer (Debian's `pgbouncer`) in transaction pooling mode, in front of one
PostgreSQL server, gone at the end.

Its settings are deploy/pgbouncer.ini's, with the ports and folders of this run: every database
name of the server, trust authentication for the listed user (the tests' servers trust local
connections), `pool_mode = transaction`. PgBouncer refuses to run as root: as root, it runs as
the `postgres` system user (as bench/cluster.py's clusters do). Standard library only.
"""

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

PGBOUNCER: Final = "pgbouncer"
SYSTEM_USER: Final = "postgres"
START_SECONDS: Final = 30
DEPLOY_INI: Final = Path(__file__).resolve().parent.parent / "deploy" / "pgbouncer.ini"


class PgBouncerError(RuntimeError):
    """PgBouncer did not start; the message carries its log."""


@dataclass(frozen=True, slots=True)
class PgBouncer:
    port: int
    folder: Path
    pid: int

    def url(self, database: str, *, user: str = "postgres") -> str:
        return f"postgresql+asyncpg://{user}@127.0.0.1:{self.port}/{database}"


def available() -> str | None:
    """Why PgBouncer cannot be started here, or None when it can."""
    if shutil.which(PGBOUNCER) is None:
        return "no pgbouncer (apt-get install pgbouncer)"
    return None


def configuration(
    *,
    port: int,
    server_host: str,
    server_port: int,
    folder: Path,
    pool_size: int,
    listen_addr: str = "127.0.0.1",
) -> str:
    """deploy/pgbouncer.ini for this run: its [pgbouncer] settings, this run's addresses."""
    run = {
        "listen_addr": listen_addr,
        "listen_port": str(port),
        "unix_socket_dir": "",
        "auth_type": "trust",
        "auth_file": str(folder / "userlist.txt"),
        "default_pool_size": str(pool_size),
        "logfile": str(folder / "pgbouncer.log"),
        "pidfile": str(folder / "pgbouncer.pid"),
    }
    lines = []
    for line in DEPLOY_INI.read_text().splitlines():
        name = line.split("=", 1)[0].strip()
        if name in _RUN_SETTINGS or name == "*":
            continue
        lines.append(line)
        if line.strip() == "[databases]":
            lines.append(f"* = host={server_host} port={server_port}")
        elif line.strip() == "[pgbouncer]":
            lines.extend(f"{name} = {value}" for name, value in run.items())
    return "\n".join(lines) + "\n"


_RUN_SETTINGS = frozenset(
    {
        "listen_addr",
        "listen_port",
        "unix_socket_dir",
        "auth_type",
        "auth_file",
        "auth_user",
        "auth_query",
        "default_pool_size",
        "logfile",
        "pidfile",
    }
)


@contextlib.contextmanager
def throwaway_pgbouncer(
    *,
    port: int,
    server_host: str,
    server_port: int,
    say: Callable[[str], None],
    user: str = "postgres",
    pool_size: int = 20,
    listen_addr: str = "127.0.0.1",
) -> Iterator[PgBouncer]:
    """PgBouncer on 127.0.0.1:`port` pooling every database of `server_host:server_port` in
    transaction mode, `pool_size` server connections per database; stopped after."""
    folder = Path(tempfile.mkdtemp(prefix="gqlb-pgbouncer-", dir="/tmp"))
    ini = folder / "pgbouncer.ini"
    ini.write_text(
        configuration(
            port=port,
            server_host=server_host,
            server_port=server_port,
            folder=folder,
            pool_size=pool_size,
            listen_addr=listen_addr,
        )
    )
    (folder / "userlist.txt").write_text(f'"{user}" ""\n')
    pid = 0
    try:
        if os.geteuid() == 0:
            shutil.chown(folder, user=SYSTEM_USER, group=SYSTEM_USER)
            for path in folder.iterdir():
                shutil.chown(path, user=SYSTEM_USER, group=SYSTEM_USER)
        prefix = ["runuser", "-u", SYSTEM_USER, "--"] if os.geteuid() == 0 else []
        started = subprocess.run(
            [*prefix, PGBOUNCER, "-d", str(ini)], check=False, capture_output=True, text=True
        )
        pid = _wait_for_pid(folder, started.stdout + started.stderr)
        say(f"pgbouncer: transaction pooling on port {port} for {server_host}:{server_port}")
        yield PgBouncer(port=port, folder=folder, pid=pid)
    finally:
        if pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        shutil.rmtree(folder, ignore_errors=True)
        say("pgbouncer: stopped")


def _wait_for_pid(folder: Path, output: str) -> int:
    pidfile = folder / "pgbouncer.pid"
    log = folder / "pgbouncer.log"
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        listening = log.exists() and "listening on" in log.read_text(errors="replace")
        if listening and pidfile.exists() and pidfile.read_text().strip():
            return int(pidfile.read_text().strip())
        time.sleep(0.05)
    detail = output + (log.read_text(errors="replace")[-2000:] if log.exists() else "")
    raise PgBouncerError(f"pgbouncer did not start within {START_SECONDS} s:\n{detail}")
