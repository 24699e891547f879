"""Where facetrace keeps its data: the *home* directory (database, and anything else that must persist).

The home is ``$FACETRACE_HOME`` when set, else the platform's user data directory (``~/.local/share/facetrace``
on Linux). Face vectors are biometric data, so a home facetrace creates is private to its owner (0o700); an
existing directory the user pointed us at is left with the permissions they gave it, but we warn when others
can read it.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

import platformdirs

from facetrace.errors import StoreError

__all__ = ["ENV_VAR", "ensure_home", "private_dir", "resolve_home"]

ENV_VAR = "FACETRACE_HOME"

log = logging.getLogger(__name__)


def resolve_home(home: Path | None = None) -> Path:
    """The home directory to use, without creating it: ``home`` if given, else ``$FACETRACE_HOME``, else the
    platform's user data directory."""
    if home is not None:
        return Path(home).expanduser()
    override = os.environ.get(ENV_VAR)
    if override:
        return Path(override).expanduser()
    return Path(platformdirs.user_data_dir("facetrace", appauthor=False))


def ensure_home(home: Path | None = None) -> Path:
    """Resolve the home and create it (and missing parents) private to the current user.

    Raises ``StoreError`` when it cannot be created or is not a directory, so callers see one clear message
    instead of an ``OSError`` from deep inside SQLite.
    """
    path = resolve_home(home)
    try:
        if not path.exists():
            path.mkdir(parents=True, mode=0o700, exist_ok=True)
            # mkdir's mode is filtered by the umask; make sure the result is really private.
            path.chmod(0o700)
        elif not path.is_dir():
            raise StoreError(f"facetrace home {path} exists and is not a directory")
        mode = path.stat().st_mode
    except OSError as exc:
        raise StoreError(f"cannot create facetrace home {path}: {exc.strerror or exc}") from exc
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning("facetrace home %s is accessible to other users (mode %o)", path, stat.S_IMODE(mode))
    return path


def private_dir(path: Path) -> Path:
    """Create ``path`` (a folder facetrace owns inside the home, e.g. ``images/``) private to the user (0o700),
    and take group and other access away from one an older version created with the umask's 0o755."""
    try:
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        info = path.stat()
        if stat.S_IMODE(info.st_mode) & (stat.S_IRWXG | stat.S_IRWXO) and info.st_uid == os.getuid():
            path.chmod(0o700)
    except OSError as exc:
        raise StoreError(f"cannot create {path}: {exc.strerror or exc}") from exc
    return path
