"""How the CLI speaks: results on stdout, progress and errors on stderr, every error one line
(``sieve: <message> (<code>)``) and never a traceback."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, NoReturn

import typer

if TYPE_CHECKING:
    from rich.console import Console
    from sieve_client import SieveClientError

__all__ = [
    "EXIT_ERROR",
    "EXIT_INTERRUPTED",
    "api_error_message",
    "fail",
    "one_line_errors",
    "stderr",
    "stdout",
]

EXIT_ERROR = 1
EXIT_INTERRUPTED = 130


def stdout() -> Console:
    """The console for results."""
    from rich.console import Console  # noqa: PLC0415 - keep `sieve --help` fast

    return Console(highlight=False)


def stderr() -> Console:
    """The console for progress bars and notes, so stdout stays parseable."""
    from rich.console import Console  # noqa: PLC0415 - keep `sieve --help` fast

    return Console(stderr=True, highlight=False)


def fail(message: str, code: str, exit_code: int = EXIT_ERROR) -> NoReturn:
    """Print one error line on stderr and exit."""
    typer.echo(f"sieve: {message} ({code})", err=True)
    raise typer.Exit(code=exit_code)


def api_error_message(exc: SieveClientError) -> str:
    """The client error's message, with what to check when the API is not there at all."""
    if exc.code == "unreachable":
        return f"{exc.message} — is `sieve up` running?"
    return str(exc.message)


@contextmanager
def one_line_errors() -> Iterator[None]:
    """Turn any failure inside the block into one line on stderr and exit code 1.

    ``SIEVE_DEBUG=1`` lets unexpected exceptions through with their traceback.
    """
    from sieve_client import SieveClientError  # noqa: PLC0415 - keep `sieve --help` fast

    try:
        yield
    except SieveClientError as exc:
        fail(api_error_message(exc), exc.code)
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        fail(f"{where}{exc.strerror or exc}", "os_error")
    except KeyboardInterrupt:
        fail("interrupted", "interrupted", EXIT_INTERRUPTED)
    except (typer.Exit, typer.Abort):
        raise
    except Exception as exc:  # a bug still gets one line; SIEVE_DEBUG shows the trace
        if os.environ.get("SIEVE_DEBUG"):
            raise
        fail(f"unexpected {type(exc).__name__}: {exc}", "internal_error")
