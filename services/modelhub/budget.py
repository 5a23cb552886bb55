"""Token budgeting for rerank pairs and embedding inputs (pure; the numbers usage reports)."""

from __future__ import annotations

from dataclasses import dataclass

from services.modelhub.errors import InvalidField

__all__ = ["PairPlan", "check_query", "plan_embedding", "plan_pair"]


@dataclass(frozen=True, slots=True)
class PairPlan:
    """How one (query, document) pair spends its budget."""

    text_tokens: int  # document text tokens kept (after truncation)
    image_tokens: int  # the document's image tokens (query images are in ``pair_tokens``)
    pair_tokens: int  # everything the pair costs: what ``usage`` sums
    model_query_tokens: int  # query tokens the local model reads
    model_text_tokens: int  # document tokens the local model reads


def check_query(
    *, query_tokens: int, query_image_tokens: int, special_tokens: int, pair_budget: int
) -> None:
    """Refuse a query that leaves no room for any document in the pair budget.

    Raises:
        InvalidField: naming ``query``.
    """
    fixed = query_tokens + query_image_tokens + special_tokens
    if fixed >= pair_budget:
        raise InvalidField(
            f"the query needs {fixed} tokens, leaving no room for a document in the "
            f"{pair_budget}-token pair budget",
            param="query",
        )


def plan_pair(
    *,
    index: int,
    query_tokens: int,
    query_image_tokens: int,
    text_tokens: int,
    image_tokens: int,
    special_tokens: int,
    pair_budget: int,
    model_max_length: int,
    max_tokens_per_doc: int | None,
    truncate: bool,
) -> PairPlan:
    """Fit document ``index`` into the pair budget: truncate its text, never its images.

    Raises:
        InvalidField: naming ``documents[index]`` when its images alone do not fit, or when
            its text does not fit and truncation is off.
    """
    fixed = query_tokens + query_image_tokens + special_tokens
    room = pair_budget - fixed
    if image_tokens > room:
        raise InvalidField(
            f"document {index}: its images need {image_tokens} tokens but the pair budget "
            f"of {pair_budget} leaves {max(room, 0)} after the query",
            param=f"documents[{index}]",
        )
    room -= image_tokens
    if text_tokens > room and not truncate:
        raise InvalidField(
            f"document {index}: the pair needs {fixed + image_tokens + text_tokens} tokens, "
            f"over the model's context of {pair_budget}, and truncation is off",
            param=f"documents[{index}]",
        )
    kept = min(text_tokens, room)
    if max_tokens_per_doc is not None:
        kept = min(kept, max_tokens_per_doc)
    # The budget may exceed what the ONNX graph reads (e.g. 32,768 to mimic Qwen3-VL):
    # the model then sees a further-truncated pair, the budget and usage stay as counted.
    model_query = min(query_tokens, model_max_length - special_tokens - 1)
    model_text = min(kept, model_max_length - special_tokens - model_query)
    return PairPlan(
        text_tokens=kept,
        image_tokens=image_tokens,
        pair_tokens=fixed + image_tokens + kept,
        model_query_tokens=model_query,
        model_text_tokens=model_text,
    )


def plan_embedding(
    *, index: int, tokens: int, special_tokens: int, max_length: int, truncate: bool
) -> int:
    """Return how many of input ``index``'s tokens fit the model (specials excluded).

    Raises:
        InvalidField: naming ``input[index]`` when it is too long and truncation is off.
    """
    room = max_length - special_tokens
    if tokens > room and not truncate:
        raise InvalidField(
            f"input {index} has {tokens + special_tokens} tokens, over the model's limit of "
            f"{max_length}, and truncation is off",
            param=f"input[{index}]",
        )
    return min(tokens, room)
