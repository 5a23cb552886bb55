"""The hub's FastAPI app: a factory that takes settings, a lifespan that loads models once.

Routes are thin: parse the body, call ``ModelHub``, return JSON. Every error, whatever
raised it, leaves as the one OpenAI-style body of model-api.md.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from core.errors import SieveError
from core.settings import ModelHubSettings
from services.modelhub.errors import error_body
from services.modelhub.guard import HubGuard, KeyRing, TokenBucket, error_response_parts
from services.modelhub.registry import (
    LoadedModel,
    default_inference_threads,
    default_intra_op_threads,
    load_models,
    model_specs,
)
from services.modelhub.schemas import EmbeddingsRequest, RerankRequest
from services.modelhub.service import ModelHub

__all__ = ["RERANK_PATHS", "create_app"]

RERANK_PATHS = ("/v1/rerank", "/rerank", "/v2/rerank")


def _load(settings: ModelHubSettings) -> dict[str, LoadedModel]:
    threads = settings.inference_threads or default_inference_threads()
    intra = settings.intra_op_threads or default_intra_op_threads(threads)
    cache = settings.graph_cache_dir if settings.optimize_graphs else None
    return load_models(model_specs(settings), intra_op_threads=intra, graph_cache_dir=cache)


def _hub(request: Request) -> ModelHub:
    hub: ModelHub = request.app.state.hub
    return hub


HubDep = Annotated[ModelHub, Depends(_hub)]


def _json(body: BaseModel) -> Response:
    # pydantic-core writes the JSON directly: much faster than jsonable_encoder for
    # hundreds of embedding floats.
    return Response(body.model_dump_json(exclude_none=True), media_type="application/json")


def create_app(
    settings: ModelHubSettings, *, models: Mapping[str, LoadedModel] | None = None
) -> FastAPI:
    """Build the hub app; ``models`` lets a caller share already-loaded models (tests)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        loaded = models if models is not None else await asyncio.to_thread(_load, settings)
        hub = ModelHub(loaded, settings)
        hub.start()
        app.state.hub = hub
        try:
            yield
        finally:
            await hub.close()

    app = FastAPI(
        title="Sieve model hub",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    limiter = (
        TokenBucket(settings.rate_limit_per_s, settings.rate_limit_burst)
        if settings.rate_limit_per_s
        else None
    )
    app.add_middleware(
        HubGuard,
        keys=KeyRing(settings.api_keys),
        max_body_bytes=settings.max_body_bytes,
        limiter=limiter,
    )
    _add_error_handlers(app)
    _add_routes(app)
    return app


def _add_error_handlers(app: FastAPI) -> None:
    async def sieve_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, SieveError)
        status, body, headers = error_response_parts(exc)
        return JSONResponse(body, status_code=status, headers=headers)

    async def validation_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        first = exc.errors()[0] if exc.errors() else {}
        if first.get("type") == "json_invalid":
            message, param = "the request body is not valid JSON", None
        else:
            loc = [str(part) for part in first.get("loc", ()) if part != "body"]
            param = ".".join(loc) or None
            message = str(first.get("msg", "malformed request body"))
            message = f"{param}: {message}" if param else message
        return JSONResponse(error_body(400, "invalid_request_error", message, param), 400)

    async def http_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        kind = "not_found_error" if exc.status_code == 404 else "invalid_request_error"
        body = error_body(exc.status_code, kind, str(exc.detail))
        return JSONResponse(body, exc.status_code, headers=exc.headers)

    app.add_exception_handler(SieveError, sieve_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)


def _add_routes(app: FastAPI) -> None:
    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/v1/models")
    async def list_models(hub: HubDep) -> Response:
        return _json(hub.list_models())

    @app.post("/v1/embeddings")
    async def embeddings(body: EmbeddingsRequest, hub: HubDep) -> Response:
        return _json(await hub.embed(body))

    async def rerank(body: RerankRequest, hub: HubDep) -> Response:
        return _json(await hub.rerank(body))

    for path in RERANK_PATHS:
        app.add_api_route(path, rerank, methods=["POST"])
