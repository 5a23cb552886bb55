"""Run the hub with uvicorn (the composition root behind ``sieve modelhub``)."""

from __future__ import annotations

import logging

import uvicorn

from core.logs import configure_logging
from core.settings import LogSettings, ModelHubSettings
from services.modelhub.app import create_app
from services.serving import HTTP_IMPLEMENTATION

__all__ = ["serve"]

log = logging.getLogger(__name__)


def serve(settings: ModelHubSettings, log_settings: LogSettings) -> None:
    """Load the models and serve until interrupted."""
    configure_logging(log_settings.level, json_format=log_settings.json_format)
    log.info(
        "model hub starting",
        extra={"host": settings.host, "port": settings.port, "open": settings.open_mode},
    )
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=10,
        http=HTTP_IMPLEMENTATION,
    )
