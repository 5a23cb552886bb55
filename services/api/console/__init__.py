"""The web console at ``/console``: server-rendered pages, plain JavaScript, no CDN.

Pages are Jinja2 templates rendered by the API process; the data comes from the same
``/v1`` API, fetched by the page's script with the key the user typed (kept in session
storage, sent as ``Authorization: Bearer``). Every asset is in ``static/``.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from services.api.console.pages import router

__all__ = ["STATIC_DIR", "install_console", "router"]

STATIC_DIR = Path(__file__).parent / "static"


def install_console(app: FastAPI) -> None:
    """Serve the console's pages and its static assets on ``app``."""
    app.include_router(router)
    app.mount("/console/static", StaticFiles(directory=STATIC_DIR), name="console-static")
