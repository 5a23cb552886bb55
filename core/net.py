"""Loopback ports: one free for a child process or a test server, or taken by someone else."""

from __future__ import annotations

import socket

__all__ = ["free_port", "port_taken"]


def free_port() -> int:
    """A TCP port that was free on 127.0.0.1 a moment ago (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def port_taken(host: str, port: int) -> bool:
    """True when a server could not bind ``host:port`` now: something listens on it.

    The probe binds with ``SO_REUSEADDR``, as uvicorn and valkey do, so it agrees with their
    real bind: connections of a stopped server lingering in TIME_WAIT do not count (without
    the option, a restart within about a minute of a stop was refused), while a listening
    socket on the port, or on the wildcard address, still does.
    """
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False
