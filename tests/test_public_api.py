"""The package's public surface is explicit: everything in ``__all__`` exists and nothing private leaks."""

from __future__ import annotations

import facetrace


def test_all_names_resolve() -> None:
    for name in facetrace.__all__:
        assert getattr(facetrace, name) is not None, name


def test_all_is_sorted_and_public() -> None:
    names = [n for n in facetrace.__all__ if n != "__version__"]
    assert all(not n.startswith("_") for n in names)
    assert len(names) == len(set(names))
