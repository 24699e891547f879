"""The review package's public surface: every name in each ``__all__`` exists, without repeats (ruff's RUF022
keeps them sorted)."""

from __future__ import annotations

import importlib

import pytest

import facetrace.review


@pytest.mark.parametrize("name", ["queue", "unknowns", "shapes"])
def test_module_all_resolves(name: str) -> None:
    module = importlib.import_module(f"facetrace.review.{name}")
    assert len(module.__all__) == len(set(module.__all__))
    for symbol in module.__all__:
        assert getattr(module, symbol) is not None, f"{name}.{symbol}"


def test_package_all_resolves() -> None:
    assert len(facetrace.review.__all__) == len(set(facetrace.review.__all__))
    for symbol in facetrace.review.__all__:
        assert getattr(facetrace.review, symbol) is not None, symbol
