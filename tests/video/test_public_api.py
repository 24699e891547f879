"""The video package's public surface: every name in each ``__all__`` exists; the package re-exports them."""

from __future__ import annotations

import importlib

import pytest

import facetrace.video

MODULES = [
    "analysis",
    "events",
    "identity",
    "jobs",
    "pipeline",
    "processors",
    "sightings",
    "sinks",
    "source",
    "tracker",
]


@pytest.mark.parametrize("name", MODULES)
def test_module_all_resolves(name: str) -> None:
    module = importlib.import_module(f"facetrace.video.{name}")
    assert module.__all__ == sorted(module.__all__, key=str)
    for symbol in module.__all__:
        assert getattr(module, symbol) is not None, f"{name}.{symbol}"


def test_package_all_resolves_and_is_sorted() -> None:
    names = facetrace.video.__all__
    assert names == sorted(names)
    assert len(names) == len(set(names))
    for symbol in names:
        assert getattr(facetrace.video, symbol) is not None, symbol
