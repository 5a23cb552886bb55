"""The HTTP implementation of every Sieve server: the API, the model hub, tests' servers.

It is pinned to h11. uvicorn's default, ``auto``, switches to
httptools whenever that package is importable (``uvicorn[standard]`` brings it), and
httptools puts no bound on a request's header block: 24 MB of headers were taken in, held
in memory and never answered, where h11 answers 400 once the block passes 16 KiB. A
dependency added to an image must not lift a limit silently.
"""

from __future__ import annotations

from typing import Final, Literal

__all__ = ["HTTP_IMPLEMENTATION"]

HTTP_IMPLEMENTATION: Final[Literal["h11"]] = "h11"
