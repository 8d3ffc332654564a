"""``zeroqueue run``: start a service from a module and a go-zero config file."""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
import traceback
from pathlib import Path
from types import ModuleType
from typing import Any

from zeroqueue._telemetry import setup_telemetry
from zeroqueue.conf import ServiceConf, load, setup_logging
from zeroqueue.errors import ConfigError
from zeroqueue.service._group import ExitCode, ServiceGroup

__all__ = ["import_service", "prepare", "run_service"]


def import_service(spec: str) -> ModuleType:
    """Import a service module by name (``pkg.svc``) or path (``examples/login_log``).

    A path (a ``.py`` file, or a package's directory) is loaded from that very
    file, never from a module of the same name imported already (``queue.py`` is
    not the standard library's ``queue``). Its directory is added to the end of
    ``sys.path``, so it can import modules beside it.

    Raises:
        ConfigError: it cannot be imported (a syntax error or a failed import in it,
            named by file and line), or lacks ``Config`` or ``setup``.
    """
    path = Path(spec)
    try:
        if path.exists():
            module = _load_path(spec, path.resolve())
        elif spec.endswith(".py") or "/" in spec or "\\" in spec:
            raise ConfigError(f"service module {spec!r}: no such file or directory")
        else:
            module = importlib.import_module(spec)
    except (ImportError, SyntaxError) as exc:
        raise ConfigError(
            f"service module {spec!r} cannot be imported: {_where(exc)}"
            f"{type(exc).__name__}: {_message(exc)}"
        ) from exc
    missing = [name for name in ("Config", "setup") if not hasattr(module, name)]
    if missing:
        raise ConfigError(
            f"service module {spec!r} has no {' and no '.join(missing)}; expected a Config"
            " model (a zeroqueue.conf.Conf, pydantic model or dataclass) and"
            " setup(conf, group) adding its services to a ServiceGroup"
        )
    return module


def _load_path(spec: str, target: Path) -> ModuleType:
    """The module at ``target`` (a file, or a package's directory), loaded once."""
    if target.is_dir():
        file, search = target / "__init__.py", [str(target)]
        if not file.is_file():
            raise ConfigError(
                f"service module {spec!r}: a directory without __init__.py; expected a"
                " package or a .py file"
            )
    else:
        file, search = target, None
    name = _module_name(target, file)
    loaded = sys.modules.get(name)
    if loaded is not None and getattr(loaded, "__file__", None) == str(file):
        return loaded  # imported already, from this file
    module_spec = importlib.util.spec_from_file_location(
        name, file, submodule_search_locations=search
    )
    if module_spec is None or module_spec.loader is None:
        raise ConfigError(
            f"service module {spec!r}: not a Python module; expected a .py file or a package"
        )
    parent = str(target.parent)
    if parent not in sys.path:
        sys.path.append(parent)  # last: beside modules never shadow installed ones
    module = importlib.util.module_from_spec(module_spec)
    # Registered before it runs, as an import would: dataclasses, pydantic and the
    # package's own relative imports look it up there.
    sys.modules[name] = module
    try:
        module_spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


def _module_name(target: Path, file: Path) -> str:
    """The name to load ``file`` under: its own, unless that names another module."""
    name = target.stem if file.name != "__init__.py" else target.name
    if name.isidentifier():
        loaded = sys.modules.get(name)
        if loaded is not None:
            if getattr(loaded, "__file__", None) == str(file):
                return name
        else:
            try:
                found = importlib.util.find_spec(name)
            except (ImportError, ValueError):
                found = None
            if found is None or (found.origin and Path(found.origin).resolve() == file):
                return name
    # Taken by another module (the standard library's queue, say): a name of its own,
    # the same for the same file, so loading it twice finds the first.
    digest = hashlib.sha256(str(file).encode()).hexdigest()[:8]
    safe = "".join(c if c.isalnum() or c == "_" else "_" for c in name)
    return f"{safe}_zeroqueue_{digest}"


def _where(exc: BaseException) -> str:
    """``file, line N: `` where ``exc`` happened, or ''.

    A syntax error says where itself; an import that failed is located at the
    innermost line outside the import machinery (the ``import`` that failed).
    """
    if isinstance(exc, SyntaxError) and exc.filename:
        return f"{exc.filename}, line {exc.lineno}: " if exc.lineno else f"{exc.filename}: "
    machinery = (Path(importlib.__file__).parent, Path(__file__).parent)
    frames = [
        frame
        for frame in traceback.extract_tb(exc.__traceback__)
        if not frame.filename.startswith("<")
        and not any(Path(frame.filename).is_relative_to(m) for m in machinery)
    ]
    if not frames:
        return ""
    return f"{frames[-1].filename}, line {frames[-1].lineno}: "


def _message(exc: BaseException) -> str:
    if isinstance(exc, SyntaxError):
        return str(exc.msg)
    return str(exc)


def prepare(module: ModuleType, config_path: str, group: ServiceGroup) -> tuple[Any, Any]:
    """Load the module's Config from ``config_path``, set up logging, call its setup()."""
    conf = load(config_path, module.Config)
    if isinstance(conf, ServiceConf):
        setup_logging(conf)
        setup_telemetry(conf)
        # Before setup(): the Queues and Pushers it builds are then watched.
        group.set_up(conf)
    return conf, module.setup(conf, group)


def run_service(spec: str, config_path: str, *, grace: float = 30.0) -> ExitCode:
    """Run the service until SIGINT/SIGTERM or a failure; return the group's exit code."""
    module = import_service(spec)
    group = ServiceGroup(grace=grace)
    prepare(module, config_path, group)
    return group.run()
