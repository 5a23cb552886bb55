"""``GET /v1/collections/{name}/documents/{id}/image[?page=N]``: the page image OCR read.

Registered before ``routes_documents`` (whose ``GET /{doc_id:path}`` would otherwise take
``…/image`` as part of a document id).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import Response

from core.errors import NotFound
from indexing.records import DocStatus
from ingest.page_images import page_image
from services.api.deps import Deps, Tenant, in_thread

__all__ = ["router"]

router = APIRouter(prefix="/v1/collections/{name}/documents", tags=["documents"])

_IMAGE_TYPES = ("image/png", "image/jpeg", "image/gif", "image/webp")


@router.get(
    "/{doc_id:path}/image",
    response_class=Response,
    responses={
        200: {"content": {t: {} for t in _IMAGE_TYPES}, "description": "The page image."},
        404: {"description": "No such collection, document, page, or the document has no image."},
    },
)
async def get_document_image(
    name: str,
    doc_id: str,
    deps: Deps,
    tenant: Tenant,
    page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
) -> Response:
    """An image document's page (as uploaded), or a PDF page rendered as PNG."""
    await in_thread(deps.state.get_collection, tenant, name)
    doc = await in_thread(deps.state.get_document, tenant, name, doc_id)
    if doc.status is DocStatus.DELETED:
        raise NotFound(f"document {doc_id!r} does not exist", code="document_not_found")
    if doc.kind == "record" or not doc.blob_key:
        raise NotFound(f"document {doc_id!r} has no image", code="no_image")
    data = await in_thread(deps.blobs.get, doc.blob_key)
    rendered = await deps.pools.cpu.run(page_image, data, page)
    return Response(
        rendered.data,
        media_type=rendered.mime,
        headers={
            "Cache-Control": "private, max-age=3600",
            "X-Image-Width": str(rendered.width),
            "X-Image-Height": str(rendered.height),
        },
    )
