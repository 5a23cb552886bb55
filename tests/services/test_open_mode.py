"""Open mode (no API keys) against a real API over HTTP: a cross-site page or a DNS-rebound
name is refused before any route runs; loopback, the bind host and configured names work."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import sync_playwright

from tests.services.stack import open_api
from tests.services.test_console_browser import CHROMIUM, CHROMIUM_ARGS

pytestmark = pytest.mark.slow

UPLOAD = {"documents": [{"id": "planted", "text": "A page on another site uploaded this."}]}


@pytest.fixture(scope="module")
def api(redis_url: str, hub_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("openmode")
    with open_api(redis_url, hub_url, root, SIEVE_API_ALLOWED_HOSTS="sieve.lan, Box.Home") as url:
        assert httpx.post(f"{url}/v1/collections", json={"name": "notes"}).status_code == 201
        yield url


def _refused(resp: httpx.Response, code: str) -> None:
    assert resp.status_code == 403, resp.text
    error = resp.json()["error"]
    assert error["code"] == code
    assert error["request_id"] == resp.headers["x-request-id"]
    assert resp.headers["x-content-type-options"] == "nosniff"


def _documents(api: str) -> int:
    return int(httpx.get(f"{api}/v1/collections/notes").json()["documents"])


@pytest.mark.parametrize(
    "origin", ["http://evil.example", "null", "https://127.0.0.1.evil.example", "file://"]
)
def test_a_cross_site_origin_cannot_upload_or_delete(api: str, origin: str) -> None:
    headers = {"Origin": origin}
    resp = httpx.post(f"{api}/v1/collections/notes/documents", json=UPLOAD, headers=headers)
    _refused(resp, "cross_site_refused")
    _refused(httpx.delete(f"{api}/v1/collections/notes", headers=headers), "cross_site_refused")
    _refused(httpx.get(f"{api}/v1/collections", headers=headers), "cross_site_refused")
    assert _documents(api) == 0


@pytest.mark.parametrize(
    "host", ["evil.example", "evil.example:8000", "127.0.0.1.nip.io", "localhost.evil", ""]
)
def test_a_rebound_host_name_is_refused(api: str, host: str) -> None:
    # DNS rebinding: the page's own name now resolves to 127.0.0.1; the Host header tells.
    resp = httpx.post(f"{api}/v1/collections/notes/documents", json=UPLOAD, headers={"Host": host})
    _refused(resp, "host_not_allowed")
    _refused(httpx.get(f"{api}/console/", headers={"Host": host}), "host_not_allowed")
    assert _documents(api) == 0


def test_loopback_the_bind_host_and_configured_names_are_answered(api: str) -> None:
    port = api.rsplit(":", 1)[1]
    for host in (
        "127.0.0.1",
        "localhost",
        "LOCALHOST.",
        "[::1]",
        "127.0.0.2",
        "sieve.lan",
        "box.home",
    ):
        for origin in (None, f"http://{host}:{port}", "http://localhost:3000"):
            headers = {"Host": f"{host}:{port}", **({"Origin": origin} if origin else {})}
            resp = httpx.get(f"{api}/v1/collections", headers=headers)
            assert resp.status_code == 200, (host, origin, resp.text)
            assert resp.headers["x-content-type-options"] == "nosniff"
    resp = httpx.post(
        f"{api}/v1/collections/notes/documents",
        json=UPLOAD,
        headers={"Origin": f"http://127.0.0.1:{port}"},
    )
    assert resp.status_code == 202, resp.text
    assert _documents(api) == 1


_UPLOAD_FROM_PAGE = """async (target) => {
  const form = new FormData();
  form.append("files", new Blob(["Planted by a page on another site."]), "planted.txt");
  try {
    const resp = await fetch(target, {method: "POST", body: form, mode: "no-cors"});
    return resp.type;
  } catch (err) {
    return "refused by the browser: " + err;
  }
}"""


def test_in_a_browser_neither_a_foreign_page_nor_a_rebound_name_gets_in(api: str) -> None:
    port = httpx.URL(api).port
    # The attacker's name resolves to 127.0.0.1, as after DNS rebinding: its page is served
    # from this machine (so no private-network rule of the browser stands in the way).
    args = [*CHROMIUM_ARGS, "--host-resolver-rules=MAP evil.example 127.0.0.1"]
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), args=args)
        try:
            page = chromium.new_context().new_page()
            page.goto(f"http://evil.example:{port}/")
            # The page posts a (CORS-simple) multipart upload to the API: cross-site.
            page.evaluate(_UPLOAD_FROM_PAGE, f"{api}/v1/collections/notes/documents")
            assert "planted.txt" not in _ids(api)
            # Same-origin under the rebound name: only the Host header tells.
            rebound = page.goto(f"http://evil.example:{port}/v1/collections")
            assert rebound is not None
            assert rebound.status == 403
            assert "host_not_allowed" in rebound.text()
            page.evaluate(_UPLOAD_FROM_PAGE, "/v1/collections/notes/documents")
            assert "planted.txt" not in _ids(api)
        finally:
            chromium.close()


def _ids(api: str) -> set[str]:
    listed = httpx.get(f"{api}/v1/collections/notes/documents").json()["documents"]
    return {d["id"] for d in listed}
