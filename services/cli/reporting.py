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

__all__ = ["EXIT_ERROR", "EXIT_INTERRUPTED", "fail", "one_line_errors", "stderr", "stdout"]

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


@contextmanager
def one_line_errors() -> Iterator[None]:
    """Turn any failure inside the block into one line on stderr and exit code 1.

    ``SIEVE_DEBUG=1`` lets unexpected exceptions through with their traceback.
    """
    from services.cli.client import ApiError  # noqa: PLC0415 - keep `sieve --help` fast

    try:
        yield
    except ApiError as exc:
        fail(exc.message, exc.code)
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
