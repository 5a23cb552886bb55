"""URLs the API builds for its clients (a hit's page image) stay on the resource they name."""

from __future__ import annotations

import httpx

from services.api.query_images import image_url


def test_a_hits_image_url_never_normalises_to_another_resource() -> None:
    assert image_url("kb", "dir/scan.pdf", 2) == (
        "/v1/collections/kb/documents/dir%2Fscan.pdf/image?page=2"
    )
    for hostile in ("../../victim", "..", "a/./b"):
        url = httpx.Request("GET", "http://api" + image_url("kb", hostile, 1)).url
        assert url.path == f"/v1/collections/kb/documents/{hostile}/image", hostile
