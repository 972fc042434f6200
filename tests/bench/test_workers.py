"""bench/workers.py: a connection's socket inode in /proc/net/tcp's text."""

from bench.workers import connection_inode

# The listening socket on 127.0.0.1:8000 (0x1F40), and both ends of a connection from port
# 51172 (0xC7E4): the server's end is the line whose local port is 8000.
TABLE = """\
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F40 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1111 1
   1: 0100007F:C7E4 0100007F:1F40 01 00000000:00000000 00:00000000 00000000     0        0 2222 1
   2: 0100007F:1F40 0100007F:C7E4 01 00000000:00000000 00:00000000 00000000     0        0 3333 1
"""


def test_the_server_end_of_a_connection_is_found_by_both_ports() -> None:
    assert connection_inode(TABLE, local_port=8000, remote_port=51172) == 3333


def test_the_client_end_is_the_other_way_round() -> None:
    assert connection_inode(TABLE, local_port=51172, remote_port=8000) == 2222


def test_an_unknown_connection_has_no_inode() -> None:
    assert connection_inode(TABLE, local_port=8000, remote_port=51173) is None
