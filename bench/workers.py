"""The worker processes of one `gql-blog serve --workers N`: which they are, their memory, and
which of them holds the server's end of a given TCP connection.

uvicorn starts its workers with multiprocessing's spawn; the master's other child is
multiprocessing's resource tracker. Everything is read from /proc (Linux): a connection's socket
inode from /proc/net/tcp, then the worker whose open files include that socket.
"""

import os
from pathlib import Path
from typing import Final

# 127.0.0.1 as /proc/net/tcp prints it: the address's bytes as one little-endian hex word.
_LOOPBACK_HEX: Final = "0100007F"


def worker_pids(master_pid: int) -> list[int]:
    """The pids of the master's worker processes, in order."""
    children = Path(f"/proc/{master_pid}/task/{master_pid}/children").read_text().split()
    return sorted(pid for pid in map(int, children) if _is_worker(pid))


def _is_worker(pid: int) -> bool:
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"multiprocessing.spawn" in command


def rss_kib(pid: int) -> int | None:
    """A process's resident set size now, from /proc/PID/status (VmRSS), in KiB."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return None


def connection_inode(tcp_table: str, *, local_port: int, remote_port: int) -> int | None:
    """The socket inode of 127.0.0.1:local_port ↔ 127.0.0.1:remote_port in /proc/net/tcp's text."""
    local = f"{_LOOPBACK_HEX}:{local_port:04X}"
    remote = f"{_LOOPBACK_HEX}:{remote_port:04X}"
    for line in tcp_table.splitlines()[1:]:  # the first line names the columns
        fields = line.split()
        if len(fields) > 9 and fields[1] == local and fields[2] == remote:
            return int(fields[9])
    return None


def socket_owner(pids: list[int], *, server_port: int, client_port: int) -> int | None:
    """Which of `pids` holds the server's end of the connection from `client_port`."""
    table = Path("/proc/net/tcp").read_text()
    inode = connection_inode(table, local_port=server_port, remote_port=client_port)
    if inode is None:
        return None
    wanted = f"socket:[{inode}]"
    for pid in pids:
        for descriptor in Path(f"/proc/{pid}/fd").iterdir():
            try:
                if os.readlink(descriptor) == wanted:
                    return pid
            except OSError:
                continue  # closed since the folder was listed
    return None
