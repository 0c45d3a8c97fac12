"""free_port hands out ports the kernel never gives to outgoing connections, and never twice."""

from __future__ import annotations

import socket

from gitsync.localenv.processes import _ephemeral_floor, free_port


def test_ports_are_below_the_ephemeral_range_distinct_and_bindable() -> None:
    ports = [free_port() for _ in range(50)]
    assert len(set(ports)) == 50
    assert all(20000 <= p < _ephemeral_floor() for p in ports)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", ports[-1]))


def test_a_port_in_use_is_not_handed_out() -> None:
    held = []
    try:
        for _ in range(20):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", free_port()))
            sock.listen()
            held.append(sock)
        busy = {s.getsockname()[1] for s in held}
        assert not busy & {free_port() for _ in range(50)}
    finally:
        for sock in held:
            sock.close()
