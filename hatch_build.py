"""Build the Pusher's optional C hot path (zeroqueue.kq._fastpush) into the wheel.

setuptools compiles it; hatchling packs it. Without a C compiler, Python's headers
or setuptools, the build says so (``pip install -v`` shows it) and goes on:
zeroqueue then pushes through pure Python, the same behaviour a little slower.
``ZEROQUEUE_PURE_PYTHON=1`` skips the extension on purpose; so does a free-threaded
Python, for which the type was not written.
"""

from __future__ import annotations

import os
import shutil
import sysconfig
import tempfile
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

_EXTENSION = "zeroqueue.kq._fastpush"
_SOURCE = Path("src/zeroqueue/kq/_fastpush.c")


class FastPushBuildHook(BuildHookInterface):  # type: ignore[type-arg]
    """Compile the extension; a standard wheel packs it, an editable one finds it in src/."""

    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        """Compile before hatchling collects the files."""
        if self.target_name != "wheel":
            return
        in_place = Path(self.root, _SOURCE.parent, "_fastpush" + _extension_suffix())
        if version == "editable":
            # One left by an earlier build would outlive this build's outcome.
            in_place.unlink(missing_ok=True)
        reason = self._reason_to_skip()
        if reason:
            self.app.display_info(f"building without the C hot path: {reason}")
            return
        self._build_dir = tempfile.mkdtemp(prefix="zeroqueue-build-")
        lib = Path(self._build_dir, "lib")
        try:
            built = self._compile(lib, Path(self._build_dir, "temp"))
        except Exception as exc:  # any compiler failure leaves the pure-Python build
            self.app.display_warning(
                f"could not compile {_EXTENSION} ({type(exc).__name__}: {exc}); "
                "zeroqueue will push through pure Python, correct but slower"
            )
            return
        if version == "editable":
            # An editable install imports from src/, so the module must sit there.
            shutil.copy2(built, in_place)
            return
        build_data["pure_python"] = False
        build_data["infer_tag"] = True
        build_data["force_include"][str(built)] = built.relative_to(lib).as_posix()

    def finalize(self, version: str, build_data: dict[str, Any], artifact_path: str) -> None:
        """Remove the temporary build directory."""
        build_dir = getattr(self, "_build_dir", None)
        if build_dir is not None:
            shutil.rmtree(build_dir, ignore_errors=True)

    @staticmethod
    def _reason_to_skip() -> str:
        if os.environ.get("ZEROQUEUE_PURE_PYTHON") == "1":
            return "ZEROQUEUE_PURE_PYTHON=1"
        if sysconfig.get_config_var("Py_GIL_DISABLED"):
            return "free-threaded Python"
        return ""

    def _compile(self, lib: Path, temp: Path) -> Path:
        # Imported here so that a build without setuptools falls back instead of failing.
        from setuptools import Distribution, Extension  # noqa: PLC0415
        from setuptools.command.build_ext import build_ext  # noqa: PLC0415

        extension = Extension(
            _EXTENSION,
            sources=[str(Path(self.root, _SOURCE))],
            extra_compile_args=["-O2"] if os.name != "nt" else [],
        )
        command = build_ext(Distribution({"name": "zeroqueue", "ext_modules": [extension]}))
        command.build_lib = str(lib)
        command.build_temp = str(temp)
        command.ensure_finalized()
        command.run()
        (output,) = command.get_outputs()
        return Path(output)


def _extension_suffix() -> str:
    suffix = sysconfig.get_config_var("EXT_SUFFIX")
    return str(suffix) if suffix else ".so"
