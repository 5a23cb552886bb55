"""The console's pages: one template each; the data is fetched by the page from ``/v1``."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates

from services.api.deps import Deps

__all__ = ["router"]

router = APIRouter(prefix="/console", include_in_schema=False)
templates = Jinja2Templates(directory=Path(__file__).parent / "templates")

# Everything the pages load comes from this origin: no CDN, no inline script.
_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)


def _page(request: Request, deps: Deps, template: str, **context: object) -> HTMLResponse:
    response = templates.TemplateResponse(
        request,
        template,
        {
            "open_mode": deps.resolver.open_mode,
            "default_embedding_model": deps.models.embedding_model,
            "default_rerank_model": deps.models.rerank_model,
            **context,
        },
    )
    response.headers["content-security-policy"] = _CSP
    response.headers["x-content-type-options"] = "nosniff"
    response.headers["referrer-policy"] = "no-referrer"
    return response


@router.get("", response_model=None)
async def console_root() -> RedirectResponse:
    """``/console`` → ``/console/`` (relative links resolve against the slash)."""
    return RedirectResponse("/console/", status_code=307)


@router.get("/", response_class=HTMLResponse)
async def collections_page(request: Request, deps: Deps) -> HTMLResponse:
    """Collections: list with counts, create, delete."""
    return _page(request, deps, "collections.html", page="collections")


@router.get("/collections/{name}", response_class=HTMLResponse)
async def collection_page(request: Request, name: str, deps: Deps) -> HTMLResponse:
    """One collection: upload with live progress, and its documents."""
    return _page(request, deps, "collection.html", page="documents", collection=name)


@router.get("/collections/{name}/query", response_class=HTMLResponse)
async def playground_page(request: Request, name: str, deps: Deps) -> HTMLResponse:
    """The query playground."""
    return _page(request, deps, "playground.html", page="query", collection=name)


@router.get("/collections/{name}/evaluation", response_class=HTMLResponse)
async def evaluation_page(request: Request, name: str, deps: Deps) -> HTMLResponse:
    """The last ``sieve eval`` report of the collection."""
    return _page(request, deps, "evaluation.html", page="evaluation", collection=name)
