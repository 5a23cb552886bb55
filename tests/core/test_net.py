"""The port check agrees with the real bind of uvicorn and valkey (``SO_REUSEADDR``)."""

from __future__ import annotations

import socket

from core.net import free_port, port_taken


def _time_wait_port() -> int:
    """A port whose only trace is a server-closed connection (TIME_WAIT), nothing listening."""
    with socket.socket() as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port: int = listener.getsockname()[1]
        client = socket.create_connection(("127.0.0.1", port))
        served, _ = listener.accept()
        served.close()  # the server closes first (Connection: close): TIME_WAIT is its side's
        client.recv(1)
        client.close()
    return port


def test_a_port_in_time_wait_is_free() -> None:
    port = _time_wait_port()
    assert not port_taken("127.0.0.1", port)
    # ...and a server really can bind it, as uvicorn does.
    with socket.socket() as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", port))
        server.listen()


def test_a_listening_port_is_taken() -> None:
    with socket.socket() as holder:
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        assert port_taken("127.0.0.1", holder.getsockname()[1])


def test_a_wildcard_listener_takes_the_loopback_port() -> None:
    with socket.socket() as holder:
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        holder.bind(("0.0.0.0", 0))
        holder.listen()
        assert port_taken("127.0.0.1", holder.getsockname()[1])


def test_a_free_port_is_not_taken() -> None:
    assert not port_taken("127.0.0.1", free_port())
