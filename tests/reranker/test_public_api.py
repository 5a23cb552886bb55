"""The reranker's public surface: ``__all__`` is exactly what the package exports."""

from __future__ import annotations

import inspect

import reranker


def test_all_names_are_exported_and_documented() -> None:
    assert sorted(reranker.__all__) == sorted(set(reranker.__all__))
    for name in reranker.__all__:
        obj = getattr(reranker, name)
        if inspect.isclass(obj) or inspect.isfunction(obj):
            assert inspect.getdoc(obj), f"{name} has no docstring"


def test_nothing_public_is_left_out() -> None:
    public = {
        name
        for name, obj in vars(reranker).items()
        if not name.startswith("_") and not inspect.ismodule(obj)
    }
    assert public == set(reranker.__all__)
