"""``GET /v1/collections/{name}/documents/{id}/image[?page=N]``: the page image OCR read.

Only the bytes the worker stored at ingest are served (``ingest.page_store``), and only for
an indexed document: nothing is decoded or rendered here, so a GET costs two small blob
reads whatever the upload was. An expired document (queries drop it at once, the sweep
deletes it later), a refused, failed, unfinished or unknown document, a page without an
image, and a document indexed before page images were derived (code
``image_not_derived``: upload it again, changed, or delete and re-upload it) are 404s.

Registered before ``routes_documents`` (whose ``GET /{doc_id:path}`` would otherwise take
``…/image`` as part of a document id).
"""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Header, Query
from fastapi.responses import Response

from core.errors import NotFound
from core.expiry import expired
from indexing.records import DocStatus, DocumentRecord
from ingest.page_store import StoredPage, read_manifest
from services.api.deps import Deps, Tenant, in_thread

__all__ = ["router"]

router = APIRouter(prefix="/v1/collections/{name}/documents", tags=["documents"])

_IMAGE_TYPES = ("image/png", "image/jpeg", "image/gif", "image/webp")
# Stored pages are content-addressed: a URL's bytes change only with a new version.
_CACHE = "private, max-age=3600"


@router.get(
    "/{doc_id:path}/image",
    response_class=Response,
    responses={
        200: {"content": {t: {} for t in _IMAGE_TYPES}, "description": "The page image."},
        304: {"description": "The client's copy (If-None-Match) is current."},
        404: {
            "description": "No such collection, document or page; the document is not "
            "indexed, has no image, or was indexed before page images were stored."
        },
    },
)
async def get_document_image(
    name: str,
    doc_id: str,
    deps: Deps,
    tenant: Tenant,
    *,
    page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
    if_none_match: Annotated[str | None, Header()] = None,
) -> Response:
    """The page image stored at ingest: an image as uploaded, or the page as PNG/JPEG."""
    await in_thread(deps.state.get_collection, tenant, name)
    doc = await in_thread(deps.state.get_document, tenant, name, doc_id)
    key = _manifest_key(doc)
    manifest = await in_thread(read_manifest, deps.blobs, key)
    if manifest.source != doc.content_hash:
        raise NotFound(
            f"the page images of document {doc_id!r} belong to another version; "
            "upload it again to derive them",
            code="image_not_derived",
        )
    stored = manifest.pages.get(page)
    if stored is None:
        raise NotFound(f"document {doc_id!r} has no image of page {page}", code="page_not_found")
    headers = _headers(stored)
    if if_none_match is not None and _matches(if_none_match, headers["ETag"]):
        return Response(status_code=304, headers=headers)
    data = await in_thread(deps.blobs.get, stored.key)
    return Response(data, media_type=stored.mime, headers=headers)


def _manifest_key(doc: DocumentRecord) -> str:
    """The manifest of an indexed document's page images.

    Raises:
        NotFound: deleted (``document_not_found``); expired (``document_expired``); not
            indexed, a record or without page images (``no_image``); indexed before images
            were stored (``image_not_derived``).
    """
    if doc.status is DocStatus.DELETED:
        raise NotFound(f"document {doc.id!r} does not exist", code="document_not_found")
    if expired(doc.expires_at, time.time()):
        # Queries drop it the moment it expires; its image goes with it, not at the sweep.
        raise NotFound(f"document {doc.id!r} expired", code="document_expired")
    if doc.status is not DocStatus.INDEXED:
        raise NotFound(
            f"document {doc.id!r} is {doc.status.value}: only indexed documents have images",
            code="no_image",
        )
    if doc.kind == "record" or doc.page_images == "":
        raise NotFound(f"document {doc.id!r} has no image", code="no_image")
    if doc.page_images is None:
        raise NotFound(
            f"document {doc.id!r} was indexed before page images were stored at ingest; "
            "upload it again (delete it first if unchanged) to derive them",
            code="image_not_derived",
        )
    return doc.page_images


def _headers(stored: StoredPage) -> dict[str, str]:
    return {
        "ETag": f'"{stored.key}"',
        "Cache-Control": _CACHE,
        "X-Content-Type-Options": "nosniff",
        "X-Image-Width": str(stored.width),
        "X-Image-Height": str(stored.height),
    }


def _matches(if_none_match: str, etag: str) -> bool:
    """RFC 9110 weak comparison of ``If-None-Match`` (a list, or ``*``) with ``etag``."""
    for candidate in if_none_match.split(","):
        tag = candidate.strip().removeprefix("W/")
        if tag in ("*", etag):
            return True
    return False
