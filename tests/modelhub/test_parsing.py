"""Pure parsing and budgeting: document shapes, data: URIs, image tokens, pair budgets."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from core.image_tokens import image_tokens
from services.modelhub.budget import check_query, plan_embedding, plan_pair
from services.modelhub.documents import parse_document, parse_documents, parse_query
from services.modelhub.errors import InvalidField
from services.modelhub.images import decode_data_uri, measure_image
from tests.modelhub.support import png_bytes, png_data_uri, png_header_only


# ---------------------------------------------------------------- images
@pytest.mark.parametrize(
    ("width", "height", "tokens"),
    [(512, 512, 256), (1296, 1936, 1247), (1024, 768, 768), (10, 10, 1), (33, 64, 2)],
)
def test_measure_image_counts_tokens_by_the_guide(width: int, height: int, tokens: int) -> None:
    info = measure_image(png_data_uri(width, height))
    assert (info.width, info.height, info.tokens) == (width, height, tokens)
    assert image_tokens(width, height) == tokens


def test_data_uri_forms() -> None:
    raw = png_bytes(4, 4)
    assert decode_data_uri("data:image/png;base64," + base64.b64encode(raw).decode()) == raw
    wrapped = base64.b64encode(raw).decode()
    assert decode_data_uri("data:image/png;base64," + wrapped[:10] + "\n " + wrapped[10:]) == raw
    assert decode_data_uri("data:,hello%20world") == b"hello world"
    assert decode_data_uri("DATA:;base64,aGk=") == b"hi"


@pytest.mark.parametrize(
    "uri",
    [
        "https://example.com/cat.png",
        "file:///etc/passwd",
        "data:image/png;base64",
        "data:image/png;base64,@@@",
        "data:application/pdf;base64,aGk=",
    ],
)
def test_bad_data_uris_are_refused(uri: str) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - each message is specific, the type is the contract
        decode_data_uri(uri)


def test_non_image_corrupt_and_bomb_images_are_refused() -> None:
    def uri(raw: bytes) -> str:
        return "data:image/png;base64," + base64.b64encode(raw).decode()

    with pytest.raises(ValueError, match="readable image"):
        measure_image(uri(b"hello, not an image"))
    with pytest.raises(ValueError, match="empty"):
        measure_image("data:image/png;base64,")
    with pytest.raises(ValueError, match="sane size"):
        measure_image(uri(png_header_only(40_000, 40_000)))
    with pytest.raises(ValueError, match="corrupt"):
        measure_image(uri(png_bytes(64, 64)[:-20]))


# ---------------------------------------------------------------- documents
IMG = "data:image/png;base64,AAAA"


@pytest.mark.parametrize(
    ("raw", "text", "images", "echo"),
    [
        ("plain", "plain", (), {"text": "plain"}),
        ({"text": "t"}, "t", (), {"text": "t"}),
        (
            {"image": IMG},
            "",
            (IMG,),
            {"multi_modal": [{"type": "image_url", "image_url": {"url": IMG}}]},
        ),
        (
            {"text": "cap", "image": {"url": IMG}},
            "cap",
            (IMG,),
            {"multi_modal": [{"type": "image_url", "image_url": {"url": IMG}}], "text": "cap"},
        ),
        (
            {
                "content": [
                    {"type": "text", "text": "a"},
                    {"type": "image_url", "image_url": IMG},
                    {"type": "image", "image": IMG},
                    {"type": "text", "text": "b"},
                ]
            },
            "a\nb",
            (IMG, IMG),
            {
                "multi_modal": [{"type": "image_url", "image_url": {"url": IMG}}] * 2,
                "text": "a\nb",
            },
        ),
        ({"content": [{"type": "text", "text": "only"}]}, "only", (), {"text": "only"}),
        ({"text": "x", "extra": 1}, "x", (), {"text": "x"}),
    ],
)
def test_every_document_shape_parses(
    raw: Any, text: str, images: tuple[str, ...], echo: dict[str, Any]
) -> None:
    doc = parse_document(raw, 0)
    assert (doc.text, doc.images, doc.echo) == (text, images, echo)


@pytest.mark.parametrize(
    ("raw", "param"),
    [
        (None, "documents[3]"),
        (5, "documents[3]"),
        (["a"], "documents[3]"),
        ({}, "documents[3]"),
        ({"text": 5}, "documents[3]"),
        ({"image": "https://x/y.png"}, "documents[3]"),
        ({"image": ""}, "documents[3]"),
        ({"content": "text"}, "documents[3]"),
        ({"content": [{"text": "no type"}]}, "documents[3].content[0]"),
        ({"content": [{"type": "video", "video": IMG}]}, "documents[3].content[0]"),
        ({"content": [{"type": "text", "text": 1}]}, "documents[3].content[0]"),
        (
            {"content": [{"type": "image_url", "image_url": {"url": "s3://b/k"}}]},
            "documents[3].content[0]",
        ),
    ],
)
def test_bad_documents_name_their_index(raw: Any, param: str) -> None:
    with pytest.raises(InvalidField) as info:
        parse_document(raw, 3)
    assert info.value.param == param


def test_document_list_limits() -> None:
    assert len(parse_documents(["a", "b"], max_documents=2, max_chars=10)) == 2
    with pytest.raises(InvalidField, match="at most 2"):
        parse_documents(["a", "b", "c"], max_documents=2, max_chars=10)
    with pytest.raises(InvalidField, match="non-empty"):
        parse_documents([], max_documents=2, max_chars=10)
    with pytest.raises(InvalidField) as info:
        parse_documents(["a", "b" * 11], max_documents=2, max_chars=10)
    assert info.value.param == "documents[1]"


def test_query_shapes_and_emptiness() -> None:
    assert parse_query("q", max_chars=10).text == "q"
    assert parse_query({"text": "q"}, max_chars=10).text == "q"
    assert parse_query({"content": [{"type": "text", "text": "q"}]}, max_chars=10).text == "q"
    assert parse_query({"image": IMG}, max_chars=10).images == (IMG,)
    for empty in ("", "  ", {"text": ""}):
        with pytest.raises(InvalidField, match="empty"):
            parse_query(empty, max_chars=10)
    with pytest.raises(InvalidField):
        parse_query("q" * 11, max_chars=10)


# ---------------------------------------------------------------- budget
def plan(**kw: Any) -> Any:
    args: dict[str, Any] = {
        "index": 4,
        "query_tokens": 10,
        "query_image_tokens": 0,
        "text_tokens": 100,
        "image_tokens": 0,
        "special_tokens": 3,
        "pair_budget": 512,
        "model_max_length": 512,
        "max_tokens_per_doc": None,
        "truncate": True,
    }
    return plan_pair(**{**args, **kw})


def test_pair_that_fits_is_untouched() -> None:
    p = plan()
    assert (p.text_tokens, p.pair_tokens, p.model_text_tokens, p.model_query_tokens) == (
        100,
        113,
        100,
        10,
    )


def test_long_text_is_truncated_to_the_budget_or_refused() -> None:
    p = plan(text_tokens=1_000)
    assert p.text_tokens == 512 - 13
    assert p.pair_tokens == 512
    with pytest.raises(InvalidField) as info:
        plan(text_tokens=1_000, truncate=False)
    assert info.value.param == "documents[4]"
    assert "document 4" in str(info.value)


def test_images_cost_room_and_never_get_truncated() -> None:
    p = plan(text_tokens=1_000, image_tokens=256)
    assert (p.text_tokens, p.image_tokens, p.pair_tokens) == (512 - 13 - 256, 256, 512)
    with pytest.raises(InvalidField) as info:
        plan(text_tokens=0, image_tokens=1_247)
    assert info.value.param == "documents[4]"
    # Exactly full is fine: the images fit, no text is left for the model.
    p = plan(text_tokens=50, image_tokens=499)
    assert (p.text_tokens, p.model_text_tokens, p.pair_tokens) == (0, 0, 512)


def test_max_tokens_per_doc_and_a_budget_wider_than_the_model() -> None:
    assert plan(max_tokens_per_doc=20).text_tokens == 20
    wide = plan(text_tokens=5_000, pair_budget=32_768)
    assert wide.text_tokens == 5_000
    assert wide.pair_tokens == 5_013
    assert wide.model_text_tokens == 512 - 13
    assert wide.model_query_tokens == 10


def test_query_must_leave_room() -> None:
    check_query(query_tokens=500, query_image_tokens=0, special_tokens=3, pair_budget=512)
    with pytest.raises(InvalidField) as info:
        check_query(query_tokens=500, query_image_tokens=9, special_tokens=3, pair_budget=512)
    assert info.value.param == "query"


def test_embedding_budget() -> None:
    assert (
        plan_embedding(index=0, tokens=10, special_tokens=2, max_length=512, truncate=False) == 10
    )
    assert (
        plan_embedding(index=0, tokens=900, special_tokens=2, max_length=512, truncate=True) == 510
    )
    with pytest.raises(InvalidField) as info:
        plan_embedding(index=2, tokens=511, special_tokens=2, max_length=512, truncate=False)
    assert info.value.param == "input[2]"
