"""The HTTP implementation of every Sieve server: the API, the model hub, tests' servers.

It is pinned to h11. uvicorn's default, ``auto``, switches to
httptools whenever that package is importable (``uvicorn[standard]`` brings it), and
httptools puts no bound on a request's header block: 24 MB of headers were taken in, held
in memory and never answered, where h11 answers 400 once the block passes 16 KiB. A
dependency added to an image must not lift a limit silently.
"""

from __future__ import annotations

import sys
from typing import Final, Literal

__all__ = ["HTTP_IMPLEMENTATION", "set_switch_interval"]

HTTP_IMPLEMENTATION: Final[Literal["h11"]] = "h11"


def set_switch_interval(milliseconds: float) -> None:
    """How long a thread may run Python before one waiting for the interpreter gets it
    (``SIEVE_API_SWITCH_INTERVAL_MS``): set by the API process at start."""
    sys.setswitchinterval(milliseconds / 1000)
