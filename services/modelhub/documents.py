"""Parse every rerank query and document shape model-api.md accepts into one form (pure)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from services.modelhub.errors import InvalidField

__all__ = ["RerankInput", "parse_document", "parse_documents", "parse_query"]


@dataclass(frozen=True, slots=True)
class RerankInput:
    """A query or document reduced to its text, its images (``data:`` URIs) and its echo."""

    text: str
    images: tuple[str, ...] = ()
    # What ``return_documents`` gives back: {"text"} or {"multi_modal": [parts], "text"?}.
    echo: dict[str, Any] = field(default_factory=dict)


def _image_url(value: object, param: str) -> str:
    """Return the URL an image part carries (a string or ``{"url": ...}``), data: only."""
    url = value.get("url") if isinstance(value, dict) else value
    if not isinstance(url, str) or not url:
        raise InvalidField("an image must be a data: URI string", param=param)
    if url[:5].lower() != "data:":
        raise InvalidField(
            "only data: URIs are accepted for images; the hub never fetches remote URLs",
            param=param,
        )
    return url


def _image_part(url: str) -> dict[str, Any]:
    return {"type": "image_url", "image_url": {"url": url}}


def _from_parts(parts: object, param: str) -> RerankInput:
    """Read vLLM content parts: ``text``, ``image_url`` (and ``image``) in any order."""
    if not isinstance(parts, list) or not parts:
        raise InvalidField("content must be a non-empty list of parts", param=param)
    texts: list[str] = []
    images: list[str] = []
    for n, part in enumerate(parts):
        where = f"{param}.content[{n}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if not isinstance(part, dict) or not isinstance(kind, str):
            raise InvalidField("a content part is an object with a 'type'", param=where)
        if kind == "text":
            text = part.get("text")
            if not isinstance(text, str):
                raise InvalidField("a text part needs a string 'text'", param=where)
            texts.append(text)
        elif kind in ("image_url", "image"):
            images.append(_image_url(part.get(kind), where))
        else:
            raise InvalidField(f"unsupported content part type {kind[:40]!r}", param=where)
    return _build("\n".join(t for t in texts if t), images, had_text=bool(texts))


def _build(text: str, images: Sequence[str], *, had_text: bool) -> RerankInput:
    if not images:
        return RerankInput(text=text, echo={"text": text})
    echo: dict[str, Any] = {"multi_modal": [_image_part(url) for url in images]}
    if had_text:
        echo["text"] = text
    return RerankInput(text=text, images=tuple(images), echo=echo)


def _parse(raw: object, param: str) -> RerankInput:
    if isinstance(raw, str):
        return RerankInput(text=raw, echo={"text": raw})
    if not isinstance(raw, dict):
        raise InvalidField("expected a string or an object", param=param)
    if "content" in raw:
        return _from_parts(raw["content"], param)
    text = raw.get("text")
    image = raw.get("image")
    if text is None and image is None:
        raise InvalidField("an object needs 'text', 'image' or 'content'", param=param)
    if text is not None and not isinstance(text, str):
        raise InvalidField("'text' must be a string", param=param)
    raw_images = [] if image is None else image if isinstance(image, list) else [image]
    images = [_image_url(value, param) for value in raw_images]
    return _build(text or "", images, had_text=text is not None)


def parse_document(raw: object, index: int) -> RerankInput:
    """Parse one document: a string, ``{"text"}``, ``{"image"}``, both, or ``{"content"}``.

    Raises:
        InvalidField: naming ``documents[index]``.
    """
    return _parse(raw, f"documents[{index}]")


def parse_documents(raw: object, *, max_documents: int, max_chars: int) -> list[RerankInput]:
    """Parse the ``documents`` list, enforcing the count and per-text length limits.

    Raises:
        InvalidField: on an empty or over-long list, or on any bad document.
    """
    if not isinstance(raw, list) or not raw:
        raise InvalidField("documents must be a non-empty list", param="documents")
    if len(raw) > max_documents:
        raise InvalidField(
            f"{len(raw)} documents; at most {max_documents} per request", param="documents"
        )
    docs = [parse_document(item, n) for n, item in enumerate(raw)]
    for n, doc in enumerate(docs):
        if len(doc.text) > max_chars:
            raise InvalidField(
                f"document {n} has {len(doc.text)} characters; the limit is {max_chars}",
                param=f"documents[{n}]",
            )
    return docs


def parse_query(raw: object, *, max_chars: int) -> RerankInput:
    """Parse the query: a string, ``{"text"}`` or ``{"content"}``; it must not be empty.

    Raises:
        InvalidField: naming ``query``.
    """
    query = _parse(raw, "query")
    if not query.text.strip() and not query.images:
        raise InvalidField("query is empty", param="query")
    if len(query.text) > max_chars:
        raise InvalidField(
            f"query has {len(query.text)} characters; the limit is {max_chars}", param="query"
        )
    return query
