"""Storage: the ``FaceStore`` interface and its embedded implementations."""

from __future__ import annotations

from facetrace.store.base import CollectionInfo, FaceStore, Neighbor, Page, UserNeighbor

__all__ = ["CollectionInfo", "FaceStore", "Neighbor", "Page", "UserNeighbor"]
